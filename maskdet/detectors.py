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
from maskdet.images import letterbox


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


def _clipped(boxes: np.ndarray, scores: np.ndarray, iou: float, w: int, h: int) -> list[Detection]:
    """Non-maximum suppression, then boxes rounded and clipped to the image; empty ones dropped."""
    found = []
    for i in non_max_suppression(boxes, scores, iou):
        x1, y1, x2, y2 = np.round(boxes[i]).astype(int)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 > x1 and y2 > y1:
            found.append(Detection((int(x1), int(y1), int(x2), int(y2)), float(scores[i])))
    return found


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
        return _clipped(boxes[mask] * np.array([w, h, w, h]), scores[mask], self.iou_threshold, w, h)


class BlazeFaceDetector:
    """MediaPipe BlazeFace, full range (sparse), run with LiteRT.

    The image is letterboxed to a 192x192 square and scaled to [-1, 1]; the
    model scores 2304 anchors (a 48x48 grid, one anchor per cell, fixed size)
    and regresses a box per anchor in input pixels relative to the anchor's
    centre. Decoded as in MediaPipe's face_detection_full_range graph.
    """

    input_side = 192
    grid = 48

    def __init__(self, score_threshold: float = 0.5, iou_threshold: float = 0.3,
                 model_path: Path | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.interpreter = Interpreter(model_path=str(model_path or assets.extract(assets.BLAZEFACE_FULL_TFLITE)),
                                       num_threads=2)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = {int(o["shape"][-1]): o["index"] for o in self.interpreter.get_output_details()}
        self._boxes, self._scores = outputs[16], outputs[1]
        centres = (np.arange(self.grid, dtype=np.float32) + 0.5) / self.grid
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        self.anchors = np.column_stack([xs.ravel(), ys.ravel()])

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        # The image keeps its aspect ratio, centred on a black square.
        x, scale, left, top = letterbox(rgb, self.input_side, self.input_side)
        self.interpreter.set_tensor(self._input, (x.astype(np.float32) / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0], -80, 80)  # exp stays finite in float32
        scores = 1 / (1 + np.exp(-logits))
        keep = scores >= self.score_threshold
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        cx = anchors[:, 0] + raw[:, 0] / self.input_side
        cy = anchors[:, 1] + raw[:, 1] / self.input_side
        bw, bh = raw[:, 2] / self.input_side, raw[:, 3] / self.input_side
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * self.input_side
        boxes = (boxes - np.array([left, top, left, top], dtype=np.float32)) / scale
        return _clipped(boxes, scores, self.iou_threshold, w, h)
