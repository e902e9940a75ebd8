"""The processed data as tables and as tf.data pipelines."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import LABELS


def read_manifest(root: Path) -> pd.DataFrame:
    """data/processed/manifest.csv with absolute paths in ``file`` and the label index in ``y``."""
    path = root / "data" / "processed" / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the data stage first (`dvc repro data` or `make repro`)")
    frame = pd.read_csv(path, keep_default_na=False)
    frame["file"] = [str(root / "data" / "processed" / p) for p in frame["path"]]
    frame["y"] = [LABELS.index(label) for label in frame["label"]]
    return frame


def class_weights(labels: np.ndarray, num_classes: int = len(LABELS)) -> dict[int, float]:
    """Inverse-frequency weights, mean 1 over the training items (scikit-learn's 'balanced')."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def resize_for_model(image, size: int):
    """The one resize between a face crop and the classifier, in training and in
    prediction alike: antialiased bilinear to size x size, float32 in [0, 255]."""
    import tensorflow as tf

    return tf.cast(tf.image.resize(image, (size, size), antialias=True), tf.float32)


@lru_cache(maxsize=256)
def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """Rows of resampling weights: a triangle (bilinear) kernel widened by the
    shrink factor, as TensorFlow's antialiased resize builds them."""
    scale = n_in / n_out
    width = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    w = np.clip(1 - np.abs((np.arange(n_in) + 0.5)[None, :] - centres[:, None]) / width, 0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``resize_for_model`` in NumPy (two matrix products), for prediction
    without TensorFlow; a test holds the two within 0.01 of each other."""
    h, w, c = image.shape
    x = image.astype(np.float32)
    cols = (_triangle_weights(w, size) @ x.transpose(1, 0, 2).reshape(w, h * c)).reshape(size, h, c)
    return (_triangle_weights(h, size) @ cols.transpose(1, 0, 2).reshape(h, size * c)).reshape(size, size, c)


def image_dataset(files, labels, size: int, batch_size: int, shuffle: bool = False, seed: int = 0):
    """Decoded, resized, cached, batched and prefetched images (raw RGB in [0, 255])."""
    import tensorflow as tf

    def load(path, label):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return resize_for_model(img, size), label

    ds = tf.data.Dataset.from_tensor_slices((list(files), np.asarray(labels, np.int32)))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_crops(files, size: int) -> np.ndarray:
    """Crops as one float32 array (n, size, size, 3), resized as in training."""
    ds = image_dataset(list(files), np.zeros(len(files), np.int32), size, batch_size=64)
    parts = [x.numpy() for x, _ in ds]
    return np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.float32)
