"""Answers drawn onto images: a box per face in its class colour, with its
label and confidence, or its number where the faces are too many and too
small for labels. The colour table is the one place that gives each
class its colour (the dashboard's tables and charts use it too)."""

from __future__ import annotations

import cv2
import numpy as np

from maskdet.predict.predictor import Face

COLOURS = {"with_mask": (46, 139, 87), "without_mask": (192, 57, 43), "mask_weared_incorrect": (230, 126, 34)}
FONT = cv2.FONT_HERSHEY_SIMPLEX
HEX_COLOURS = {label: "#{:02x}{:02x}{:02x}".format(*rgb) for label, rgb in COLOURS.items()}  # for HTML and charts


def _tag(text: str, x: int, y: int, scale: float, width: int) -> tuple[int, int, int, int]:
    """The rectangle of a label with its top-left corner just above (x, y), kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    top = max(y - th - base - 4, 0)
    left = max(0, min(x, width - tw - 4))
    return left, top, left + tw + 4, top + th + base + 4


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_texts(rgb: np.ndarray, faces: list[Face], ids: list[int] | None = None) -> list[tuple[str, float]]:
    """What each box carries, with its font scale: "label 97%" where the labels
    have room ("#7 label 97%" with the faces' track ids); in a crowd, where a
    label would cover another label or face, the face's number (the # of the
    dashboard's table, 1 first, or its track id), so that a street photo of 30
    faces stays legible."""
    scales = [max(0.4, (f.box[2] - f.box[0]) / 260) for f in faces]
    names = [str(i) for i in ids] if ids is not None else [str(i) for i in range(1, len(faces) + 1)]
    texts = [f"{f.label} {f.probs[f.label]:.0%}" for f in faces]
    if ids is not None:
        texts = [f"#{name} {text}" for name, text in zip(names, texts)]
    tags = [_tag(t, f.box[0], f.box[1], s, rgb.shape[1]) for t, f, s in zip(texts, faces, scales)]
    crowded = any(
        _overlap(tags[i], tags[j]) or _overlap(tags[i], faces[j].box)
        for i in range(len(faces))
        for j in range(len(faces))
        if i != j
    )
    if not crowded:
        return list(zip(texts, scales))
    number_scale = max(0.3, max(rgb.shape[:2]) / 1600)  # readable at the image's size, not the face's
    return [(name, number_scale) for name in names]


def annotate(rgb: np.ndarray, faces: list[Face], ids: list[int] | None = None) -> np.ndarray:
    """A copy of the image with a box per face in its class colour, and its
    label and confidence, or its number in a crowd (``label_texts``); ``ids``:
    the faces' track ids, shown with their labels."""
    out = rgb.copy()
    thick = max(1 if len(faces) > 3 else 2, round(max(rgb.shape[:2]) / 400))
    for face, (text, scale) in zip(faces, label_texts(rgb, faces, ids)):
        x1, y1, x2, y2 = face.box
        colour = COLOURS[face.label]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        left, top, right, bottom = _tag(text, x1, y1, scale, out.shape[1])
        (_, th), _ = cv2.getTextSize(text, FONT, scale, 1)
        cv2.rectangle(out, (left, top), (right, bottom), colour, -1)
        cv2.putText(out, text, (left + 2, top + th + 2), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
