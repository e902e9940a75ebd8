"""Faces followed across the frames of a video or the webcam: each face keeps an
id while it stays in the picture, its label is decided over its last frames
(so one odd frame does not flip it), and the people who passed are counted once
each, by track, not once per frame.

The matching and the motion model are norfair's (a Kalman filter per track,
boxes matched by IoU); what a track means for a face-mask study (its label,
its count, its CSV row) is here. On a frame where the detector does not run
(``FaceTracker.update(None)``), the boxes move by the filter's estimate and
keep their labels.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet import LABELS
from maskdet.io.atomic import atomic_path
from maskdet.predict.predictor import Face

# `maskdet video` and the webcam run the detector on every second frame: on the
# rendered walk-through it cuts the mean frame time by about 40 % for the same
# recall, ID switches and labels (docs/predicting.md, "Tracking, measured").
DETECT_EVERY = 2

_FOREVER = 1 << 30  # a norfair hit counter that never runs out

TRACKS_HEADER = ["track", "first_frame", "last_frame", "frames", "label", *(f"p_{label}" for label in LABELS)]


@dataclass
class Track:
    """One face followed over frames. ``label`` and ``probs`` are the decided
    ones (the mean over the last ``window`` classified frames, with hysteresis);
    ``totals`` sums every classified frame's probabilities for the CSV's means."""

    id: int
    box: tuple[int, int, int, int]
    label: str
    probs: dict[str, float]
    score: float  # the detector's, at its last detection
    first_frame: int
    last_frame: int  # the last frame it was found in
    seen_at: float | None = None  # that frame's time, seconds (FaceTracker's clock)
    frames: int = 0  # frames in which the detector found it
    classified: int = 0  # frames in which the classifier saw it
    classified_at: int = 0  # the last of those
    totals: np.ndarray = field(default_factory=lambda: np.zeros(len(LABELS)), repr=False)
    held: Counter = field(default_factory=Counter, repr=False)  # frames shown under each label
    recent: deque = field(default_factory=deque, repr=False)  # the last ``window`` classified frames

    def as_face(self) -> Face:
        """The face as the drawing and the answers take it: its box in this frame, its decided label."""
        return Face(self.box, self.score, self.label, dict(self.probs))

    @property
    def final_label(self) -> str:
        """The label it was shown under for most of its frames: what it is counted as."""
        return self.held.most_common(1)[0][0]

    def row(self) -> list:
        means = self.totals / max(self.classified, 1)
        return [
            self.id,
            self.first_frame,
            self.last_frame,
            self.frames,
            self.final_label,
            *(round(float(p), 4) for p in means),
        ]


class FaceTracker:
    """Tracks of the faces of consecutive frames.

    ``window``: frames whose classified faces' mean probabilities decide a
    label (the last window / max(k, c) answers, at least 2, with ``detect_every``
    k and ``classify_every`` c).
    ``hysteresis``: how far another class's mean must rise above the shown
    label's before the label changes. ``max_missed_s``: seconds a track
    survives without a detection, from its first frame on (a face the detector
    misses for a moment keeps its id); it is shown only in the frames it was
    found in and, with ``detect_every`` > 1, the frames up to the next
    detection, so a face that left leaves no box behind. Seconds, not frames:
    the webcam's frame rate is whatever the browser and the server manage
    (5 to 35 frames a second measured), and a frame count would make a face
    that looks away for half a second a new person on a fast machine only.
    ``clock``: where a frame's time comes from; ``None`` counts frames at
    ``fps`` (a video file's own time), a live source passes ``time.monotonic``.
    ``min_frames``: detections a track needs before it counts as a person (a
    one-frame false detection is not somebody who passed).
    ``min_iou``: the overlap a detection needs with a track's predicted box.
    ``detect_every``: the detector runs on every k-th frame (``detect_due``);
    the frames between move the boxes by the filter's estimate.
    ``classify_every``: frames a followed face's last answer holds; with
    ``update(..., classify=...)`` it is classified again on the first
    detection after that (a new face at once)."""

    def __init__(
        self,
        window: int = 8,
        hysteresis: float = 0.15,
        max_missed_s: float = 1.0,
        min_frames: int = 3,
        min_iou: float = 0.2,
        detect_every: int = 1,
        classify_every: int = 1,
        fps: float = 25.0,
        clock: Callable[[], float] | None = None,
    ):
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more (every k-th frame), not {detect_every}")
        if classify_every < 1:
            raise ValueError(f"classify_every must be 1 or more (frames an answer holds), not {classify_every}")
        if fps <= 0:
            raise ValueError(f"fps must be above 0 (the video's frames per second), not {fps}")
        from norfair import Tracker  # imported here: the photo paths never need it

        self.window, self.hysteresis, self.min_frames, self.detect_every = window, hysteresis, min_frames, detect_every
        self.max_missed_s, self.fps, self.clock, self.classify_every = max_missed_s, fps, clock, classify_every
        self._tracker = Tracker(
            distance_function="iou",  # 1 - IoU of the two boxes
            distance_threshold=1 - min_iou,
            # norfair counts a track's life in frames; it is kept full here and
            # the track expired by its time since its last detection (update)
            hit_counter_max=_FOREVER,
            initialization_delay=0,  # shown from its first frame; counting waits for min_frames
        )
        self.tracks: dict[int, Track] = {}
        self.frame = 0  # frames seen so far

    @property
    def detect_due(self) -> bool:
        """Whether the next frame is one the detector runs on (the first, then every k-th)."""
        return self.frame % self.detect_every == 0

    def update(self, faces: list | None, classify: Callable[[list], list[Face]] | None = None) -> list[Track]:
        """The next frame's faces (``None``: the detector did not run on it);
        returns the tracks shown in it, with their boxes in this frame.

        ``faces``: classified ``Face``s or, with ``classify``, the detector's
        boxes (anything with ``box`` and ``score``), of which only those due
        are classified, in one call (``classify(due) -> list[Face]``): a new
        face, and a followed one whose last answer is ``classify_every``
        frames old."""
        from norfair import Detection

        self.frame += 1
        now = self.clock() if self.clock is not None else self.frame / self.fps
        detections, found = None, set()
        if faces is not None:
            detections = [Detection(np.array(f.box, float).reshape(2, 2), data=f) for f in faces]
            found = {id(f) for f in faces}
        # period: norfair's point counters run in frames, and detections come every k-th
        objects = self._tracker.update(detections, period=self.detect_every if faces is not None else 1)
        matched = [obj for obj in objects if id(obj.last_detection.data) in found]  # found in this frame
        answers = {id(obj): obj.last_detection.data for obj in matched}  # already classified: every one
        if classify is not None:
            due = [obj for obj in matched if self._classification_due(obj.id)]
            answers = dict(zip(map(id, due), classify([obj.last_detection.data for obj in due]) if due else []))
        alive = []
        for obj in objects:
            (x1, y1), (x2, y2) = obj.estimate
            box = (int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
            track = self.tracks.get(obj.id)
            if track is None:
                face = answers[id(obj)]  # a new face is always classified
                # the window is in frames: it holds an answer per classification
                recent = deque(maxlen=max(2, round(self.window / max(self.detect_every, self.classify_every))))
                track = Track(
                    obj.id, box, face.label, dict(face.probs), face.score, self.frame, self.frame, recent=recent
                )
                self.tracks[obj.id] = track
            track.box = box
            if obj in matched:
                track.last_frame, track.seen_at = self.frame, now
                track.score, track.frames = obj.last_detection.data.score, track.frames + 1
                if id(obj) in answers:
                    self._classified(track, answers[id(obj)])
            # -1: norfair drops the track before the next frame's matching
            obj.hit_counter = -1 if now - track.seen_at > self.max_missed_s else _FOREVER
            if self.frame - track.last_frame < self.detect_every:  # found this frame, or since the last detection
                track.held[track.label] += 1
                alive.append(track)
        return alive

    def _classification_due(self, track_id: int) -> bool:
        track = self.tracks.get(track_id)
        return track is None or self.frame - track.classified_at >= self.classify_every

    def _classified(self, track: Track, face: Face) -> None:
        p = np.array([face.probs[label] for label in LABELS])
        track.classified += 1
        track.classified_at = self.frame
        track.totals += p
        track.recent.append(p)
        mean = np.mean(track.recent, axis=0)
        track.probs = {label: float(v) for label, v in zip(LABELS, mean)}
        shown, best = LABELS.index(track.label), int(np.argmax(mean))
        if best != shown and mean[best] - mean[shown] > self.hysteresis:
            track.label = LABELS[best]

    def people(self) -> list[Track]:
        """The tracks that count as a person (found in at least ``min_frames`` frames)."""
        return [t for t in self.tracks.values() if t.frames >= self.min_frames]

    def counts(self) -> dict[str, int]:
        """People per class, each under the label it was shown under most."""
        counted = Counter(t.final_label for t in self.people())
        return {label: counted.get(label, 0) for label in LABELS}

    def write_csv(self, path: Path) -> None:
        """One row per person (``TRACKS_HEADER``), written whole or not at all."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(TRACKS_HEADER)
            writer.writerows(t.row() for t in sorted(self.people(), key=lambda t: t.id))
