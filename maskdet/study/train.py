"""Training: two phases (frozen base, then the top of the base fine-tuned),
class weights from the training split, early stopping, a cosine learning-rate
schedule, the weights of the epoch with the lowest validation loss kept (or the
mean of the N lowest: ``train.average_epochs``). Deterministic for a seed.

While the base is frozen, only the head (dropout and the dense layer) learns,
and the base maps each augmented crop to the same features whatever the head
is. With ``train.frozen_copies`` > 0 the frozen phase computes the base's
features once for that many augmented copies of the training split (and once
for the validation split) and trains the head on them, epoch ``e`` on copy
``e % copies``: an epoch of the head costs milliseconds instead of a pass of
the base. The leave-one-style-out trainings share one such set of features;
the main training does not by default (docs/experiment-log.md: it cost accuracy
on real masked faces).
"""

from __future__ import annotations

import json
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
from maskdet.study.model import build_model, has_frozen_base, set_trainable_top

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"


def set_determinism(seed: int) -> None:
    """Same seed, same data -> same weights (CPU; op determinism on)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def distribution(name: str):
    """The tf.distribute strategy that ``train.strategy`` names. ``default``:
    TensorFlow's own, one device. ``mirrored``: MirroredStrategy over every
    visible GPU, or, where there is none, over the logical CPU devices (one on
    an ordinary machine; the test splits the CPU in two). Each replica takes
    ``train.batch_size`` crops a step."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


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


def _mean(arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    """The element-wise mean of one variable's values at several epochs, in its
    dtype; a variable that is not a float (an augmentation layer's seed state)
    keeps the first (the best epoch's) value."""
    first = arrays[0]
    return np.mean(arrays, axis=0).astype(first.dtype) if np.issubdtype(first.dtype, np.floating) else first


def _best_weights(model, count: int):
    """Keeps the whole classifier's weights (in memory) of the ``count`` epochs
    with the lowest validation losses seen in either phase; ``weights`` is their
    mean. Keras' ModelCheckpoint would save the model being fitted, which in the
    frozen phase is the head alone; and a weights file saved before fine-tuning,
    loaded after it, makes Keras warn about the optimizer. Averaging is sound
    here because batch normalisation stays frozen: the statistics do not move
    with the weights."""
    import keras

    class BestWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.kept: list[tuple[float, int, list[np.ndarray]]] = []  # (val loss, epoch, weights), best first

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            # a copy of the weights only for an epoch that enters the N best
            if loss is not None and (len(self.kept) < count or loss < self.kept[-1][0]):
                self.kept = sorted([*self.kept, (loss, epoch + 1, model.get_weights())], key=lambda k: k[0])[:count]

        @property
        def epochs(self) -> list[int]:
            return sorted(epoch for _, epoch, _ in self.kept)

        @property
        def weights(self) -> list[np.ndarray] | None:
            if not self.kept:
                return None
            return [_mean(arrays) for arrays in zip(*(w for _, _, w in self.kept))]

    return BestWeights()


def _crop_weights(labels: np.ndarray, weights: dict[int, float] | None) -> np.ndarray:
    """Each crop's class weight (ones without class weights)."""
    return np.array([weights[int(y)] for y in labels] if weights else np.ones(len(labels)), np.float32)


def _weighted(val_ds, weights: dict[int, float] | None):
    """The validation batches with each crop's class weight: the validation loss
    that picks the epoch weighs the classes as the training loss does. Unweighted,
    on a set with 26 masks to one incorrectly worn, the lowest loss went to an
    epoch that never said ``mask_weared_incorrect`` (docs/experiment-log.md)."""
    import tensorflow as tf

    if not weights:
        return val_ds
    table = tf.constant([weights[k] for k in range(len(LABELS))], tf.float32)
    return val_ds.map(lambda x, y: (x, y, tf.gather(table, y)))


def _frozen_validation(model, val_ds, val_y: np.ndarray, weights: dict[int, float] | None = None):
    """The frozen phase's ``val_loss`` and ``val_accuracy`` from the base's
    features of the validation crops, computed once. With the base frozen and the
    validation crops never augmented, those features are the same every epoch;
    Keras' own validation pass ran the base over them again each time (about a
    fifth of a frozen epoch). The training itself is untouched: the same weights,
    the same epoch chosen. Must come first among the callbacks: the others read
    the two numbers it writes into the epoch's logs. The loss is weighted by
    class as Keras weighs it (``_weighted``): the mean of weight times loss."""
    import keras

    extractor, head = _head_split(model)
    per_crop = _crop_weights(val_y, weights)
    features = _pooled(lambda x: extractor(x, training=False), val_ds, extractor.output_shape[-1])

    class FrozenValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probs = np.asarray(head(features, training=False))
            loss = np.asarray(keras.losses.sparse_categorical_crossentropy(val_y, probs))
            logs["val_accuracy"] = float(np.mean(probs.argmax(axis=1) == val_y))
            logs["val_loss"] = float(np.mean(per_crop * loss))

    return FrozenValidation()


@dataclass
class FrozenFeatures:
    """The frozen base's pooled features: ``train`` (copies, n, d) of augmented
    training crops, ``val`` (n, d) of the validation crops as they are."""

    train: np.ndarray
    val: np.ndarray
    seconds: float

    def subset(self, train_rows: np.ndarray, val_rows: np.ndarray) -> FrozenFeatures:
        """The features of the rows selected by two boolean masks (e.g. one mask style left out)."""
        return FrozenFeatures(self.train[:, train_rows], self.val[val_rows], self.seconds)


def _pooled(function, ds, width: int) -> np.ndarray:
    """``function`` (crops to the base's pooled features) over every batch of ``ds``."""
    parts = [np.asarray(function(x)) for x, _ in ds]
    return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)


def _head_split(model):
    """(extractor, head) of a model with a frozen base: augmentation to pooling, and
    dropout plus dense, sharing the model's layers (training the head trains the model)."""
    import keras

    pool = model.get_layer("pool")
    extractor = keras.Model(model.input, pool.output)
    features = keras.Input(pool.output.shape[1:], name="features")
    head = keras.Model(features, model.get_layer("probs")(model.get_layer("dropout")(features)), name="head")
    return extractor, head


def frozen_features(train_frame: pd.DataFrame, val_frame: pd.DataFrame, params: Params) -> FrozenFeatures | None:
    """The features the frozen phase trains the head on (see the module's note);
    None for a backbone without a frozen base (``small_cnn`` trains whole) or
    with ``train.frozen_copies`` 0 (the base runs on fresh augmentations every epoch)."""
    if not has_frozen_base(params.model) or params.train.frozen_copies == 0:
        return None
    import tensorflow as tf

    cfg, size = params.train, params.model.input_size
    started = time.perf_counter()
    set_determinism(cfg.seed)
    extractor, _ = _head_split(build_model(params.model, cfg.augment, len(LABELS), seed=cfg.seed))
    spec = [tf.TensorSpec([None, size, size, 3], tf.float32)]
    augmented = tf.function(lambda x: extractor(x, training=True), input_signature=spec)
    plain = tf.function(lambda x: extractor(x, training=False), input_signature=spec)

    width = extractor.output_shape[-1]

    def run(function, frame, **kwargs):
        return _pooled(function, image_dataset(frame["file"], frame["y"], size, 64, **kwargs), width)

    copies = cfg.frozen_copies
    train = run(augmented, train_frame, seed=cfg.seed, look=cfg.augment, repeat=copies)
    return FrozenFeatures(
        train.reshape(copies, len(train_frame), -1), run(plain, val_frame), time.perf_counter() - started
    )


def _copy_per_epoch(features: np.ndarray, labels: np.ndarray, weights: dict | None, cfg, batch: int):
    """All the frozen phase's batches as one dataset: epoch e is copy e % copies,
    shuffled anew, with class weights as sample weights. One dataset for every
    epoch (fitted with ``steps_per_epoch``) because Keras keeps such an iterator
    across epochs; a per-epoch switch in a ``PyDataset`` raced its prefetching."""
    import tensorflow as tf

    copies, n = features.shape[:2]
    rng = np.random.default_rng(cfg.seed)
    rows = np.stack([rng.permutation(n) for _ in range(cfg.epochs)])
    copy = np.repeat((np.arange(cfg.epochs) % copies)[:, None], n, axis=1)
    sample_weight = np.array([weights[int(y)] for y in labels] if weights else np.ones(n), np.float32)
    table, labels, sample_weight = (tf.constant(a) for a in (features, labels, sample_weight))
    ds = tf.data.Dataset.from_tensor_slices((copy, rows)).flat_map(
        lambda c, r: tf.data.Dataset.from_tensor_slices((c, r)).batch(batch)
    )
    return ds.map(
        lambda c, r: (tf.gather_nd(table, tf.stack([c, r], axis=1)), tf.gather(labels, r), tf.gather(sample_weight, r))
    ).prefetch(2)


@dataclass
class TrainResult:
    model: object
    history: pd.DataFrame
    class_weights: dict[int, float]
    seconds: float
    features_seconds: float = 0.0  # of ``seconds``: computing the frozen base's features
    replicas: int = 1  # devices that trained in step (train.strategy)
    class_prior: dict[int, float] | None = None  # the class shares the loss saw (predict.prior)


def train_classifier(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    params: Params,
    verbose: int = 0,
    features: FrozenFeatures | None = None,
) -> TrainResult:
    """Train on ``train_frame``, select the best epoch on ``val_frame`` (by val loss).
    ``features``: the frozen base's features of these two frames, when the caller
    has them already (``frozen_features``); computed here otherwise."""
    cfg = params.train
    started = time.perf_counter()
    if features is None:
        features = frozen_features(train_frame, val_frame, params)
    set_determinism(cfg.seed)
    strategy = distribution(cfg.strategy)
    with strategy.scope():  # the model's and the optimizers' variables live on every replica
        return _train(train_frame, val_frame, params, verbose, features, strategy.num_replicas_in_sync, started)


def _train(train_frame, val_frame, params, verbose, features, replicas: int, started: float) -> TrainResult:
    import keras

    cfg, size = params.train, params.model.input_size
    batch = cfg.batch_size * replicas  # train.batch_size is per replica
    train_y, val_y = train_frame["y"].to_numpy(np.int32), val_frame["y"].to_numpy(np.int32)
    weights = class_weights(train_y) if cfg.class_weights else None
    model = build_model(params.model, cfg.augment, len(LABELS), seed=cfg.seed)
    logger = _epoch_logger()
    steps = int(np.ceil(len(train_frame) / batch))
    train_ds = image_dataset(train_frame["file"], train_y, size, batch, shuffle=True, seed=cfg.seed, look=cfg.augment)
    val_ds = image_dataset(val_frame["file"], val_y, size, batch)
    val_weighted = _weighted(val_ds, weights)
    best = _best_weights(model, cfg.average_epochs)
    callbacks = [logger, best]
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience))
    if features is not None:
        _, head = _head_split(model)
        _compile(head, cfg.learning_rate, cfg.lr_schedule, steps * cfg.epochs)
        head.fit(
            _copy_per_epoch(features.train, train_y, weights, cfg, batch),
            validation_data=(features.val, val_y, _crop_weights(val_y, weights)),
            batch_size=batch,
            steps_per_epoch=steps,
            epochs=cfg.epochs,
            shuffle=False,  # shuffled in the dataset
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        _compile(model, cfg.learning_rate, cfg.lr_schedule, steps * cfg.epochs)
        frozen_base = has_frozen_base(params.model)
        model.fit(
            train_ds,
            validation_data=None if frozen_base else val_weighted,
            epochs=cfg.epochs,
            shuffle=False,  # the dataset shuffles itself (seeded); Keras would only warn that it ignores this
            class_weight=weights,
            callbacks=[_frozen_validation(model, val_ds, val_y, weights), *callbacks] if frozen_base else callbacks,
            verbose=verbose,
        )
    if cfg.fine_tune_epochs > 0 and set_trainable_top(model, cfg.fine_tune_layers):
        logger.phase = "fine_tune"
        done = len(logger.rows)
        _compile(model, cfg.fine_tune_learning_rate, cfg.lr_schedule, steps * cfg.fine_tune_epochs)
        model.fit(
            train_ds,
            validation_data=val_weighted,
            initial_epoch=done,
            epochs=done + cfg.fine_tune_epochs,
            shuffle=False,
            class_weight=weights,
            callbacks=callbacks,
            verbose=verbose,
        )
    if best.weights is not None:
        model.set_weights(best.weights)
    history = pd.DataFrame(logger.rows)
    history["best"] = history["val_loss"] == history["val_loss"].min()
    if cfg.average_epochs > 1:  # one epoch kept: the files a training writes stay as they were
        history["kept"] = history["epoch"].isin(best.epochs)  # the epochs whose weights' mean is the model
    return TrainResult(
        model,
        history,
        weights or {},
        time.perf_counter() - started,
        features.seconds if features else 0.0,
        replicas,
        loss_prior(train_y, weights),
    )


def loss_prior(labels: np.ndarray, weights: dict[int, float] | None) -> dict[int, float]:
    """The share of each class in the loss: its share of the training crops, times
    its class weight, normalised (a third each with balancing weights). A
    classifier's probabilities carry these shares; the Predictor moves them to
    the ones it answers for (``predict.prior``)."""
    mass = np.bincount(labels, minlength=len(LABELS)).astype(float)
    if weights:
        mass *= np.array([weights.get(k, 1.0) for k in range(len(LABELS))])
    return {k: float(v) for k, v in enumerate(mass / mass.sum())}


def kept_epochs(history: pd.DataFrame) -> list[int]:
    """The epochs whose weights' mean is the model (the best epoch alone where
    one epoch's weights were kept: no ``kept`` column)."""
    column = history["kept"] if "kept" in history else history["best"]
    return [int(e) for e in history.loc[column, "epoch"]]


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
            **({"kept_epochs": kept_epochs(result.history)} if "kept" in result.history else {}),
            "best_val_loss": float(best["val_loss"]),
            "best_val_accuracy": float(best["val_accuracy"]),
            "class_weights": {LABELS[k]: v for k, v in result.class_weights.items()},
            "class_prior": {LABELS[k]: round(v, 6) for k, v in (result.class_prior or {}).items()},
            "train_seconds": round(result.seconds, 1),
            "frozen_features_seconds": round(result.features_seconds, 1),
            "replicas": result.replicas,
            "global_batch_size": params.train.batch_size * result.replicas,
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
