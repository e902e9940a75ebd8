"""Answers drawn onto images: a box per face in its class colour, with its
label and confidence. The colour table is the one place that gives each
class its colour (the dashboard's tables and charts use it too)."""

from __future__ import annotations

import cv2
import numpy as np

from maskdet.predict.predictor import Face

COLOURS = {"with_mask": (46, 139, 87), "without_mask": (192, 57, 43), "mask_weared_incorrect": (230, 126, 34)}
HEX_COLOURS = {label: "#{:02x}{:02x}{:02x}".format(*rgb) for label, rgb in COLOURS.items()}  # for HTML and charts


def annotate(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of the image with a box per face in its class colour, label and confidence."""
    out = rgb.copy()
    thick = max(2, round(max(rgb.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = face.box
        colour = COLOURS[face.label]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        text = f"{face.label} {face.probs[face.label]:.0%}"
        scale = max(0.4, (x2 - x1) / 260)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1 - th - base - 4, 0)
        left = max(0, min(x1, out.shape[1] - tw - 4))  # the label stays inside the image
        cv2.rectangle(out, (left, top), (left + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(
            out, text, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out
