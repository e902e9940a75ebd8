"""Face boxes to classifier inputs: clip a box to the image, pad it as the
training crops were padded, and resize a crop to the model's square input.
The data stage cuts its crops with these too, so training and prediction see
the same pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def clip_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box inside the image, or None when nothing of it is left."""
    x1, y1, x2, y2 = box
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def padded_box(box: tuple[int, int, int, int], padding: float, width: int, height: int):
    """The box grown by ``padding`` of its size on each side, then clipped; None if empty."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * padding, (y2 - y1) * padding
    return clip_box((int(round(x1 - dx)), int(round(y1 - dy)), int(round(x2 + dx)), int(round(y2 + dy))), width, height)


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
