"""Face detectors behind one interface: ``detector(rgb) -> list[Detection]``.

Models come from pinned registry packages (see maskdet.assets); nothing is
downloaded from anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskdet import assets


@dataclass(frozen=True)
class Detection:
    """A face box in integer pixel corners of the original image, with its score."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    score: float

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices of the boxes kept, best first (boxes as x1, y1, x2, y2)."""
    if len(boxes) == 0:
        return []
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return [int(i) for i in np.array(keep).reshape(-1)]


class UltraLightDetector:
    """Ultra-Light-Fast-Generic-Face-Detector RFB-640 (ONNX) run with OpenCV's DNN module.

    The exported graph already decodes its priors: it returns softmax scores
    (background, face) and corner boxes in [0, 1] for a 640x480 RGB input
    normalised as (x - 127) / 128.
    """

    input_size = (640, 480)

    def __init__(self, score_threshold: float = 0.7, iou_threshold: float = 0.3,
                 model_path: Path | None = None):
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.net = cv2.dnn.readNetFromONNX(str(model_path or assets.extract(assets.ULTRALIGHT_ONNX)))

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        blob = cv2.dnn.blobFromImage(cv2.resize(rgb, self.input_size), 1 / 128, self.input_size,
                                     (127, 127, 127), swapRB=False)
        self.net.setInput(blob)
        boxes, scores = self.net.forward(["boxes", "scores"])
        boxes, scores = boxes[0], scores[0][:, 1]
        mask = scores >= self.score_threshold
        boxes, scores = boxes[mask] * np.array([w, h, w, h]), scores[mask]
        found = []
        for i in non_max_suppression(boxes, scores, self.iou_threshold):
            x1, y1, x2, y2 = np.round(boxes[i]).astype(int)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if x2 > x1 and y2 > y1:
                found.append(Detection((int(x1), int(y1), int(x2), int(y2)), float(scores[i])))
        return found
