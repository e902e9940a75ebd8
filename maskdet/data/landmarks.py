"""MediaPipe's 468-point face mesh (``face_landmark.tflite``), run with LiteRT.

It takes a square crop around a face (about 1.5x the detector box) at 192x192
RGB in [0, 1] and returns 468 (x, y, z) points in crop pixels plus a
face-presence logit. The presence score is how the default-data builder tells
a real face from a badge or a print that a detector took for one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskdet.predict.classifier import lite_interpreter
from maskdet.io import assets

MESH_SIZE = 192

# Indices into the 468-point mesh that the mask renderer needs.
FACE_OVAL_LOWER = (  # from the right cheek (image left) round the chin to the left cheek
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
NOSE_BRIDGE_TOP = 168   # between the eyes
NOSE_TIP = 4
SUBNASALE = 2           # where the nose meets the upper lip
UPPER_LIP_TOP = 0
LOWER_LIP_BOTTOM = 17
CHIN = 152
RIGHT_CHEEK_SIDE = 234  # image left for a frontal face
LEFT_CHEEK_SIDE = 454
RIGHT_EYE_OUTER = 33
LEFT_EYE_OUTER = 263


@dataclass(frozen=True)
class FaceMesh:
    """Landmarks of one face: ``points`` (468, 3) in image pixels, and a presence score."""

    points: np.ndarray
    score: float

    def xy(self, index: int) -> np.ndarray:
        return self.points[index, :2]


class FaceMeshModel:
    def __init__(self, model_path=None):
        self.interpreter = lite_interpreter(model_path=str(model_path or assets.extract(assets.FACE_MESH_TFLITE)))
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # One output holds 1404 numbers (468 x 3), the other the presence logit.
        self._points = next(o["index"] for o in outputs if int(np.prod(o["shape"])) == 1404)
        self._score = next(o["index"] for o in outputs if int(np.prod(o["shape"])) == 1)

    def __call__(self, rgb: np.ndarray, box: tuple[int, int, int, int], scale: float = 1.5) -> FaceMesh:
        x1, y1, x2, y2 = box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = max(x2 - x1, y2 - y1) * scale
        # Affine map from the square around the face to the 192x192 input; the
        # border is replicated where the square leaves the image.
        s = MESH_SIZE / side
        warp = np.array([[s, 0, MESH_SIZE / 2 - s * cx], [0, s, MESH_SIZE / 2 - s * cy]], dtype=np.float32)
        crop = cv2.warpAffine(rgb, warp, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        self.interpreter.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        pts = self.interpreter.get_tensor(self._points).reshape(468, 3).copy()
        logit = float(self.interpreter.get_tensor(self._score).reshape(-1)[0])
        pts[:, 0] = (pts[:, 0] - warp[0, 2]) / s
        pts[:, 1] = (pts[:, 1] - warp[1, 2]) / s
        pts[:, 2] = pts[:, 2] / s
        return FaceMesh(points=pts, score=float(1 / (1 + np.exp(-logit))))
