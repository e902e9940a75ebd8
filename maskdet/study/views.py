"""The three views in which users meet a face, for measuring on labelled
folders of real photos (``maskdet evaluate``, ``make bench``):

- ``crops``: the whole image is the face (``maskdet predict --crops``); tests
  the classifier alone;
- ``framed``: the photo shrunk so that its longest side is 224 px and centred
  on a 640x480 mid-grey frame, a face at about a third of the frame as a
  webcam sees a person at arm's length; tests detector and classifier;
- ``closeup``: the image as it is, the face filling most of it, as in a
  selfie upload; tests the detector on faces larger than it expects.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskdet.errors import InputError

VIEWS = ("crops", "framed", "closeup")
FRAME_SIZE = (640, 480)
FRAMED_SIDE = 224
FRAME_GREY = 128


def framed(rgb: np.ndarray, side: int = FRAMED_SIDE, frame: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """``rgb`` scaled so that its longest side is ``side`` px, centred on a mid-grey ``frame``."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.full((frame[1], frame[0], 3), FRAME_GREY, np.uint8)
    left, top = (frame[0] - nw) // 2, (frame[1] - nh) // 2
    out[top : top + nh, left : left + nw] = small
    return out


def view_of(rgb: np.ndarray, view: str) -> np.ndarray:
    """The image as ``view`` shows it (``crops`` and ``closeup`` leave it as it is)."""
    if view not in VIEWS:
        raise InputError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    return framed(rgb) if view == "framed" else rgb
