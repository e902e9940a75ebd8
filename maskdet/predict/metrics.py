"""What a running Predictor tells a monitoring system, in the Prometheus text
format: ``GET /metrics`` of ``maskdet serve`` (and of ``maskdet video
--metrics-port``). Each metric is described in the docs, Predicting: "Monitoring the served model".

One ``Monitor`` per process. With several server workers each process writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` (``maskdet serve`` makes the
folder) and whichever worker answers ``/metrics`` adds them up
(prometheus-client's multi-process mode): counters and the histogram are exact
sums; the class shares and input gauges are the most recent of any worker, each
computed over that worker's own window of faces (a random half of the stream
with two workers).

The shares and the input drift (``maskdet.predict.drift``) are computed off the
request path: by a timer every few seconds and before each scrape, never per
request (an EM with its bootstrap takes a few tens of milliseconds).
"""

from __future__ import annotations

import os
import threading
import time

from maskdet import LABELS
from maskdet.predict import drift

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_S = 15.0  # Prometheus scrapes every 15 s by default; a scrape refreshes first anyway
# Routes by name; anything else is "other", so that a scanner's paths cannot grow the series without bound.
ROUTES = ("/invocations", "/ping", "/health", "/version", "/metrics", "/model-info")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def route_of(path: str) -> str:
    return path if path in ROUTES else "other"


class Monitor:
    """The process's metrics and its window of faces."""

    def __init__(self, assumed_prior, input_profile: dict | None = None, input_size: int = 160):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        reg = {"registry": self.registry}
        self.requests = Counter(
            "maskdet_requests", "HTTP requests answered, by route and status", ["route", "status"], **reg
        )
        self.latency = Histogram(
            "maskdet_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            **reg,
        )
        self.in_flight = Gauge(
            "maskdet_requests_in_flight", "Prediction requests being answered now", multiprocess_mode="livesum", **reg
        )
        self.refused = Counter(
            "maskdet_requests_refused",
            "Prediction requests refused before they took a slot, by reason "
            "(busy: 503; too_large, too_many_images, too_many_pixels: 413; body_timeout: 408)",
            ["reason"],
            **reg,
        )
        self.images = Counter("maskdet_images", "Images read (each image of a request)", **reg)
        self.image_errors = Counter(
            "maskdet_image_errors", "Images answered with an error instead of faces, by reason", ["reason"], **reg
        )
        self.faces = Counter("maskdet_faces", "Faces found, by the class predicted", ["label"], **reg)
        self.load_seconds = Gauge(
            "maskdet_model_load_seconds", "Seconds a worker took to load the Predictor", multiprocess_mode="max", **reg
        )
        recent = {"multiprocess_mode": "mostrecent", **reg}
        self.window_faces = Gauge("maskdet_window_faces", "Faces in the window the shares are computed over", **recent)
        self.share = Gauge(
            "maskdet_class_share",
            "Class shares over the window: predicted (share of answers), estimated (EM on the "
            "probabilities, Saerens et al. 2002) with its 90 % interval (estimated_low, estimated_high), "
            "and assumed (the prior the Predictor answers for)",
            ["label", "kind"],
            **recent,
        )
        self.input_median = Gauge(
            "maskdet_input_median",
            "Median over the window (source window) and of the training crops (source training)",
            ["feature", "source"],
            **recent,
        )
        self.input_psi = Gauge(
            "maskdet_input_psi",
            "Population stability index of the window against the training crops (above 0.25: shifted)",
            ["feature"],
            **recent,
        )
        self.window = drift.FaceWindow(assumed_prior, input_profile)
        self.input_size = input_size
        self._refreshed_at = -1
        self._lock = threading.Lock()
        for k, label in enumerate(LABELS):
            self.share.labels(label, "assumed").set(float(self.window.assumed[k]))
        self._timer = threading.Thread(target=self._refresh_forever, name="maskdet-metrics", daemon=True)
        self._timer.start()

    def observe(self, prediction) -> None:
        """Count one answered image (a ``Prediction``) and add its faces to the window."""
        self.images.inc()
        if prediction.error:
            self.image_errors.labels(prediction.error.split(":", 1)[0]).inc()
        for face in prediction.faces:
            self.faces.labels(face.label).inc()
            width = drift.face_width(face.box[2] - face.box[0], self.input_size)
            self.window.add([face.probs[k] for k in LABELS], width, face.brightness)

    def refresh(self) -> None:
        """Recompute the window's gauges, when faces came in since the last time."""
        with self._lock:
            seen = self.window.seen
            if seen == self._refreshed_at:
                return
            snap = self.window.snapshot()
            self._refreshed_at = seen
        self.window_faces.set(snap.faces)
        for k, label in enumerate(LABELS):
            for kind, values in (
                ("predicted", snap.predicted),
                ("estimated", snap.estimated),
                ("estimated_low", snap.low),
                ("estimated_high", snap.high),
            ):
                self.share.labels(label, kind).set(float(values[k]))
        for feature, value in snap.median.items():
            self.input_median.labels(feature, "window").set(value)
        for feature, value in snap.training_median.items():
            self.input_median.labels(feature, "training").set(value)
        for feature, value in snap.psi.items():
            self.input_psi.labels(feature).set(value)

    def _refresh_forever(self) -> None:
        while True:
            time.sleep(REFRESH_S)
            try:
                self.refresh()
            except Exception:  # a monitoring fault must never take the server down
                pass

    def exposition(self) -> tuple[bytes, str]:
        """The text ``/metrics`` answers (every worker's, in multi-process mode) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        self.refresh()
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_current: Monitor | None = None


def start(assumed_prior, input_profile: dict | None = None, input_size: int = 160) -> Monitor:
    """The process's Monitor, made once."""
    global _current
    if _current is None:
        _current = Monitor(assumed_prior, input_profile, input_size)
    return _current


def current() -> Monitor | None:
    """The process's Monitor, or None where nothing is monitored (the served model
    loaded by ``mlflow.pyfunc.load_model`` in a script, the CLI)."""
    return _current


def for_predictor(predictor) -> Monitor:
    """The Monitor of a process that answers with ``predictor``: the prior it
    assumes, and its training crops' profile."""
    from maskdet.predict.prior import target_prior

    share = predictor.incorrect_share
    assumed = predictor.trained_prior if share is None else target_prior(predictor.trained_prior, share)
    return start(assumed, predictor.metadata.get("input_profile"), predictor.input_size)


def read_snapshot(text: str) -> drift.Snapshot:
    """The window's state as a server's ``/metrics`` text reports it (``maskdet monitor``)."""
    import numpy as np
    from prometheus_client.parser import text_string_to_metric_families

    shares: dict[str, dict[str, float]] = {}
    median: dict[str, dict[str, float]] = {"window": {}, "training": {}}
    psi, faces = {}, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "maskdet_class_share":
                shares.setdefault(labels["kind"], {})[labels["label"]] = sample.value
            elif sample.name == "maskdet_input_median":
                median.setdefault(labels["source"], {})[labels["feature"]] = sample.value
            elif sample.name == "maskdet_input_psi":
                psi[labels["feature"]] = sample.value
            elif sample.name == "maskdet_window_faces":
                faces = int(sample.value)
    if "assumed" not in shares:
        raise ValueError("no maskdet_class_share in the metrics: is this a `maskdet serve` /metrics?")

    def row(kind):
        return np.array([shares.get(kind, {}).get(label, 0.0) for label in LABELS])

    return drift.Snapshot(
        faces, row("assumed"), row("predicted"), row("estimated"), row("estimated_low"), row("estimated_high"),
        median["window"], median["training"], psi,
    )  # fmt: skip
