"""What each pipeline notebook runs: one call per stage, which computes, writes
the stage's outputs and logs everything to MLflow. The notebooks show what
these return; papermill runs them inside DVC stages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from maskdet import plots
from maskdet.classifier import build_exports
from maskdet.datasets import load_crops, read_manifest
from maskdet.evaluate import (breakdown, curve_tables, leave_one_style_out, predict_probs, worst_mistakes)
from maskdet.metrics import classification_metrics, reliability_bins
from maskdet.params import Params, parse_params
from maskdet.paths import project_root, resolve
from maskdet.prepare import write_json_atomic
from maskdet.serving import log_predictor
from maskdet.tracking import provenance, stage_run
from maskdet.train import load_model, save_model, train_classifier

REGISTERED_MODEL = "maskdet"
CHAMPION = "champion"


def notebook_params(**sections) -> Params:
    """Validate the sections a notebook received (its parameters cell, or
    papermill's injection of params.yaml) into Params."""
    return parse_params({k: v for k, v in sections.items() if v is not None}, source="notebook parameters")


def provenance_markdown(params: Params, root: Path | None = None) -> str:
    """The line every report starts with: which commit, params and data produced it."""
    prov = provenance(params.model_dump(), root or project_root())
    return (f"**Produced by** commit `{prov['git_commit']}`, params sha256 `{prov['params_sha256'][:16]}`, "
            f"data sha256 `{prov['data_sha256'][:16]}` (`data/processed/manifest.csv`).")


def _log_figures(figures: dict, folder: Path | None = None) -> None:
    """Every figure into MLflow (PNG for matplotlib, HTML for plotly) and, with a folder, onto disk."""
    for name, fig in figures.items():
        if hasattr(fig, "to_html"):  # plotly: self-contained HTML, readable offline
            html = fig.to_html(include_plotlyjs=True)
            mlflow.log_text(html, f"figures/{name}.html")
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}.html").write_text(html)
            continue
        mlflow.log_figure(fig, f"figures/{name}.png")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def run_eda(params: Params, root: Path | None = None) -> dict:
    root = root or project_root()
    frame = read_manifest(root)
    report = json.loads((root / "reports" / "data_validation.json").read_text())
    figures = {"class_balance": plots.class_balance(frame),
               "class_balance_interactive": plots.class_balance_interactive(frame),
               "sizes": plots.size_distribution(frame),
               "samples": plots.sample_grid(frame, seed=params.data.seed)}
    identities = frame.groupby(["split"]).agg(people=("person", "nunique"), photos=("photo", "nunique"),
                                              groups=("group", "nunique"), crops=("path", "size"))
    styles = pd.crosstab(frame["style"], frame["label"])
    dropped = pd.DataFrame(report["dropped"], columns=["item", "reason", "detail"])
    with stage_run("eda", params.model_dump(), root):
        _log_figures(figures)
        mlflow.log_dict(report, "data_validation.json")
        mlflow.log_metrics({"crops": len(frame), "dropped": len(dropped), "people": frame["person"].nunique(),
                            "near_duplicate_groups": len(report["near_duplicate_groups"]),
                            **{f"crops_{s}": int((frame["split"] == s).sum()) for s in ("train", "val", "test")}})
    plt.close("all")
    sheet = resolve(params.data.path, root) / "contact_sheet.png"
    return {"frame": frame, "report": report, "figures": figures, "identities": identities, "styles": styles,
            "dropped": dropped, "contact_sheet": sheet if sheet.is_file() else None}


def _layer_table(model) -> pd.DataFrame:
    rows = []
    for layer in model.layers:
        for inner in (layer.layers if hasattr(layer, "layers") and layer.name.startswith("mobilenet") else [layer]):
            rows.append({"layer": inner.name, "type": type(inner).__name__, "params": inner.count_params(),
                         "trainable": bool(inner.trainable and inner.trainable_weights)})
    return pd.DataFrame(rows)


def _log_diagram(model) -> bool:
    """The architecture as a picture, where pydot and Graphviz are installed (they are optional)."""
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "architecture.png"
        try:
            keras.utils.plot_model(model, to_file=str(path), show_shapes=True, expand_nested=False)
        except (ImportError, OSError):
            return False
        if path.is_file():
            mlflow.log_artifact(str(path), "model")
        return path.is_file()


def _installed(distributions) -> list[str]:
    """``name==version`` for each of ``distributions`` installed here."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return pins


def _log_classifier(model, size: int) -> None:
    """Log the Keras classifier alone (flavour ``keras``, signature and input
    example) for researchers who want the bare network; the registered model is
    the whole Predictor, logged by the evaluation.

    ``mlflow.keras.log_model`` with an input example fails in MLflow 3.17 (it
    writes the example before creating its folder), so the model is saved into
    a folder made here and logged as artifacts.
    """
    import os
    import tempfile

    from mlflow.models import infer_signature

    example = np.zeros((1, size, size, 3), np.float32)
    signature = infer_signature(example, model.predict(example, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "classifier")
        os.makedirs(path)
        # Requirements stated, not inferred: inference reloads the model in a
        # subprocess to see what it imports (about 25 s a training).
        mlflow.keras.save_model(model, path, signature=signature, input_example=example,
                                pip_requirements=_installed(("keras", "numpy", "tensorflow-cpu", "tensorflow")))
        mlflow.log_artifacts(path, "classifier")


def run_training(params: Params, root: Path | None = None, out: Path | None = None) -> dict:
    root = root or project_root()
    out = out or root / "models"
    frame = read_manifest(root)
    prov = provenance(params.model_dump(), root)
    with stage_run("train", params.model_dump(), root) as run:
        result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
        layers = _layer_table(result.model)
        mlflow.log_text(layers.to_string(index=False), "model/layers.txt")
        _log_diagram(result.model)
        mlflow.log_metrics({"params_total": float(result.model.count_params()),
                            "train_seconds": result.seconds,
                            "best_epoch": float(result.history.loc[result.history["best"], "epoch"].iloc[0])})
        figures = {"history": plots.history(result.history)}
        _log_figures(figures)
        _log_classifier(result.model, params.model.input_size)
        prov["mlflow_run_id"] = run.info.run_id
        # TFLite exports, checked against the Keras model on the validation
        # split; the Predictor uses the fastest one that passes parity.
        val = frame[frame["split"] == "val"]
        exports, serving = build_exports(result.model, load_crops(val["file"], params.model.input_size))
        mlflow.log_dict(serving, "model/serving.json")
        mlflow.log_metrics({f"serving_{k}_{m}": float(v[m]) for k, v in serving["runtimes"].items()
                            for m in ("max_abs_diff", "label_agreement", "ms_per_face") if m in v})
        mlflow.set_tag("serving_runtime", serving["runtime"])
        save_model(result, out, params, prov, exports, {"serving": serving})
        mlflow.log_artifact(str(out / "metadata.json"), "model")
    # Wall-clock columns stay in models/history.csv and MLflow: in the git-tracked
    # plot file they would change on every run of an otherwise identical training.
    _write_csv(root / "reports" / "plots" / "history.csv", result.history.drop(columns=["epoch_seconds"]))
    plt.close("all")
    return {"result": result, "layers": layers, "figures": figures, "provenance": prov, "serving": serving}


def _move_champion(version: str, f1: float) -> bool:
    """Give ``version`` the champion alias when its test macro-F1 beats the current champion's."""
    client = mlflow.MlflowClient()
    client.set_model_version_tag(REGISTERED_MODEL, version, "test_f1_macro", f"{f1:.6f}")
    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
        best = float(current.tags.get("test_f1_macro", "-inf"))
    except mlflow.exceptions.MlflowException:
        best = float("-inf")
    if f1 > best:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
        return True
    return False


def run_evaluation(params: Params, root: Path | None = None) -> dict:
    root = root or project_root()
    model, meta = load_model(root / "models")
    frame = read_manifest(root)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    size = meta["input_size"]
    probs = predict_probs(model, test["file"], size)
    y = test["y"].to_numpy()
    metrics = classification_metrics(y, probs, bins=params.evaluate.calibration_bins)
    bins = reliability_bins(y, probs, params.evaluate.calibration_bins)
    by_style = breakdown(test, probs, "style")
    by_person = breakdown(test, probs, "person")
    by_photo = breakdown(test, probs, "photo")  # the data source of every crop
    mistakes = worst_mistakes(test, probs, params.evaluate.worst_mistakes)
    history = pd.read_csv(root / "models" / "history.csv")
    figures = {
        "confusion_counts": plots.confusion(y, probs.argmax(1), normalize=False),
        "confusion_normalised": plots.confusion(y, probs.argmax(1), normalize=True),
        "roc": plots.curves(y, probs, "roc"), "pr": plots.curves(y, probs, "pr"),
        "reliability": plots.reliability(bins),
        "confidence": plots.confidence_histograms(y, probs),
        "history": plots.history(history),
        "f1_by_style": plots.metric_bars(by_style, "style", title="Macro-F1 by mask style (test)"),
    }
    if len(mistakes):
        figures["worst_mistakes"] = plots.image_grid(
            list(mistakes["file"]), [f"true {r.label}\npred {r.predicted} {r.confidence:.0%}"
                                     for r in mistakes.itertuples()], columns=6)
    serving = _serving_parity(root / "models", meta, test["file"], probs, y)
    scenes = _scene_evaluation(root, params)
    if scenes["gallery"]:
        figures["scene_predictions"] = plots.image_grid(*zip(*scenes["gallery"]), columns=3, size=4.0)
    loso = pd.DataFrame()
    with stage_run("evaluate", params.model_dump(), root):
        if params.evaluate.leave_one_style_out:
            loso = leave_one_style_out(frame, params, model, size)
            if len(loso):
                figures["leave_one_style_out"] = _loso_figure(loso)
        summary = {f"test_{k}": v for k, v in metrics.items()}
        if len(loso):
            summary["loso_f1_macro_mean"] = float(loso["f1_macro_style_unseen"].mean())
            summary["loso_in_style_f1_macro_mean"] = float(loso["f1_macro_style_seen"].mean())
            summary["loso_main_model_f1_macro_mean"] = float(loso["f1_macro_style_main"].mean())
            for r in loso.itertuples():
                summary[f"loso_f1_macro_{r.style}"] = float(r.f1_macro_style_unseen)
        summary.update(serving)
        summary.update({f"scene_{k}": float(v) for k, v in scenes["metrics"].items()})
        for detector, recall in scenes["detectors"].items():
            summary.update({f"detector_{detector}_{k}": float(v) for k, v in recall.items()})
        mlflow.log_metrics({k: v for k, v in summary.items() if np.isfinite(v)})
        _log_figures(figures, root / "reports" / "figures")
        for name, table in {"by_style": by_style, "by_person": by_person, "by_photo": by_photo,
                            "leave_one_style_out": loso, "scene_predictions": scenes["predictions"],
                            "worst_mistakes": mistakes.drop(columns=["file"], errors="ignore")}.items():
            mlflow.log_text(table.to_csv(index=False), f"tables/{name}.csv")
        # The registered model is the whole Predictor, as `mlflow models serve` runs it.
        logged = log_predictor(root / "models", params.predict)
        version = str(mlflow.register_model(logged.model_uri, REGISTERED_MODEL).version)
        # links the registry entry to the models/ folder (whose metadata names its training run)
        mlflow.MlflowClient().set_model_version_tag(REGISTERED_MODEL, version, "train_run_id",
                                                     str(meta.get("mlflow_run_id", "")))
        champion = _move_champion(version, metrics["f1_macro"])
        mlflow.set_tag("champion", str(champion).lower())
        mlflow.set_tag("registered_version", version)
    for name, table in curve_tables(y, probs).items():
        _write_csv(root / "reports" / "plots" / f"{name}.csv", table)
    write_json_atomic(root / "reports" / "metrics.json",
                      {k: (round(v, 6) if np.isfinite(v) else None) for k, v in summary.items()})
    plt.close("all")
    return {"metrics": metrics, "summary": summary, "by_style": by_style, "by_person": by_person, "by_photo": by_photo,
            "mistakes": mistakes, "loso": loso, "figures": figures, "champion": champion, "metadata": meta,
            "serving": serving, "scenes": scenes, "registered_version": version}


def _serving_parity(folder: Path, meta: dict, files, reference: np.ndarray, y: np.ndarray) -> dict:
    """Each TFLite export against the Keras model on the test split (the same
    tolerance as in training), and the test macro-F1 through each."""
    from maskdet.classifier import TFLITE_FILES, LiteClassifier, parity, predict_batched

    out = {}
    crops = load_crops(files, meta["input_size"])
    for kind, name in TFLITE_FILES.items():
        if not (folder / name).is_file():
            continue
        probs = predict_batched(LiteClassifier(folder / name), crops)
        check = parity(reference, probs)
        out.update({f"serving_{kind}_max_abs_diff": check["max_abs_diff"],
                    f"serving_{kind}_label_agreement": check["label_agreement"],
                    f"serving_{kind}_passed": float(check["passed"]),
                    f"serving_{kind}_test_f1_macro": classification_metrics(y, probs)["f1_macro"]})
    return out


def _scene_evaluation(root: Path, params: Params) -> dict:
    """The full Predictor on the test scenes (detection P/R at IoU 0.5, AP@0.5,
    mAP@0.5) and each detector's recall on the same faces."""
    from maskdet.images import load_rgb
    from maskdet.predict import Predictor, annotate, compared_detectors
    from maskdet.scenes import detection_recall, detection_table, read_scenes, scene_metrics

    folder = root / "data" / "processed" / "scenes"
    scenes = read_scenes(folder) if folder.is_dir() else []
    if not scenes:
        return {"metrics": {}, "detectors": {}, "predictions": pd.DataFrame(), "gallery": []}
    predictor = Predictor.from_params(root / "models", params)
    predictions = [predictor.predict(s.image) for s in scenes]
    metrics, table = scene_metrics(scenes, predictions)
    detectors = {name: detection_recall(detection_table(scenes, detector))
                 for name, detector in compared_detectors(params.predict).items()}
    gallery = []
    for scene, pred in list(zip(scenes, predictions))[:6]:
        shown = annotate(load_rgb(scene.image), pred.faces)
        truth = ", ".join(o.label for o in scene.objects)
        gallery.append((shown, f"{scene.image.name}\ntruth: {truth}"))
    return {"metrics": metrics, "detectors": detectors, "predictions": table, "gallery": gallery}


def _loso_figure(loso: pd.DataFrame):
    names = {"f1_macro_style_seen": "style in training (same budget)",
             "f1_macro_style_unseen": "style held out",
             "f1_macro_style_main": "main model"}
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


def run_report(params: Params, root: Path | None = None) -> list[Path]:
    """Executed notebooks -> self-contained HTML without code (reports/html), attached to MLflow."""
    from nbconvert import HTMLExporter
    import nbformat

    root = root or project_root()
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    out = root / "reports" / "html"
    tmp = out.with_name("html.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written = []
    for nb_path in sorted((root / "reports" / "notebooks").glob("*.ipynb")):
        body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
        (tmp / f"{nb_path.stem}.html").write_text(body)
        written.append(out / f"{nb_path.stem}.html")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    with stage_run("report", params.model_dump(), root):
        mlflow.log_artifacts(str(out), "reports")
        parent = mlflow.get_parent_run(mlflow.active_run().info.run_id)
        client = mlflow.MlflowClient()
        for path in written:
            client.log_artifact(parent.info.run_id, str(path), "reports")
    return written
