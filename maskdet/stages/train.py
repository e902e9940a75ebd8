"""The training stage (notebooks/02_train.ipynb): train, export the TFLite
runtimes that pass parity, and write ``models/`` with its metadata."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.params import Params
from maskdet.paths import TRAIN_SCENES
from maskdet.predict import drift
from maskdet.quiet import filtering_native_stderr
from maskdet.stages.common import log_figures, write_csv
from maskdet.stages.workspace import workspace
from maskdet.study import plots
from maskdet.study.boxes import fit_on_scenes
from maskdet.study.datasets import load_crops, read_manifest
from maskdet.study.export import build_exports
from maskdet.study.scenes import read_scenes
from maskdet.study.tracking import hardware, provenance, stage_run
from maskdet.study.train import kept_epochs, save_model, train_classifier


def _layer_table(model) -> pd.DataFrame:
    rows = []
    for layer in model.layers:
        for inner in layer.layers if hasattr(layer, "layers") and layer.name.startswith("mobilenet") else [layer]:
            rows.append(
                {
                    "layer": inner.name,
                    "type": type(inner).__name__,
                    "params": inner.count_params(),
                    "trainable": bool(inner.trainable and inner.trainable_weights),
                }
            )
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
        mlflow.keras.save_model(
            model,
            path,
            signature=signature,
            input_example=example,
            pip_requirements=_installed(("keras", "numpy", "tensorflow-cpu", "tensorflow")),
        )
        mlflow.log_artifacts(path, "classifier")


def input_profile(train: pd.DataFrame, params: Params) -> dict:
    """The training crops' face width and brightness, the reference that the served
    model's input-drift gauges compare with (``maskdet.predict.drift``). A crop's
    face is its width less the padding the data stage added."""
    from PIL import Image

    widths = [drift.face_width(w / (1 + 2 * params.data.crop_padding), params.model.input_size) for w in train["width"]]
    brightness = []
    for path in train["file"]:
        with Image.open(path) as img:
            brightness.append(float(np.asarray(img.convert("RGB")).mean()))
    return {"face_width": drift.profile(widths), "brightness": drift.profile(brightness)}


@filtering_native_stderr
def run_training(params: Params, root: Path | None = None, out: Path | None = None) -> dict:
    """Train, export and write the model folder (``out``, by default the
    workspace's: ``models/`` under ``dvc repro``, ``runs/<timestamp>/models``
    anywhere else)."""
    ws = workspace("train", root)
    root = ws.root
    out = out or ws.models
    frame = read_manifest(root)
    prov = provenance(params.model_dump(), root)
    with stage_run("train", params.model_dump(), root, ws) as run:
        result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
        layers = _layer_table(result.model)
        mlflow.log_text(layers.to_string(index=False), "model/layers.txt")
        _log_diagram(result.model)
        mlflow.log_metrics(
            {
                "params_total": float(result.model.count_params()),
                "train_seconds": result.seconds,
                "best_epoch": float(_best_epoch(result.history)),
            }
        )
        figures = {"history": plots.history(result.history)}
        log_figures(figures)
        _log_classifier(result.model, params.model.input_size)
        prov["mlflow_run_id"] = run.info.run_id
        # TFLite exports, checked against the Keras model on the validation
        # split; the Predictor uses the fastest one that passes parity.
        val = frame[frame["split"] == "val"]
        exports, serving = build_exports(result.model, load_crops(val["file"], params.model.input_size))
        mlflow.log_dict(serving, "model/serving.json")
        mlflow.log_metrics(
            {
                f"serving_{k}_{m}": float(v[m])
                for k, v in serving["runtimes"].items()
                for m in ("max_abs_diff", "label_agreement", "ms_per_face")
                if m in v
            }
        )
        mlflow.set_tag("serving_runtime", serving["runtime"])
        correction = _box_correction(root, params)
        if correction is not None:
            mlflow.log_dict(correction, "model/box_correction.json")
            mlflow.log_metric("box_correction_pairs", float(correction["pairs"]))
        extra = {
            "serving": serving,
            "hardware": hardware(),
            "box_correction": correction,
            "input_profile": input_profile(frame[frame["split"] == "train"], params),
        }
        save_model(result, out, params, prov, exports, extra)
        mlflow.log_artifact(str(out / "metadata.json"), "model")
    # Wall-clock columns stay in models/history.csv and MLflow: in the git-tracked
    # plot file they would change on every run of an otherwise identical training.
    write_csv(ws.out / "reports" / "plots" / "history.csv", result.history.drop(columns=["epoch_seconds"]))
    plt.close("all")
    return {
        "result": result,
        "layers": layers,
        "figures": figures,
        "provenance": prov,
        "serving": serving,
        "history_table": _history_table(result.history),
        "best_epoch": _best_epoch(result.history),
        "class_weights": pd.Series(
            {LABELS[k]: round(v, 3) for k, v in result.class_weights.items()}, name="weight"
        ).to_frame(),
        "layers_shown": _layers_shown(layers),
        "captions": _captions(result, frame, layers, params),
    }


def _box_correction(root: Path, params: Params) -> dict | None:
    """The detector's box correction fitted on the training photos of a VOC set
    (``maskdet.study.boxes``); None for data without hand-drawn scene boxes."""
    folder = root / "data" / "processed" / TRAIN_SCENES
    scenes = read_scenes(folder) if folder.is_dir() else []
    # no progress bar: the stage runs in a notebook, and its report takes no standard-error output
    correction = fit_on_scenes(params.predict, scenes) if scenes else None
    return correction.to_dict() if correction is not None else None


def _best_epoch(history: pd.DataFrame) -> int:
    """The epoch with the lowest validation loss (the first of those kept)."""
    return int(history.loc[history["best"], "epoch"].iloc[0])


def _kept_phrase(history: pd.DataFrame) -> str:
    """Which epochs the model's weights come from, in words."""
    epochs = kept_epochs(history)
    if len(epochs) == 1:
        return f"epoch {epochs[0]}, the lowest validation loss, whose weights are kept"
    listed = ", ".join(map(str, epochs[:-1])) + f" and {epochs[-1]}"
    return f"epochs {listed}, the {len(epochs)} lowest validation losses, whose weights' mean is kept"


def _history_table(history: pd.DataFrame) -> pd.DataFrame:
    """The per-epoch table as the report shows it: four decimals, except the
    learning rate, which a cosine schedule takes below 0.0001."""
    shown = history.round(4)
    shown["learning_rate"] = history["learning_rate"].map("{:.2e}".format)
    return shown


LAYERS_SHOWN = 25


def _with_weights(layers: pd.DataFrame) -> pd.DataFrame:
    return layers[layers["params"] > 0]


def _layers_shown(layers: pd.DataFrame) -> pd.DataFrame:
    """The report's layer table: the last LAYERS_SHOWN layers with weights (the caption says so)."""
    return _with_weights(layers).tail(LAYERS_SHOWN)


def _captions(result, frame: pd.DataFrame, layers: pd.DataFrame, params: Params) -> dict[str, str]:
    """What each figure and table of the training report shows, with this run's numbers."""
    history = result.history
    counts = frame["split"].value_counts()
    frozen = int((history["phase"] == "frozen").sum())
    tuned = int((history["phase"] == "fine_tune").sum())
    weighted = _with_weights(layers)
    return {
        "history": f"Loss and accuracy per epoch on the {counts.get('train', 0)} training crops (with "
        f"augmentation) and the {counts.get('val', 0)} validation crops: {frozen} epochs with the base frozen"
        + (f", then {tuned} fine-tuning its top layers (after the dotted line)" if tuned else "")
        + f". Circled: {_kept_phrase(history)}.",
        "history_table": "The same per epoch, with the learning rate of the schedule "
        f"({params.train.lr_schedule}) and the seconds each epoch took.",
        "class_weights": "Class weights of the loss, from the inverse class frequency of the training split.",
        "layers": f"The last {min(LAYERS_SHOWN, len(weighted))} of the {len(weighted)} layers with weights "
        "(the top of the base and the head); every layer is in MLflow (model/layers.txt).",
    }
