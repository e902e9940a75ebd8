"""Training: two phases (frozen base, then the top of the base fine-tuned),
class weights from the training split, early stopping, a cosine learning-rate
schedule, the best epoch checkpointed and restored. Deterministic for a seed.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.errors import MissingFileError
from maskdet.io.atomic import atomic_path
from maskdet.params import Params
from maskdet.study.datasets import class_weights, image_dataset
from maskdet.study.model import build_model, set_trainable_top

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"


def set_determinism(seed: int) -> None:
    """Same seed, same data -> same weights (CPU; op determinism on)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _epoch_logger():
    import keras

    class EpochLogger(keras.callbacks.Callback):
        """Per-epoch metrics, time and learning rate: into the history and, live, into MLflow."""

        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []
            self.phase = "frozen"

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            lr = self.model.optimizer.learning_rate
            row = {
                "epoch": len(self.rows) + 1,
                "phase": self.phase,
                **{k: float(v) for k, v in (logs or {}).items()},
                "learning_rate": float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr)),
                "epoch_seconds": time.perf_counter() - self._start,
            }
            self.rows.append(row)
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metrics({k: v for k, v in row.items() if isinstance(v, float)}, step=row["epoch"])

    return EpochLogger()


def _compile(model, learning_rate: float, schedule: str, steps: int):
    import keras

    lr = learning_rate
    if schedule == "cosine" and steps > 0:
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


@dataclass
class TrainResult:
    model: object
    history: pd.DataFrame
    class_weights: dict[int, float]
    seconds: float


def train_classifier(
    train_frame: pd.DataFrame, val_frame: pd.DataFrame, params: Params, verbose: int = 0
) -> TrainResult:
    """Train on ``train_frame``, select the best epoch on ``val_frame`` (by val loss)."""
    import keras

    cfg, size = params.train, params.model.input_size
    set_determinism(cfg.seed)
    train_ds = image_dataset(
        train_frame["file"], train_frame["y"], size, cfg.batch_size, shuffle=True, seed=cfg.seed, look=cfg.augment
    )
    val_ds = image_dataset(val_frame["file"], val_frame["y"], size, cfg.batch_size)
    weights = class_weights(train_frame["y"].to_numpy()) if cfg.class_weights else None
    model = build_model(params.model, cfg.augment, len(LABELS), seed=cfg.seed)
    logger = _epoch_logger()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        # One checkpoint across both phases: it keeps the best val loss seen anywhere.
        checkpoint = keras.callbacks.ModelCheckpoint(
            best, monitor="val_loss", save_best_only=True, save_weights_only=True
        )
        callbacks = [logger, checkpoint]
        if cfg.early_stopping_patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience))
        steps = int(np.ceil(len(train_frame) / cfg.batch_size))
        _compile(model, cfg.learning_rate, cfg.lr_schedule, steps * cfg.epochs)
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            shuffle=False,  # the dataset shuffles itself (seeded); Keras would only warn that it ignores this
            class_weight=weights,
            callbacks=callbacks,
            verbose=verbose,
        )
        if cfg.fine_tune_epochs > 0 and set_trainable_top(model, cfg.fine_tune_layers):
            logger.phase = "fine_tune"
            done = len(logger.rows)
            _compile(model, cfg.fine_tune_learning_rate, cfg.lr_schedule, steps * cfg.fine_tune_epochs)
            model.fit(
                train_ds,
                validation_data=val_ds,
                initial_epoch=done,
                epochs=done + cfg.fine_tune_epochs,
                shuffle=False,
                class_weight=weights,
                callbacks=callbacks,
                verbose=verbose,
            )
        if best.exists():
            model.load_weights(best)
    history = pd.DataFrame(logger.rows)
    history["best"] = history["val_loss"] == history["val_loss"].min()
    return TrainResult(model, history, weights or {}, time.perf_counter() - started)


def save_model(
    result: TrainResult,
    out: Path,
    params: Params,
    provenance: dict,
    extra_files: dict[str, bytes] | None = None,
    extra_metadata: dict | None = None,
) -> Path:
    """Write ``out`` whole (model.keras, metadata.json, history.csv, and
    ``extra_files`` such as TFLite exports), never half."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        result.model.save(tmp / MODEL_FILE)
        result.history.to_csv(tmp / "history.csv", index=False)
        best = result.history[result.history["best"]].iloc[0]
        metadata = {
            "labels": list(LABELS),
            "input_size": params.model.input_size,
            "input": "RGB, float32 in [0, 255], shape (batch, size, size, 3); the model scales it itself",
            "backbone": params.model.backbone,
            "best_epoch": int(best["epoch"]),
            "best_val_loss": float(best["val_loss"]),
            "best_val_accuracy": float(best["val_accuracy"]),
            "class_weights": {LABELS[k]: v for k, v in result.class_weights.items()},
            "train_seconds": round(result.seconds, 1),
            "params": params.model_dump(),
            **provenance,
            **(extra_metadata or {}),
        }
        for name, content in (extra_files or {}).items():
            (tmp / name).write_bytes(content)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return out


def load_model(folder: Path):
    """The Keras model and its metadata from a ``models/`` folder."""
    import keras

    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise MissingFileError(f"{folder}: no {METADATA_FILE}; train a model first (`make repro`)")
    return keras.models.load_model(folder / MODEL_FILE), json.loads(meta_path.read_text())
