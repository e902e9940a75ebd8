"""One frame of a video or a webcam: faces found and classified, counted per
class, and drawn. `maskdet video`, the dashboard's webcam and `make bench`
all go through ``process_frame``, so they measure and show the same work.

With a ``FaceTracker`` the faces are its tracks: each keeps its id and a
label decided over its frames, and the detector may run on every k-th frame
only (``FaceTracker(detect_every=k)``: on the frames between, the boxes move
by the tracker's estimate and the labels stay), and a followed face is
classified again once its last answer is ``classify_every`` frames old."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from maskdet.predict.drawing import annotate
from maskdet.predict.predictor import Face, Predictor
from maskdet.predict.tracker import FaceTracker


@dataclass
class Frame:
    faces: list[Face]
    counts: Counter  # faces per label
    annotated: np.ndarray  # a copy of the frame with the boxes drawn
    ms: float  # detection, classification, tracking and drawing
    ids: list[int] = field(default_factory=list)  # the faces' track ids, with a tracker
    detected: list[Face] | None = None  # what the classifier answered in this frame (None: no detector run)


def process_frame(predictor: Predictor, rgb: np.ndarray, tracker: FaceTracker | None = None) -> Frame:
    started = time.perf_counter()
    if tracker is None:
        faces = detected = predictor.faces(rgb, photo=False)  # a frame: the detector's fast input
        ids = []
    else:
        detected = [] if tracker.detect_due else None

        def classify(found: list) -> list[Face]:  # the faces the tracker has due, in one batch
            answers = predictor.classify_found(rgb, found)
            detected.extend(answers)
            return answers

        tracks = tracker.update(predictor.detect(rgb, photo=False) if detected is not None else None, classify)
        faces, ids = [t.as_face() for t in tracks], [t.id for t in tracks]
    annotated = annotate(rgb, faces, ids if tracker is not None else None)
    ms = (time.perf_counter() - started) * 1000
    return Frame(faces, Counter(f.label for f in faces), annotated, ms, ids, detected)
