"""The one Predictor: faces found, cropped as in training, classified in one
batch per image. The CLI uses it; the dashboard and the served model are to
use it too, so nothing re-implements detection or classification on the side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskdet import LABELS
from maskdet.datasets import resize_for_model
from maskdet.detectors import UltraLightDetector
from maskdet.images import ImageError, load_rgb
from maskdet.prepare import padded_box

COLOURS = {"with_mask": (46, 139, 87), "without_mask": (192, 57, 43), "mask_weared_incorrect": (230, 126, 34)}


@dataclass
class Face:
    box: tuple[int, int, int, int]
    score: float
    label: str
    probs: dict[str, float]

    def to_dict(self) -> dict:
        return {"box": list(self.box), "score": round(self.score, 4), "label": self.label,
                "probs": {k: round(v, 4) for k, v in self.probs.items()}}


@dataclass
class Prediction:
    """The answer for one image, in the DESIGN.md section 2 schema."""

    image: str
    width: int | None = None
    height: int | None = None
    ms: float = 0.0
    error: str | None = None
    faces: list[Face] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"image": self.image, "width": self.width, "height": self.height, "ms": round(self.ms, 1),
                "error": self.error, "faces": [f.to_dict() for f in self.faces]}


def _load_classifier(model: str | Path):
    """A models/ folder written by training, or an MLflow model URI (models:/…, runs:/…)."""
    if str(model).startswith(("models:/", "runs:/")):
        import mlflow

        from maskdet.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        keras_model = mlflow.keras.load_model(str(model))
        return keras_model, int(keras_model.input_shape[1])
    from maskdet.train import load_model

    keras_model, meta = load_model(Path(model))
    if list(meta["labels"]) != list(LABELS):
        raise ValueError(f"{model}: label order {meta['labels']} differs from {list(LABELS)}")
    return keras_model, int(meta["input_size"])


class Predictor:
    """Detect and classify faces. ``crop_padding`` matches the data stage's."""

    def __init__(self, model: str | Path, detector=None, score_threshold: float = 0.7, min_face: int = 20,
                 crop_padding: float = 0.15):
        self.classifier, self.input_size = _load_classifier(model)
        self.detector = detector or UltraLightDetector(score_threshold=score_threshold)
        self.min_face = min_face
        self.crop_padding = crop_padding

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Class probabilities for face crops (RGB uint8, any size), one batch."""
        if not crops:
            return np.zeros((0, len(LABELS)), np.float32)
        batch = np.stack([resize_for_model(c, self.input_size).numpy() for c in crops])
        return np.asarray(self.classifier(batch, training=False))

    def faces(self, rgb: np.ndarray, crops_only: bool = False) -> list[Face]:
        h, w = rgb.shape[:2]
        if crops_only:
            boxes, scores = [(0, 0, w, h)], [1.0]
        else:
            found = [d for d in self.detector(rgb) if min(d.width, d.height) >= self.min_face]
            boxes, scores = [d.box for d in found], [d.score for d in found]
        crops = []
        for box in boxes:
            x1, y1, x2, y2 = padded_box(box, 0.0 if crops_only else self.crop_padding, w, h)
            crops.append(rgb[y1:y2, x1:x2])
        probs = self.classify(crops)
        return [Face(tuple(int(v) for v in box), float(score), LABELS[int(np.argmax(p))],
                     {label: float(p[k]) for k, label in enumerate(LABELS)})
                for box, score, p in zip(boxes, scores, probs)]

    def predict(self, source: str | Path | bytes | np.ndarray, name: str | None = None,
                crops_only: bool = False) -> Prediction:
        """Never raises for a bad image: the reason goes into ``error``. ``source`` may
        be a path, the file's bytes, or an RGB array already decoded by ``load_rgb``."""
        started = time.perf_counter()
        result = Prediction(image=name if name is not None else ("<array>" if isinstance(source, np.ndarray)
                                                                  else str(source)))
        try:
            rgb = source if isinstance(source, np.ndarray) else load_rgb(source)
        except ImageError as exc:
            result.error = f"{exc.reason}: {exc}"
        else:
            result.height, result.width = rgb.shape[:2]
            result.faces = self.faces(rgb, crops_only)
        result.ms = (time.perf_counter() - started) * 1000
        return result


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
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, text, (x1 + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out
