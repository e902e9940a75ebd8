"""The EDA stage (notebooks/01_eda.ipynb): class balance, sizes, samples,
people and photos per split, mask styles, and what the data stage dropped."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from maskdet.params import Params
from maskdet.paths import project_root, resolve
from maskdet.stages.common import log_figures
from maskdet.study import plots
from maskdet.study.datasets import read_manifest
from maskdet.study.tracking import stage_run


def run_eda(params: Params, root: Path | None = None) -> dict:
    root = root or project_root()
    frame = read_manifest(root)
    report = json.loads((root / "reports" / "data_validation.json").read_text())
    figures = {
        "class_balance": plots.class_balance(frame),
        "class_balance_interactive": plots.class_balance_interactive(frame),  # MLflow only: the same counts
        "samples": plots.sample_grid(frame, seed=params.data.seed),
    }
    one_size = frame["width"].nunique() == 1 and frame["height"].nunique() == 1
    if not one_size:  # a histogram of one bar says less than one sentence
        figures["sizes"] = plots.size_distribution(frame)
    identities = frame.groupby(["split"]).agg(
        people=("person", "nunique"), photos=("photo", "nunique"), groups=("group", "nunique"), crops=("path", "size")
    )
    styles = pd.crosstab(frame["style"], frame["label"])
    dropped = pd.DataFrame(report["dropped"], columns=["item", "reason", "detail"])
    with stage_run("eda", params.model_dump(), root):
        log_figures(figures)
        mlflow.log_dict(report, "data_validation.json")
        mlflow.log_metrics(
            {
                "crops": len(frame),
                "dropped": len(dropped),
                "people": frame["person"].nunique(),
                "near_duplicate_groups": len(report["near_duplicate_groups"]),
                **{f"crops_{s}": int((frame["split"] == s).sum()) for s in ("train", "val", "test")},
            }
        )
    plt.close("all")
    sheet = resolve(params.data.path, root) / "contact_sheet.png"
    near = near_duplicate_table(frame, report["near_duplicate_groups"])
    return {
        "frame": frame,
        "report": report,
        "figures": figures,
        "identities": identities,
        "styles": styles,
        "dropped": dropped,
        "near_duplicates": near,
        "contact_sheet": sheet if sheet.is_file() else None,
        "sizes_note": (
            f"Every crop is {frame['width'].iloc[0]} x {frame['height'].iloc[0]} pixels: no size distribution to show."
            if one_size
            else None
        ),
        "captions": _captions(frame, near, dropped, params),
    }


def near_duplicate_table(frame: pd.DataFrame, groups: list[list[str]]) -> pd.DataFrame:
    """One row per near-duplicate group (by perceptual hash): its crops, and the
    people, splits, classes and mask styles they hold. ``groups`` name crops by
    their ``source`` column, as the data stage's report does."""
    by_source = frame.set_index("source")
    rows = []
    for number, members in enumerate(groups, 1):
        held = by_source.reindex(members).dropna(subset=["label"])
        rows.append(
            {
                "group": number,
                "crops": len(members),
                "people": ", ".join(sorted(set(held["person"]))),
                "split": ", ".join(sorted(set(held["split"]))),
                "classes": ", ".join(sorted(set(held["label"]))),
                "styles": ", ".join(sorted(set(held["style"]))),
                "crosses classes": held["label"].nunique() > 1,
            }
        )
    return pd.DataFrame(rows, columns=["group", "crops", "people", "split", "classes", "styles", "crosses classes"])


def _captions(frame: pd.DataFrame, near: pd.DataFrame, dropped: pd.DataFrame, params: Params) -> dict[str, str]:
    """What each figure and table of the EDA report shows, with this data's numbers."""
    people, photos = frame["person"].nunique(), frame["photo"].nunique()
    crossing = int(near["crosses classes"].sum()) if len(near) else 0
    return {
        "class_balance": f"Crops per class in each split ({len(frame)} crops of {people} people from {photos} "
        "photos). The split keeps every person, photo and near-duplicate group on one side.",
        "contact_sheet": "The built-in data set as the sample stage renders it: crops of every class and mask "
        "style, drawn from the stage's contact sheet.",
        "sizes": "Crop widths and aspect ratios per class (pixels, before the resize to the model's input).",
        "samples": f"Six random crops of each class with their mask style (seed {params.data.seed}).",
        "dropped": f"Items the data stage dropped ({len(dropped)}), with the reason; at most 50 shown.",
        "near_duplicates": f"Near-duplicate groups (perceptual hash within {params.data.near_duplicate_distance} "
        f"bits of 64): {len(near)} groups, {crossing} of them crossing classes. Each group stays in one split. "
        + (
            "A group that crosses classes holds renders of one person's face with and without a mask: the hash "
            "sees the face, the mask changes a small part of it. It is a fact of rendering, not a wrong label."
            if params.data.source == "sample"
            else "A group that crosses classes may be one image under two labels: worth a look."
        ),
        "identities": "People, source photos, split groups and crops in each split.",
        "styles": "Crops per mask style and class (style `none`: bare faces).",
    }
