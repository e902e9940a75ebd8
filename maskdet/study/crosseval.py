"""Cross-data-set evaluation: any trained model on any labelled set, without
retraining, as papers report "trained on A, tested on B" (``maskdet evaluate``).

Sets: one folder per class (two or three classes) or Pascal VOC scenes.
Views (see ``maskdet.study.views``): ``crops`` classifies each face alone (a whole
file, or a VOC box padded as in training); ``framed`` and ``closeup`` run the
whole Predictor, detector included, on a folder set's photos; ``scenes`` runs
it on VOC scenes and scores them as detection papers do (``maskdet.study.scenes``).

On a folder set, the face of an image is the largest face found in it. An
image where no face is found counts as a miss in every score ("found" says
how often that happened). On a two-class set (no ``mask_weared_incorrect``
folder), ``mask_weared_incorrect`` counts as "not with_mask": a masked photo
must be called ``with_mask``, a bare one ``without_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskdet import LABELS
from maskdet.data.readers import ReadResult, read_folders, read_voc_scenes
from maskdet.errors import InputError, MissingFileError
from maskdet.io.atomic import atomic_path
from maskdet.io.images import ImageError, load_rgb
from maskdet.study.metrics import wilson_interval
from maskdet.study.views import view_of

NO_FACE = "no_face"
FOLDER_VIEWS = ("crops", "framed", "closeup")
VOC_VIEWS = ("crops", "scenes")
TWO_CLASS_RULE = (
    "two classes: mask_weared_incorrect counts as 'not with_mask'; a with_mask image is right "
    "only when called with_mask, a without_mask image only when called without_mask"
)


@dataclass
class LabelledSet:
    root: Path
    kind: str  # "folders" or "voc"
    read: ReadResult
    labels: list[str] = field(default_factory=list)  # the classes present, in LABELS order

    @property
    def two_class(self) -> bool:
        return "mask_weared_incorrect" not in self.labels


def read_labelled_set(root: Path) -> LabelledSet:
    """A folder-per-class set, or VOC scenes when ``root/annotations`` exists."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(
            f"{root}: not a folder; give a folder with one sub-folder per class "
            f"({', '.join(LABELS)}) or Pascal VOC images/ and annotations/"
        )
    kind = "voc" if (root / "annotations").is_dir() else "folders"
    read = read_voc_scenes(root) if kind == "voc" else read_folders(root)
    if not read.items:
        raise InputError(f"{root}: no labelled images found (unreadable or empty class folders); nothing to evaluate")
    present = {item.label for item in read.items}
    return LabelledSet(root, kind, read, [label for label in LABELS if label in present])


def _largest(faces):
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) if faces else None


def _row(item, view: str, face, n_faces: int, error: str | None = None) -> dict:
    probs = face.probs if face else {}
    return {
        "image": item.name,
        "label": item.label,
        "view": view,
        "faces": n_faces,
        "found": face is not None,
        "predicted": face.label if face else NO_FACE,
        "error": error,
        "confidence": probs.get(face.label, np.nan) if face else np.nan,
        **{f"p_{k}": probs.get(k, np.nan) for k in LABELS},
    }


def predict_rows(predictor, data: LabelledSet, views: tuple[str, ...], progress: bool = False) -> pd.DataFrame:
    """One row per image (per face for VOC crops) and view; an unreadable image
    gets its ``error`` and counts as a miss."""
    from tqdm import tqdm

    from maskdet.predict.crops import padded_box

    allowed = VOC_VIEWS if data.kind == "voc" else FOLDER_VIEWS
    wrong = [v for v in views if v not in allowed]
    if wrong:
        raise InputError(
            f"view {', '.join(wrong)} does not apply to a {data.kind} set; choose from {', '.join(allowed)}"
        )
    rows, cache = [], {}
    for item in tqdm(data.read.items, desc="evaluating", unit="face", disable=not progress):
        try:
            rgb = cache.get(item.path) if item.path in cache else load_rgb(item.path)
        except ImageError as exc:
            rows += [_row(item, v, None, 0, f"{exc.reason}: {exc}") for v in views if v != "scenes"]
            continue
        if data.kind == "voc":
            cache = {item.path: rgb}  # the faces of one scene follow each other
        for view in views:
            if view == "scenes":
                continue
            if view == "crops":
                image = rgb
                if item.box is not None:
                    h, w = rgb.shape[:2]
                    x1, y1, x2, y2 = padded_box(item.box, predictor.crop_padding, w, h)
                    image = rgb[y1:y2, x1:x2]
                faces = predictor.faces(image, crops_only=True)
            else:
                faces = predictor.faces(view_of(rgb, view))
            rows.append(_row(item, view, _largest(faces), len(faces)))
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame, data: LabelledSet) -> dict:
    """Scores per view: accuracy and macro-F1 over the classes present, found,
    and each class's share called right (the two-class rule where it applies),
    each share with its 95 % interval (``..._ci95``)."""
    out = {
        "data": str(data.root),
        "kind": data.kind,
        "classes": data.labels,
        "images": int(len({r.name for r in data.read.items})),
        "faces": len(data.read.items),
        "problems": len(data.read.problems),
    }
    if data.two_class:
        out["rule"] = TWO_CLASS_RULE
    for view, part in rows.groupby("view", sort=False) if len(rows) else ():  # none: scenes alone
        right = part["predicted"] == part["label"]
        scores = {
            "n": int(len(part)),
            "accuracy": float(right.mean()),
            # macro-F1 over the classes that are there: a class absent from
            # the truth would add a 0 that says nothing about the model.
            "f1_macro": float(
                f1_score(part["label"], part["predicted"], labels=data.labels, average="macro", zero_division=0)
            ),
            "errors": int(part["error"].notna().sum()),
        }
        if view != "crops":
            scores["found"] = float(part["found"].mean())
        for label in data.labels:
            mine = part[part["label"] == label]
            right_here = int((mine["predicted"] == label).sum())
            scores[f"{label}_called_right"] = right_here / len(mine) if len(mine) else float("nan")
            scores[f"{label}_called_right_ci95"] = wilson_interval(right_here, len(mine))
            if view != "crops":
                scores[f"{label}_found"] = float(mine["found"].mean())
                scores[f"{label}_found_ci95"] = wilson_interval(int(mine["found"].sum()), len(mine))
        out[view] = scores
    return out


def generalisation_rows(summary: dict, trained_on: str, tested_on: str) -> list[dict]:
    """One row per view of a ``summarise`` (and ``scene_scores``) summary: the
    "trained on A, tested on B" table's rows."""
    rows = []
    for view in (*FOLDER_VIEWS, *VOC_VIEWS):
        scores = summary.get(view)
        if not scores or view in {r["view"] for r in rows}:
            continue
        row = {"trained_on": trained_on, "tested_on": tested_on, "view": view, "faces": scores.get("n")}
        if view == "scenes":
            row.update(faces=scores.get("faces"), found=scores.get("recall"), map50=scores.get("map50"))
            row.update({f"{label}_ap50": scores.get(f"ap50_{label}") for label in LABELS})
        else:
            row.update(accuracy=scores["accuracy"], f1_macro=scores["f1_macro"], found=scores.get("found"))
            row.update({f"{label}_called_right": scores.get(f"{label}_called_right") for label in LABELS})
        rows.append(row)
    return rows


def generalisation(
    predictor, paths: dict[str, Path], trained_on: str, candidates_from: float
) -> tuple[pd.DataFrame, list[str]]:
    """The Predictor on every labelled set of ``paths`` (as the user named it: its
    folder) that is there: its scores per view (``generalisation_rows``), and one
    line for each set left out (not there, or nothing labelled in it), so that
    the report says what it could not test. Lines name a set as the user did:
    a report holds no path of this machine."""
    rows, skipped = [], []
    for shown, path in paths.items():
        if not Path(path).is_dir():
            skipped.append(f"{shown}: not here; skipped")
            continue
        try:
            data = read_labelled_set(Path(path))
        except (InputError, MissingFileError) as exc:
            skipped.append(f"{shown}: {str(exc).replace(str(path), shown)}; skipped")
            continue
        views = VOC_VIEWS[:1] if data.kind == "voc" else FOLDER_VIEWS
        summary = summarise(predict_rows(predictor, data, views), data)
        if data.kind == "voc":
            summary["scenes"], _ = scene_scores(predictor, data, candidates_from)
        rows += generalisation_rows(summary, trained_on, Path(path).name)
    return pd.DataFrame(rows), skipped


def confusion_table(rows: pd.DataFrame, view: str, labels: list[str]) -> pd.DataFrame:
    """Counts: true class (rows) by answer (columns), "no_face" included."""
    part = rows[rows["view"] == view]
    answers = [*LABELS, NO_FACE] if view != "crops" else list(LABELS)
    return pd.crosstab(
        pd.Categorical(part["label"], categories=labels),
        pd.Categorical(part["predicted"], categories=answers),
        dropna=False,
    )


def worst_mistakes(rows: pd.DataFrame, view: str, count: int) -> pd.DataFrame:
    """The most confident wrong answers, then the photos where no face was found."""
    part = rows[(rows["view"] == view) & (rows["predicted"] != rows["label"]) & rows["error"].isna()]
    wrong = part[part["found"]].sort_values("confidence", ascending=False)
    return pd.concat([wrong, part[~part["found"]]]).head(count)


def scene_scores(
    predictor, data: LabelledSet, candidates_from: float, progress: bool = False
) -> tuple[dict, pd.DataFrame]:
    """The whole Predictor on VOC scenes, its faces ranked from the detector
    score ``candidates_from`` (``scenes.scene_answers``) and scored at IoU 0.5
    and 0.3 (``scenes.scene_metrics_both_ious``), with one row per answer."""
    from maskdet.study.scenes import scene_answers, scene_metrics_both_ious

    scenes = data.read.scenes
    answers, shown_from = scene_answers(predictor, scenes, candidates_from, progress)
    return scene_metrics_both_ious(scenes, answers, shown_from)


def scene_line(scores: dict, labels: list[str]) -> str:
    """One line for a terminal: mAP and AP per class at IoU 0.5 and 0.3, recall and precision."""

    def at(iou: str) -> str:
        per_class = ", ".join(f"{label} {scores[f'ap{iou}_{label}']:.3f}" for label in labels)
        return f"mAP@0.{iou[0]} {scores[f'map{iou}']:.3f} ({per_class})"

    return (
        f"scenes: {at('50')}; {at('30')}; recall {scores['recall']:.3f} / precision {scores['precision']:.3f} "
        f"at IoU 0.5, {scores['recall_iou30']:.3f} / {scores['precision_iou30']:.3f} at 0.3"
    )


def scene_figures(summary: dict, rows: pd.DataFrame, data: LabelledSet) -> dict:
    """The PR curves per class and the recall by face width of a scene evaluation."""
    from maskdet.study import plots
    from maskdet.study.scenes import precision_recall_curve

    scores = summary["scenes"]
    positives = {
        label: sum(o.label == label and not o.difficult for s in data.read.scenes for o in s.objects)
        for label in data.labels
    }
    curves = {
        label: (*precision_recall_curve(rows, label, n), scores[f"ap50_{label}"]) for label, n in positives.items()
    }
    name = data.root.name
    return {
        "scenes_pr.png": plots.scene_pr_curves(curves, f"{name}: scenes, IoU 0.5, mAP {scores['map50']:.3f}"),
        "scenes_recall_by_size.png": plots.recall_by_size(scores, f"{name}: faces found (IoU 0.5) by width"),
    }


def write_outputs(
    out: Path,
    rows: pd.DataFrame,
    summary: dict,
    data: LabelledSet,
    mistakes: int = 12,
    scene_rows: pd.DataFrame | None = None,
) -> list[Path]:
    """metrics.json, predictions.csv, per view a confusion figure and a gallery
    of the worst mistakes, and for scenes the answers with their boxes
    (scene_predictions.csv), the PR curves and the recall by face width; each
    file written whole (temp, then rename)."""
    import json

    import matplotlib.pyplot as plt

    from maskdet.io.images import load_rgb
    from maskdet.study.plots import confusion_counts, image_grid

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, write) -> None:
        path = out / name
        with atomic_path(path) as tmp:
            write(tmp)
        written.append(path)

    put("metrics.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    put("predictions.csv", lambda p: rows.to_csv(p, index=False))
    if scene_rows is not None and "scenes" in summary:
        put("scene_predictions.csv", lambda p: scene_rows.to_csv(p, index=False))
        for name, fig in scene_figures(summary, scene_rows, data).items():
            put(name, lambda p, fig=fig: fig.savefig(p, dpi=110))
            plt.close(fig)
    items = {item.name: item for item in data.read.items}
    for view in rows["view"].unique() if len(rows) else ():
        scores = summary[view]
        title = (
            f"{data.root.name}, {view} view: {scores['n']} faces, accuracy {scores['accuracy']:.3f}, "
            f"macro-F1 {scores['f1_macro']:.3f}"
        )
        fig = confusion_counts(confusion_table(rows, view, data.labels), title)
        put(f"confusion_{view}.png", lambda p, fig=fig: fig.savefig(p, dpi=110))
        plt.close(fig)
        worst = worst_mistakes(rows, view, mistakes)
        if len(worst):
            images = [
                view_of(load_rgb(items[name].path), "framed" if view == "framed" else "closeup")
                for name in worst["image"]
            ]
            titles = [
                f"{Path(r.image).name}\ntrue {r.label}\n"
                + (f"{r.predicted} {r.confidence:.0%}" if r.found else "no face found")
                for r in worst.itertuples()
            ]
            grid = image_grid(images, titles, columns=6, size=2.0)
            put(f"mistakes_{view}.png", lambda p, grid=grid: grid.savefig(p, dpi=90))
            plt.close(grid)
    return written


def log_run(summary: dict, files: list[Path], model: str, predictor) -> str:
    """An MLflow run in the ``maskdet-crosseval`` experiment with the scores as
    metrics, the files as artifacts, tagged with the model and its version."""
    import mlflow

    from maskdet.study.tracking import configure

    configure("maskdet-crosseval")
    tags = {
        "model": str(model),
        "data": summary["data"],
        "detector": predictor.detector_name,
        "detector_input": predictor.detector_input,
        "runtime": predictor.runtime,
        "incorrect_share": str(predictor.incorrect_share),
        "model_run_id": str(predictor.metadata.get("mlflow_run_id", "")),
    }
    if str(model).startswith("models:/"):
        tags["model_version"] = _model_version(str(model))
    with mlflow.start_run(run_name=f"{Path(summary['data']).name} <- {Path(str(model)).name}", tags=tags) as run:
        mlflow.log_metrics(
            {
                f"{view}_{k}": float(v)
                for view, scores in summary.items()
                if isinstance(scores, dict)
                for k, v in scores.items()
                if isinstance(v, (int, float)) and np.isfinite(v)
            }
        )
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def _model_version(uri: str) -> str:
    """The version number behind models:/NAME@ALIAS or models:/NAME/VERSION."""
    from mlflow import MlflowClient

    name, _, rest = uri[len("models:/") :].partition("@")
    if rest:
        return str(MlflowClient().get_model_version_by_alias(name, rest).version)
    return uri.rstrip("/").rsplit("/", 1)[-1]
