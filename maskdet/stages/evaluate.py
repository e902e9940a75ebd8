"""The evaluation stage (notebooks/03_evaluate.ipynb): metrics, figures and
tables on the test split, TFLite parity, the Predictor on the test scenes,
leave-one-style-out, and the Predictor registered in MLflow."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.io.atomic import write_json_atomic, write_text_atomic
from maskdet.io.images import load_rgb
from maskdet.params import Params
from maskdet.predict.predictor import Predictor
from maskdet.quiet import filtering_native_stderr
from maskdet.stages.common import log_figures, write_csv
from maskdet.stages.workspace import workspace
from maskdet.study import methods, plots
from maskdet.study.datasets import load_crops, read_manifest
from maskdet.study.loso import breakdown, curve_tables, leave_one_style_out, worst_mistakes
from maskdet.study.metrics import (
    SCENE,
    TEST,
    bootstrap_by_group,
    classification_metrics,
    nest_metrics,
    reliability_bins,
)
from maskdet.study.registry import REGISTERED_MODEL, log_predictor, move_champion, register
from maskdet.study.tracking import stage_run
from maskdet.study.train import load_model

REGISTRY_DESCRIPTION = (
    "The whole maskdet Predictor (face detector, then the mask classifier) as one pyfunc model: "
    "base64 images in, faces with labels with_mask / without_mask / mask_weared_incorrect, boxes and "
    "probabilities out. `make serve` serves the version with the alias `champion` (the best test macro-F1, "
    "a tie going to the newer). Each version says what data and params made it."
)


@filtering_native_stderr
def run_evaluation(params: Params, root: Path | None = None) -> dict:
    """The evaluation stage: compute on the test split, the scenes and the
    held-out styles; then log to MLflow, register the Predictor and write
    reports/ (the workspace's: see maskdet.stages.workspace). Returns
    everything the notebook shows."""
    ws = workspace("evaluate", root)
    root, reports = ws.root, ws.out / "reports"
    model, meta = load_model(ws.models)
    frame = read_manifest(root)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    predictor = Predictor(ws.models, params.predict)  # what the CLI, the dashboard and the served model run
    found = _test_split(predictor, test, params)
    found["serving"] = _serving_parity(ws.models, model, test["file"], found["y"])
    found["scenes"] = _scene_evaluation(root, predictor, params, frame)
    found["generalisation"], found["external_skipped"] = _generalisation(root, predictor, params, found["metrics"])
    found["loso"] = pd.DataFrame()
    with stage_run("evaluate", params.model_dump(), root, ws):
        _log_dataset(frame, root)
        if params.evaluate.leave_one_style_out:  # inside the run: its trainings log there
            found["loso"] = leave_one_style_out(frame, params, model, meta["input_size"])
        figures = _figures(found, pd.read_csv(ws.models / "history.csv"))
        summary = _summary(found)
        mlflow.log_metrics({k: v for k, v in summary.items() if np.isfinite(v)})
        log_figures(figures, reports / "figures")
        for name, table in _tables(found).items():
            mlflow.log_text(table.to_csv(index=False), f"tables/{name}.csv")
        # Only the pipeline registers: an interactive run must not move the
        # champion alias that `make serve` and the dashboard follow.
        version, champion = None, False
        if not ws.interactive:
            version, champion = _register(ws.models, params, meta, summary)
        _to_the_parent_run(summary)
    for name, table in curve_tables(found["y"], found["probs"]).items():
        write_csv(reports / "plots" / f"{name}.csv", table)
    write_csv(reports / "tables" / "test_predictions.csv", _test_predictions(test, found["probs"]))
    for name in ("by_style", "by_person", "generalisation"):
        write_csv(reports / "tables" / f"{name}.csv", found[name])
    if len(found["scenes"]["predictions"]):  # every answer with its box, and where the mAP is lost
        write_csv(reports / "tables" / "scene_predictions.csv", found["scenes"]["predictions"])
        write_csv(reports / "tables" / "scene_headroom.csv", found["scenes"]["headroom"])
    written = {k: (round(v, 6) if np.isfinite(v) else None) for k, v in summary.items()}
    write_json_atomic(reports / "metrics.json", nest_metrics(written))
    paper = _for_a_paper(params, frame, root, meta, written, reports)
    plt.close("all")
    found.pop("probs"), found.pop("y")
    return {
        **found,
        "summary": summary,
        "figures": figures,
        "champion": champion,
        "metadata": meta,
        "registered_version": version,
        "workspace": ws,
        "paper": paper,
        "intervals_table": _intervals_table(found["metrics"], found["intervals"]),
        "captions": _captions(test, summary, meta),
    }


def _intervals_table(metrics: dict, intervals: dict) -> pd.DataFrame:
    """The bootstrapped metrics, one row each: the test value and its interval over people."""
    rows = {k: {"test": metrics[k], "low": v[0], "high": v[1]} for k, v in intervals.items() if k != "groups"}
    return pd.DataFrame(rows).T.round(3)


def _independent_units(test: pd.DataFrame) -> tuple[int, str, str]:
    """How many of what the bootstrap resamples whole: people where every crop
    names one, photo groups otherwise (VOC scenes, class folders)."""
    if methods.has_people(test):
        return test["person"].nunique(), "people", "person"
    return test["group"].nunique(), "photo groups", "photo group"


def _captions(test: pd.DataFrame, summary: dict, meta: dict) -> dict[str, str]:
    """What each figure and table of the evaluation report shows, with this run's numbers."""
    unseen, units, _ = _independent_units(test)
    crops = f"{len(test)} test crops of {unseen} {units} unseen in training"
    runtime = meta.get("serving", {}).get("runtime", "keras")
    faces = int(summary.get("scene_faces", 0))
    return {
        "metrics": f"Every metric on the {crops}, through the Predictor (classifier runtime {runtime}).",
        "intervals": f"Accuracy, macro-F1 and recall per class with a 95 % bootstrap interval over the "
        f"{int(summary.get(TEST + 'bootstrap_people', 0))} {units} (2000 resamples of whole {units}).",
        "confusion_counts": f"Confusion matrix on the {crops}: counts, true class by answer.",
        "confusion_normalised": "The same, normalised by true class: each row is one class's recall and mistakes.",
        "roc": f"ROC curves, one class against the others, on the {crops}; the area in the legend.",
        "pr": "Precision-recall curves on the same crops; a curve along the top edge makes no trade-off.",
        "reliability": "Calibration: accuracy against confidence in ten equal-width bins; the diagonal is "
        "perfect calibration, the bars count crops.",
        "confidence": "The top probability of right and wrong answers: a good model is sure when right.",
        "history": "The training history of this model (as in the training report).",
        "accuracy_by_style": "Accuracy by mask style on the test crops (style `none`: the bare faces).",
        "by_style": "By mask style: crops, accuracy and the recall of each class the style holds.",
        "by_person": "By person: crops, accuracy and the recall of each class.",
        "by_photo": "By source photo: crops, accuracy and the recall of each class.",
        "leave_one_style_out": "Leave one mask style out: macro-F1 on each style's test crops (with the bare "
        "faces) of a model trained without the style, of a control trained the same way with it, and of the "
        "main model.",
        "loso": "The same numbers as the figure above.",
        "worst_mistakes": "The most confident wrong answers on the test crops: true class, answer, confidence.",
        "scene_metrics": f"The Predictor on the test scenes ({faces} faces, Pascal VOC matching at IoU 0.5)"
        + _scene_interval_caption(summary),
        "detectors": "Each detector's recall on the same scene faces, masked and bare.",
        "scene_predictions": "Test scenes as the Predictor annotates them, with the true labels below.",
        "scene_headroom": "Where the test scenes' mAP@0.5 is lost: the same answers scored again with the false "
        "detections removed, with the found faces given their true class, and with both (the most the "
        "detector's recall allows). A better classifier can win at most the gap to the found faces given "
        "their class; a detector with no false face, the gap to the false detections removed.",
        "serving": "Each TFLite export against the Keras model on the test crops: the largest probability "
        "difference, label agreement, whether it passes the tolerance, and macro-F1 through it.",
        "generalisation": "Trained on one set, tested on each labelled set at hand (evaluate.external): per "
        "view, the faces scored, accuracy, macro-F1 over the classes the set holds and each class called "
        "right; on VOC scenes the share of faces found (IoU 0.5), mAP@0.5 and AP per class. The first row "
        "is the model's own test split.",
    }


def _scene_interval_caption(summary: dict) -> str:
    """The scene table's interval, where the test scenes had one (``scene_intervals``)."""
    low, high = summary.get(SCENE + "map50_ci95_low"), summary.get(SCENE + "map50_ci95_high")
    if low is None or high is None:
        return ": too few photo groups for an interval."
    return f"; mAP@0.5 between {low:.3f} and {high:.3f} in 95 % of 2000 resamples of whole photo groups."


def _to_the_parent_run(summary: dict) -> None:
    """The headline metrics on the pipeline's run too, so that two pipeline runs
    compare side by side in the runs table."""
    from maskdet.study.metrics import HEADLINE_METRICS

    parent = mlflow.get_parent_run(mlflow.active_run().info.run_id)
    if parent is not None:
        headline = {k for k in summary if k.removesuffix("_ci95_low").removesuffix("_ci95_high") in HEADLINE_METRICS}
        found = {k: summary[k] for k in headline if np.isfinite(summary[k])}
        mlflow.MlflowClient().log_batch(
            parent.info.run_id, metrics=[mlflow.entities.Metric(k, v, 0, 0) for k, v in found.items()]
        )


def _log_dataset(frame: pd.DataFrame, root: Path) -> None:
    """The prepared data set as the run's dataset input (its manifest, digest and source)."""
    import json

    from mlflow.data.dataset_source_registry import get_dataset_source_from_json

    from maskdet.study.tracking import data_hash

    columns = [c for c in ("path", "label", "split", "group", "person", "style", "sha256") if c in frame]
    # A source of the "local" type, named: given a bare path, MLflow 3.17 finds two
    # identical local sources that could read it and warns that it is ambiguous.
    source = get_dataset_source_from_json(json.dumps({"uri": "data/processed/manifest.csv"}), "local")
    dataset = mlflow.data.from_pandas(
        frame[columns],
        source=source,
        targets="label",
        name="data/processed",
        digest=data_hash(root)[:16],
    )
    mlflow.log_input(dataset, context="evaluation")


def _for_a_paper(params: Params, frame: pd.DataFrame, root: Path, meta: dict, metrics: dict, reports: Path) -> dict:
    """The Methods paragraph (reports/methods.md) and the headline results as
    LaTeX and Markdown (reports/tables/results.*), from the numbers just
    written to metrics.json."""
    import json

    from maskdet.stages.common import package_versions

    data_report = json.loads((root / "reports" / "data_validation.json").read_text())
    test = frame[frame["split"] == "test"]
    unseen, units, unit = _independent_units(test)
    whose = f" {'of' if unit == 'person' else 'in'} {unseen} {units} unseen in training"
    caption = (
        f"Results on the test split ({len(test)} crops{whose}"
        + (f"; test scenes: {int(metrics['scene_faces'])} faces" if metrics.get("scene_faces") else "")
        + "). Shares with a 95 % Wilson interval over crops, and the headline test numbers with a 95 % "
        + f"bootstrap interval over {units} (whole {units} resampled: crops of one {unit} are not independent)"
        + ("; the scenes' mAP@0.5 over whole photo groups." if metrics.get("scene_map50_ci95_low") is not None else ".")
    )
    table = methods.results_table(metrics)
    paragraph = methods.methods_paragraph(params, frame, data_report, meta, package_versions())
    write_text_atomic(reports / "methods.md", paragraph)
    write_text_atomic(reports / "tables" / "results.tex", methods.to_latex(table, caption, units=units))
    markdown = methods.to_markdown(table, caption, units)
    write_text_atomic(reports / "tables" / "results.md", markdown)
    return {
        "methods": paragraph,
        "table": table,
        "caption": caption,
        "markdown": markdown,
        "markdown_table": methods.to_markdown(table, None, units),
    }


def _test_split(predictor: Predictor, test: pd.DataFrame, params: Params) -> dict:
    """Probabilities on the test crops, from the Predictor exactly as `maskdet
    predict --crops` and the served model compute them (same decoding, resize
    and classifier runtime), and what is computed from them."""
    probs = predictor.classify([load_rgb(f) for f in test["file"]])
    y = test["y"].to_numpy()
    bins = params.evaluate.calibration_bins
    return {
        "probs": probs,
        "y": y,
        "metrics": classification_metrics(y, probs, bins=bins),
        "bins": reliability_bins(y, probs, bins),
        "by_style": breakdown(test, probs, "style"),
        "by_person": breakdown(test, probs, "person"),
        "by_photo": breakdown(test, probs, "photo"),  # the data source of every crop
        "mistakes": worst_mistakes(test, probs, params.evaluate.worst_mistakes),
        # the person is the independent unit; data without people fall back on the split's groups
        "intervals": bootstrap_by_group(y, probs, test["person"].where(test["person"] != "", test["group"])),
    }


def _test_predictions(test: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Each test crop (its path under data/processed) with the Predictor's
    probabilities: the figures' raw material, and what a reader can recompute
    any number from."""
    table = test[["path", "label", "person", "style"]].copy()
    table["predicted"] = [LABELS[i] for i in probs.argmax(axis=1)]
    for k, label in enumerate(LABELS):
        table[f"p_{label}"] = probs[:, k]
    return table


def _figures(found: dict, history: pd.DataFrame) -> dict:
    y, probs, mistakes = found["y"], found["probs"], found["mistakes"]
    figures = {
        "confusion_counts": plots.confusion(y, probs.argmax(1), normalize=False),
        "confusion_normalised": plots.confusion(y, probs.argmax(1), normalize=True),
        "roc": plots.curves(y, probs, "roc"),
        "pr": plots.curves(y, probs, "pr"),
        "reliability": plots.reliability(found["bins"]),
        "confidence": plots.confidence_histograms(y, probs),
        "history": plots.history(history),
        "accuracy_by_style": plots.metric_bars(
            found["by_style"], "style", "accuracy", title="Accuracy by mask style (test crops)"
        ),
    }
    if len(mistakes):
        figures["worst_mistakes"] = plots.image_grid(
            list(mistakes["file"]),
            [f"true {r.label}\npred {r.predicted} {r.confidence:.0%}" for r in mistakes.itertuples()],
            columns=6,
        )
    if found["scenes"]["gallery"]:
        figures["scene_predictions"] = plots.image_grid(*zip(*found["scenes"]["gallery"]), columns=3, size=4.0)
    if len(found["loso"]):
        figures["leave_one_style_out"] = _loso_figure(found["loso"])
    return figures


def _summary(found: dict) -> dict[str, float]:
    """Every number of the evaluation, flat, under its reports/metrics.json name."""
    summary = {TEST + k: v for k, v in found["metrics"].items()}
    intervals = dict(found["intervals"])
    summary[TEST + "bootstrap_people"] = float(intervals.pop("groups"))
    for name, (low, high) in intervals.items():
        summary[f"{TEST}{name}_ci95_low"], summary[f"{TEST}{name}_ci95_high"] = low, high
    loso = found["loso"]
    if len(loso):
        summary["loso_f1_macro_mean"] = float(loso["f1_macro_style_unseen"].mean())
        summary["loso_in_style_f1_macro_mean"] = float(loso["f1_macro_style_seen"].mean())
        summary["loso_main_model_f1_macro_mean"] = float(loso["f1_macro_style_main"].mean())
        for r in loso.itertuples():
            summary[f"loso_f1_macro_{r.style}"] = float(r.f1_macro_style_unseen)
    summary.update(found["serving"])
    summary.update({SCENE + k: float(v) for k, v in found["scenes"]["metrics"].items()})
    for detector, recall in found["scenes"]["detectors"].items():
        summary.update({f"detector_{detector}_{k}": float(v) for k, v in recall.items()})
    return summary


def _tables(found: dict) -> dict[str, pd.DataFrame]:
    return {
        "by_style": found["by_style"],
        "by_person": found["by_person"],
        "by_photo": found["by_photo"],
        "leave_one_style_out": found["loso"],
        "generalisation": found["generalisation"],
        "scene_predictions": found["scenes"]["predictions"],
        "scene_headroom": found["scenes"]["headroom"],
        "worst_mistakes": found["mistakes"].drop(columns=["file"], errors="ignore"),
    }


def _generalisation(root: Path, predictor: Predictor, params: Params, metrics: dict) -> tuple[pd.DataFrame, list]:
    """ "Trained on A, tested on B": the test split, then every set of
    ``evaluate.external`` that is there (``crosseval.generalisation``); the lines
    for those that are not."""
    from maskdet.paths import resolve
    from maskdet.study.crosseval import generalisation

    trained_on = f"{params.data.source} ({Path(params.data.path).name})"
    own = {
        "trained_on": trained_on,
        "tested_on": "its test split",
        "view": "crops",
        "faces": int(metrics["n"]),
        "accuracy": metrics["accuracy"],
        "f1_macro": metrics["f1_macro"],
        **{f"{label}_called_right": metrics.get(f"recall_{label}") for label in LABELS},
    }
    paths = {p: resolve(p, root) for p in params.evaluate.external}
    others, skipped = generalisation(predictor, paths, trained_on, params.evaluate.scene_candidates_from)
    for line in skipped:
        print(f"evaluate.external: {line}")
    return pd.concat([pd.DataFrame([own]), others], ignore_index=True), skipped


def _register(models: Path, params: Params, meta: dict, metrics: dict) -> tuple[str, bool]:
    """Register the whole Predictor (as `mlflow models serve` runs it), describe
    it, and move the champion alias when it is the best; returns (version, champion?)."""
    f1 = metrics["test_f1_macro"]
    logged = log_predictor(models, params.predict)
    version = register(logged.model_uri)
    client = mlflow.MlflowClient()
    # links the registry entry to the models/ folder (whose metadata names its training run)
    client.set_model_version_tag(REGISTERED_MODEL, version, "train_run_id", str(meta.get("mlflow_run_id", "")))
    client.update_registered_model(REGISTERED_MODEL, description=REGISTRY_DESCRIPTION)
    scores = ", ".join(f"{k.removeprefix('test_')} {metrics[k]:.4f}" for k in ("test_accuracy", "test_f1_macro"))
    client.update_model_version(
        REGISTERED_MODEL,
        version,
        description=(
            f"{params.model.backbone} at {meta['input_size']} px, trained on data {params.data.source} "
            f"(sha256 {meta.get('data_sha256', '?')[:12]}), params sha256 {meta.get('params_sha256', '?')[:12]}, "
            f"commit {meta.get('git_commit', '?')[:12]}. Test split: {scores}. "
            f"Detector {params.predict.detector}."
        ),
    )
    champion = move_champion(version, f1)
    mlflow.set_tag("champion", str(champion).lower())
    mlflow.set_tag("registered_version", version)
    return version, champion


def _serving_parity(folder: Path, model, files, y: np.ndarray) -> dict:
    """Each TFLite export against the Keras model on the test split (the same
    crops, the same tolerance as in training), and the test macro-F1 through each."""
    from maskdet.predict.classifier import TFLITE_FILES, KerasClassifier, LiteClassifier, predict_batched
    from maskdet.study.export import parity

    out = {}
    crops = load_crops(files, int(model.input_shape[1]))
    reference = predict_batched(KerasClassifier(model), crops)
    for kind, name in TFLITE_FILES.items():
        if not (folder / name).is_file():
            continue
        probs = predict_batched(LiteClassifier(folder / name), crops)
        check = parity(reference, probs)
        out.update(
            {
                f"serving_{kind}_max_abs_diff": check["max_abs_diff"],
                f"serving_{kind}_label_agreement": check["label_agreement"],
                f"serving_{kind}_passed": float(check["passed"]),
                f"serving_{kind}_test_f1_macro": classification_metrics(y, probs)["f1_macro"],
            }
        )
    return out


def _scene_evaluation(root: Path, predictor: Predictor, params: Params, frame: pd.DataFrame) -> dict:
    """The full Predictor on the test scenes (detection P/R at IoU 0.5, AP@0.5,
    mAP@0.5) and each detector's recall on the same faces."""
    from maskdet.predict.drawing import annotate
    from maskdet.study.scene_headroom import headroom_metrics, scene_headroom
    from maskdet.study.scene_intervals import scene_groups, scene_intervals
    from maskdet.study.scenes import (
        compared_detectors,
        detection_recall,
        detection_table,
        read_scenes,
        scene_answers,
        scene_metrics,
    )

    folder = root / "data" / "processed" / "scenes"
    scenes = read_scenes(folder) if folder.is_dir() else []
    if not scenes:
        empty = pd.DataFrame()
        return {"metrics": {}, "detectors": {}, "predictions": empty, "headroom": empty, "gallery": []}
    predictions, shown_from = scene_answers(predictor, scenes, params.evaluate.scene_candidates_from)
    metrics, table = scene_metrics(scenes, predictions, shown_from=shown_from)
    metrics.update(scene_intervals(scenes, table, scene_groups(scenes, frame)))
    headroom = scene_headroom(scenes, table)
    metrics.update(headroom_metrics(headroom))
    detectors = {
        name: detection_recall(detection_table(scenes, detector))
        for name, detector in compared_detectors(params.predict).items()
    }
    gallery = []
    for scene, pred in list(zip(scenes, predictions))[:6]:
        shown = annotate(load_rgb(scene.image), [f for f in pred.faces if f.score >= shown_from])
        truth = ", ".join(o.label for o in scene.objects)
        gallery.append((shown, f"{scene.image.name}\ntruth: {truth}"))
    return {"metrics": metrics, "detectors": detectors, "predictions": table, "headroom": headroom, "gallery": gallery}


def _loso_figure(loso: pd.DataFrame):
    names = {
        "f1_macro_style_seen": "style in training (same budget)",
        "f1_macro_style_unseen": "style held out",
        "f1_macro_style_main": "main model",
    }
    long = loso.melt(id_vars="style", value_vars=list(names), var_name="training", value_name="f1_macro")
    long["training"] = long["training"].map(names)
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=long, x="style", y="f1_macro", hue="training", ax=ax)
    for c in ax.containers:
        ax.bar_label(c, fmt="%.2f", fontsize=8)
    ax.set(ylim=(0, 1.1), title="Leave-one-mask-style-out: macro-F1 on the held-out style's test crops")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
