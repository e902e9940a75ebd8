"""One frame of a video or a webcam: faces found and classified, counted per
class, and drawn. `maskdet video`, the dashboard's webcam and `make bench`
all go through ``process_frame``, so they measure and show the same work."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from maskdet.predict.drawing import annotate
from maskdet.predict.predictor import Face, Predictor


@dataclass
class Frame:
    faces: list[Face]
    counts: Counter  # faces per label
    annotated: np.ndarray  # a copy of the frame with the boxes drawn
    ms: float  # detection, classification and drawing


def process_frame(predictor: Predictor, rgb: np.ndarray) -> Frame:
    started = time.perf_counter()
    faces = predictor.faces(rgb, photo=False)  # a frame: the detector's fast input
    annotated = annotate(rgb, faces)
    return Frame(faces, Counter(f.label for f in faces), annotated, (time.perf_counter() - started) * 1000)
