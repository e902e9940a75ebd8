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
        "class_balance_interactive": plots.class_balance_interactive(frame),
        "sizes": plots.size_distribution(frame),
        "samples": plots.sample_grid(frame, seed=params.data.seed),
    }
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
    return {
        "frame": frame,
        "report": report,
        "figures": figures,
        "identities": identities,
        "styles": styles,
        "dropped": dropped,
        "contact_sheet": sheet if sheet.is_file() else None,
    }
