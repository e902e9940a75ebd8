"""The faces a running Predictor is shown, against the world it assumes.

The Predictor answers for a class prior (``predict.incorrect_share``,
``predict.prior``). Whether the faces it sees look like that world can be
checked without a single label: Saerens, Latinne and Decaestecker ("Adjusting
the outputs of a classifier to new a priori probabilities", Neural Computation
14(1), 2002) estimate the real class shares from the posteriors alone by EM.
Each step moves every answer's probabilities to the current estimate of the
shares by Bayes' rule, then takes their mean as the next estimate; the fixed
point is the maximum-likelihood estimate of the shares. The interval is a
percentile bootstrap over the window's faces.

The inputs are checked too: the width of each face found (``face_width``) and
the brightness of its crop (the mean of its RGB values), against the training
crops' (``input_profile`` in the model's metadata.json, written by the train
stage), by the population stability index over the training deciles (PSI:
above 0.25 is the usual threshold for a shifted distribution).

Pure NumPy: ``maskdet.predict.metrics`` exports these as Prometheus gauges, and
``maskdet monitor`` turns them into the lines a user reads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from maskdet import INCORRECT, LABELS

WINDOW_FACES = 2000  # the sliding window: the last this many faces
MIN_FACES = 100  # fewer faces in the window: too few to say anything
PSI_SHIFTED = 0.25
FEATURES = ("face_width", "brightness")  # what input_profile records, per training crop


def face_width(pixels: float, input_size: int) -> float:
    """A face's width as the drift check compares it: in image pixels, up to the
    classifier's input size (a larger face gives the classifier no more detail)."""
    return float(min(pixels, input_size))


def estimate_shares(
    probs: np.ndarray, assumed: np.ndarray, max_iter: int = 200, tol: float = 1e-6, start: np.ndarray | None = None
) -> np.ndarray:
    """The class shares (n_classes,) that best explain ``probs`` (n, classes),
    posteriors computed under the ``assumed`` shares (Saerens et al., 2002, EM),
    starting from ``start`` (default: ``assumed``). ``probs`` may also be
    (B, n, classes): B estimates at once (the bootstrap)."""
    probs = np.asarray(probs, np.float64)
    assumed = np.asarray(assumed, np.float64)
    first = assumed if start is None else np.asarray(start, np.float64)
    shares = np.broadcast_to(first, probs.shape[:-2] + assumed.shape).copy()
    for _ in range(max_iter):
        moved = probs * (shares / np.maximum(assumed, 1e-12))[..., None, :]
        moved /= np.maximum(moved.sum(axis=-1, keepdims=True), 1e-300)
        new = moved.mean(axis=-2)
        if np.max(np.abs(new - shares)) < tol:
            return new
        shares = new
    return shares


def share_interval(
    probs: np.ndarray,
    assumed: np.ndarray,
    estimate: np.ndarray | None = None,
    level: float = 0.9,
    resamples: int = 100,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A percentile-bootstrap interval (``level``) around ``estimate_shares``, per
    class; each resample's EM starts from the whole window's ``estimate``."""
    probs = np.asarray(probs, np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(probs), size=(resamples, len(probs)))
    estimates = estimate_shares(probs[picks], assumed, max_iter=100, tol=1e-5, start=estimate)
    tail = (1.0 - level) / 2 * 100
    return np.percentile(estimates, tail, axis=0), np.percentile(estimates, 100 - tail, axis=0)


def profile(values) -> dict:
    """The training side of ``psi``: the distinct decile edges of ``values`` and the
    share of ``values`` in each bin they make (a tenth each, unless values repeat:
    every rendered crop has the same width), and the median."""
    values = np.asarray(values, np.float64)
    edges = np.unique(np.percentile(values, np.arange(10, 100, 10)))
    shares = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1) / len(values)
    return {
        "edges": [round(float(v), 3) for v in edges],
        "shares": [round(float(v), 5) for v in shares],
        "median": round(float(np.median(values)), 3),
    }


def psi(values, trained: dict) -> float:
    """Population stability index of ``values`` against a training ``profile``:
    the sum over its bins of (seen - expected) x ln(seen / expected)."""
    values = np.asarray(values, np.float64)
    if len(values) == 0 or not trained.get("shares"):
        return 0.0
    edges = np.asarray(trained["edges"], np.float64)
    expected = np.asarray(trained["shares"], np.float64)
    seen = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(expected)) / len(values)
    seen, expected = np.maximum(seen, 1e-4), np.maximum(expected, 1e-4)  # an empty bin would make it infinite
    return float(np.sum((seen - expected) * np.log(seen / expected)))


@dataclass
class Snapshot:
    """The window's state, as the gauges and ``maskdet monitor`` see it."""

    faces: int
    assumed: np.ndarray
    predicted: np.ndarray  # share of each label among the answers
    estimated: np.ndarray  # EM
    low: np.ndarray
    high: np.ndarray
    median: dict[str, float] = field(default_factory=dict)  # per FEATURES, the window's
    training_median: dict[str, float] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)


class FaceWindow:
    """The last ``size`` faces a Predictor answered: their probabilities, widths
    and crop brightness. Thread-safe enough for one writer and one reader: a
    deque's append is atomic, and ``snapshot`` copies first."""

    def __init__(self, assumed: np.ndarray, profile: dict | None = None, size: int = WINDOW_FACES):
        self.assumed = np.asarray(assumed, np.float64)
        self.profile = profile or {}
        self.faces: deque = deque(maxlen=size)
        self.seen = 0  # faces ever added: a snapshot is only recomputed when it moved

    def add(self, probs, width: float, brightness: float | None) -> None:
        self.faces.append((np.asarray(probs, np.float64), float(width), brightness))
        self.seen += 1

    def snapshot(self) -> Snapshot:
        faces = list(self.faces)
        n = len(faces)
        if n == 0:
            empty = np.zeros(len(LABELS))
            return Snapshot(0, self.assumed, empty, self.assumed.copy(), self.assumed.copy(), self.assumed.copy())
        probs = np.stack([f[0] for f in faces])
        predicted = np.bincount(probs.argmax(axis=1), minlength=len(LABELS)) / n
        estimated = estimate_shares(probs, self.assumed)
        low, high = share_interval(probs, self.assumed, estimated)
        values = {
            "face_width": [f[1] for f in faces],
            "brightness": [f[2] for f in faces if f[2] is not None],
        }
        median = {k: float(np.median(v)) for k, v in values.items() if v}
        shifted, trained = {}, {}
        for name in FEATURES:
            if self.profile.get(name) and values[name]:
                shifted[name] = psi(values[name], self.profile[name])
                trained[name] = float(self.profile[name]["median"])
        return Snapshot(n, self.assumed, predicted, estimated, low, high, median, trained, shifted)


def drift_lines(snap: Snapshot, min_faces: int = MIN_FACES) -> tuple[list[str], bool]:
    """What ``maskdet monitor`` prints, and whether anything drifted: one line on
    the share of incorrectly worn masks (estimated against assumed), one per
    input feature whose distribution left the training data's."""
    if snap.faces < min_faces:
        return [f"{snap.faces} faces in the window, fewer than {min_faces}: too few to judge yet"], False
    est, low, high, assumed = (float(a[INCORRECT]) for a in (snap.estimated, snap.low, snap.high, snap.assumed))
    label = LABELS[INCORRECT]
    interval = f"{est:.3f} (90 % interval {low:.3f}-{high:.3f}, over the last {snap.faces} faces)"
    drifted = not low <= assumed <= high
    if drifted:
        lines = [
            f"DRIFT: the estimated share of {label} is {interval}; the model assumes {assumed:.3f}. "
            f"If this is the world it will keep seeing, set predict.incorrect_share: {est:.2f} in params.yaml "
            "and re-register the model (make repro), or check the camera and the light first"
        ]
    else:
        lines = [f"ok: the estimated share of {label} is {interval}; the model assumes {assumed:.3f}"]
    for name, value in snap.psi.items():
        seen, trained = snap.median.get(name, float("nan")), snap.training_median.get(name, float("nan"))
        what = f"{name} (median {seen:.1f} here, {trained:.1f} in training; PSI {value:.2f})"
        if value > PSI_SHIFTED:
            drifted = True
            lines.append(
                f"DRIFT: {what}: the faces differ from the training crops; measure the model on a few "
                "labelled frames of this camera (maskdet evaluate) before trusting its answers"
            )
        else:
            lines.append(f"ok: {what}")
    return lines, drifted
