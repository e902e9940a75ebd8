"""``maskdet video``: the Predictor on a camera or a video file, frame by frame,
with its faces tracked (``predict.tracker``: ids, labels decided over frames,
people counted once each), and live FPS and per-class counts drawn on each
frame."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskdet import LABELS
from maskdet.errors import MaskdetError
from maskdet.io.atomic import atomic_path
from maskdet.predict.drawing import COLOURS
from maskdet.predict.frames import process_frame
from maskdet.predict.predictor import Predictor
from maskdet.predict.tracker import DETECT_EVERY


class VideoError(MaskdetError, ValueError):
    """The source cannot be opened or the output cannot be written."""


def open_source(source: str) -> cv2.VideoCapture:
    """A camera index ("0") or a video file."""
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        what = f"camera {source}" if source.isdigit() else f"video file {source}"
        hint = "is it connected, and free?" if source.isdigit() else "does it exist, and is it a video OpenCV reads?"
        raise VideoError(f"cannot open {what}: {hint}")
    return capture


def has_display() -> bool:
    """An OpenCV window needs a GUI build and a display (opencv-python-headless has no GUI)."""
    import os

    gui = "GUI:                           NONE" not in cv2.getBuildInformation().replace("\t", " ")
    return gui and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def draw_hud(rgb: np.ndarray, fps: float, counts: Counter, boxes=(), people: dict | None = None) -> np.ndarray:
    """FPS and the frame's faces per class (with ``people``, also the people
    counted so far per class) on a dark band, in the corner that
    covers the faces' boxes and labels least (top left when free): a fixed
    corner hid the label of a face there. The band is as wide as its longest
    line ("mask_weared_incorrect: 12" did not fit a fixed width)."""
    lines = [(f"{fps:5.1f} FPS", (255, 255, 255))]
    for label in LABELS:
        passed = f" ({people[label]} people)" if people is not None else ""
        lines.append((f"{label}: {counts.get(label, 0)}{passed}", COLOURS[label]))
    scale = max(0.5, rgb.shape[1] / 1280)
    step = int(28 * scale)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale
    width = max(cv2.getTextSize(text, font, size, 2)[0][0] for text, _ in lines) + 16
    height = step * len(lines) + 8
    x, y = hud_corner(rgb.shape[1], rgb.shape[0], width, height, boxes, label_height=step)
    cv2.rectangle(rgb, (x, y), (x + width, y + height), (20, 20, 20), -1)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(rgb, text, (x + 8, y + step * (i + 1)), font, size, colour, 2, cv2.LINE_AA)
    return rgb


def hud_corner(width: int, height: int, hud_w: int, hud_h: int, boxes, label_height: int = 0) -> tuple[int, int]:
    """The top-left point of the corner (top left, top right, bottom left,
    bottom right, in that order of preference) where a ``hud_w`` x ``hud_h``
    band overlaps the least of the boxes, each grown upwards by its label."""
    corners = [
        (0, 0),
        (max(0, width - hud_w), 0),
        (0, max(0, height - hud_h)),
        (max(0, width - hud_w), max(0, height - hud_h)),
    ]

    def covered(corner):
        x, y = corner
        area = 0
        for x1, y1, x2, y2 in boxes:
            y1 -= label_height
            area += max(0, min(x + hud_w, x2) - max(x, x1)) * max(0, min(y + hud_h, y2) - max(y, y1))
        return area

    return min(corners, key=covered)  # min keeps the first of equals: top left when nothing is hidden


@dataclass
class VideoSummary:
    frames: int = 0
    faces: Counter = field(default_factory=Counter)
    frame_ms: list[float] = field(default_factory=list)
    saved: int = 0
    output: str | None = None
    tracker: object = None  # predict.tracker.FaceTracker: the people counted
    tracks_csv: str | None = None
    monitor: object = None  # predict.metrics.Monitor: the served model's counters and drift lines

    def to_dict(self) -> dict:
        ms = self.frame_ms
        extra = {}
        if self.monitor is not None:
            from maskdet.predict.drift import drift_lines

            snap = self.monitor.window.snapshot()  # the gauges' refresh would compute it a second time
            extra = {
                "estimated_shares": {k: round(float(v), 4) for k, v in zip(LABELS, snap.estimated)},
                "drift": drift_lines(snap)[0],
            }
        if self.tracker is not None:
            extra["people"] = self.tracker.counts()  # each face followed counted once: the people who passed
            extra["detect_every"] = self.tracker.detect_every
            extra["tracks_csv"] = self.tracks_csv
        return {
            "frames": self.frames,
            "faces": {k: self.faces.get(k, 0) for k in LABELS},  # per frame: a face seen in 10 frames counts 10 times
            "ms_p50": round(statistics.median(ms), 1) if ms else None,  # JSON has no NaN
            "ms_p95": round(float(np.percentile(ms, 95)), 1) if ms else None,
            "fps": round(1000 / statistics.mean(ms), 1) if self.frame_ms else 0.0,
            "saved_frames": self.saved,
            "output": self.output,
            **extra,
        }


def run_video(
    predictor: Predictor,
    source: str,
    out: Path | None = None,
    show: bool = False,
    save_confident: Path | None = None,
    min_confidence: float = 0.9,
    max_frames: int | None = None,
    progress: bool = True,
    metrics_port: int | None = None,
    detect_every: int = DETECT_EVERY,
    tracks_csv: Path | None = None,
) -> VideoSummary:
    """Annotate every frame; write them to ``out`` (mp4) and/or show them. The
    faces are tracked, the detector running on every ``detect_every``-th frame;
    ``tracks_csv`` gets one row per person (``predict.tracker.TRACKS_HEADER``). With
    ``save_confident``, frames whose every face reaches ``min_confidence`` are kept as JPEG.
    Every frame is counted as ``maskdet serve`` counts an image (``predict.metrics``);
    with ``metrics_port`` the counters are served on http://127.0.0.1:PORT/metrics while it runs."""
    from tqdm import tqdm

    from maskdet.io.images import write_jpeg

    capture = open_source(source)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not source.isdigit() else 0
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    from maskdet.predict import metrics
    from maskdet.predict.predictor import Prediction

    monitor = metrics.for_predictor(predictor)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=monitor.registry)
    from maskdet.predict.tracker import FaceTracker

    # a camera's frames come at the pace the loop manages: its tracks expire by the wall clock
    tracker = FaceTracker(detect_every=detect_every, fps=rate, clock=time.monotonic if source.isdigit() else None)
    writer, summary, fps = None, VideoSummary(monitor=monitor, tracker=tracker), 0.0
    if save_confident:
        save_confident.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=min(total, max_frames or total) or None, unit="frame", disable=not progress, desc="video")
    # the video is written beside `out` and renamed into place when the loop ends
    with atomic_path(out) if out is not None else nullcontext() as tmp:
        try:
            while max_frames is None or summary.frames < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                frame = process_frame(predictor, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), tracker)
                faces, counts, ms = frame.faces, frame.counts, frame.ms
                shown = draw_hud(frame.annotated, fps, counts, [f.box for f in faces], tracker.counts())
                fps = 1000 / ms if not fps else 0.9 * fps + 0.1 * 1000 / ms  # smoothed for reading
                summary.frames += 1
                summary.faces.update(counts)
                summary.frame_ms.append(ms)
                if frame.detected is not None:  # what the classifier answered, not the tracks' means
                    monitor.observe(Prediction(f"frame {summary.frames}", faces=frame.detected))
                if tmp is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(
                            str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), rate, (shown.shape[1], shown.shape[0])
                        )
                        if not writer.isOpened():
                            raise VideoError(f"{out}: cannot write this video; use a .mp4 name in a writable folder")
                    writer.write(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
                if save_confident and faces and all(f.probs[f.label] >= min_confidence for f in faces):
                    write_jpeg(save_confident / f"frame_{summary.frames:06d}.jpg", shown)
                    summary.saved += 1
                if show:
                    cv2.imshow("maskdet", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
                bar.update()
        finally:
            bar.close()
            capture.release()
            if writer is not None:
                writer.release()
            if show:
                cv2.destroyAllWindows()
    if summary.frames == 0:
        raise VideoError(f"{source}: no frame could be read; is it a video OpenCV decodes, and not empty?")
    if writer is not None:
        summary.output = str(out)
    if tracks_csv is not None:
        tracker.write_csv(tracks_csv)
        summary.tracks_csv = str(tracks_csv)
    return summary
