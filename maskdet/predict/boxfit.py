"""Detector boxes moved into the annotators' shape.

A face detector trained on WIDER FACE draws its own kind of box; the people
who annotated a user's data set drew another (on the Kaggle face-mask set:
lower, to take in the mask and the chin, and wider on small faces). For a
15-px face a few pixels of difference is the gap between IoU 0.3 and 0.5, so
a detection that found the face is scored as a miss.

The correction is fitted on matched pairs (detection, hand-drawn box) of the
training photos and recorded with the model (``metadata.json``,
``box_correction``). Each of four quantities is a straight line in the log of
the detection's width (small faces are off by more than large ones): the
centre's shift as a share of the detection's width and height, and the log
of the width and height ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskdet.errors import InputError

REFERENCE_WIDTH = 24.0  # pixels: the intercepts are the correction of a face this wide
MIN_PAIRS = 30  # fewer matched pairs fit noise: no correction
QUANTITIES = ("shift_x", "shift_y", "log_width", "log_height")


@dataclass(frozen=True)
class BoxCorrection:
    """``coef[q] = (a, b)``: quantity q = a + b * log(width / REFERENCE_WIDTH)."""

    detector: str
    coef: dict[str, tuple[float, float]]
    pairs: int = 0

    def apply(self, box, width: int, height: int) -> tuple[int, int, int, int]:
        """``box`` (x1, y1, x2, y2) corrected, rounded and kept inside a ``width`` x ``height`` image."""
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        t = np.log(w / REFERENCE_WIDTH)
        q = {k: a + b * t for k, (a, b) in self.coef.items()}
        cx, cy = (x1 + x2) / 2 + q["shift_x"] * w, (y1 + y2) / 2 + q["shift_y"] * h
        w, h = w * np.exp(q["log_width"]), h * np.exp(q["log_height"])
        return (
            int(np.clip(round(cx - w / 2), 0, width - 1)),
            int(np.clip(round(cy - h / 2), 0, height - 1)),
            int(np.clip(round(cx + w / 2), 1, width)),
            int(np.clip(round(cy + h / 2), 1, height)),
        )

    def to_dict(self) -> dict:
        return {"detector": self.detector, "pairs": self.pairs, "coef": {k: list(v) for k, v in self.coef.items()}}

    @classmethod
    def from_dict(cls, raw: dict) -> BoxCorrection:
        try:
            coef = {k: (float(raw["coef"][k][0]), float(raw["coef"][k][1])) for k in QUANTITIES}
            return cls(str(raw["detector"]), coef, int(raw.get("pairs", 0)))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(
                f"metadata.json box_correction: {exc!r}; expected detector and coef with {', '.join(QUANTITIES)}"
            ) from None


def pair_quantities(detections: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Per pair: log(width / REFERENCE_WIDTH) of the detection, then the four QUANTITIES."""
    d, g = np.asarray(detections, float).reshape(-1, 4), np.asarray(truths, float).reshape(-1, 4)
    dw, dh = np.maximum(d[:, 2] - d[:, 0], 1), np.maximum(d[:, 3] - d[:, 1], 1)
    gw, gh = np.maximum(g[:, 2] - g[:, 0], 1), np.maximum(g[:, 3] - g[:, 1], 1)
    return np.column_stack(
        [
            np.log(dw / REFERENCE_WIDTH),
            ((g[:, 0] + g[:, 2]) - (d[:, 0] + d[:, 2])) / 2 / dw,
            ((g[:, 1] + g[:, 3]) - (d[:, 1] + d[:, 3])) / 2 / dh,
            np.log(gw / dw),
            np.log(gh / dh),
        ]
    )


def _robust_line(t: np.ndarray, y: np.ndarray, rounds: int = 10) -> tuple[float, float]:
    """A line a + b t through the pairs, a detection matched to the
    neighbour's box left out: from the median, the pairs within three MADs are
    fitted by least squares, and again from that line until the set holds.
    The MAD has a floor of 0.01: pixel rounding alone is about that."""
    design = np.column_stack([np.ones_like(t), t])
    coef = np.array([np.median(y), 0.0])
    keep = np.ones(len(y), bool)
    for _ in range(rounds):
        residual = y - design @ coef
        mad = max(float(np.median(np.abs(residual - np.median(residual[keep])))), 0.01)
        trimmed = np.abs(residual) <= 3 * 1.4826 * mad
        if trimmed.sum() < MIN_PAIRS:
            break
        keep, was = trimmed, keep
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
        if (keep == was).all():
            break
    return float(coef[0]), float(coef[1])


def fit_box_correction(detector: str, detections, truths) -> BoxCorrection | None:
    """The correction from matched (detection, truth) box pairs; None below MIN_PAIRS pairs."""
    values = pair_quantities(detections, truths)
    if len(values) < MIN_PAIRS:
        return None
    t = values[:, 0]
    coef = {name: _robust_line(t, values[:, k + 1]) for k, name in enumerate(QUANTITIES)}
    return BoxCorrection(detector, coef, len(values))
