"""The one Predictor: faces found, cropped as in training, classified in one
batch per image. The CLI, the dashboard and the served model all use it, so
nothing re-implements detection or classification on the side.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from threadpoolctl import ThreadpoolController

from maskdet import LABELS
from maskdet.errors import InputError, MissingFileError
from maskdet.io.images import ImageError, load_rgb
from maskdet.params import PredictParams, with_overrides
from maskdet.predict.boxfit import BoxCorrection
from maskdet.predict.crops import padded_box, resize_crop
from maskdet.predict.detectors import (
    BlazeFaceDetector,
    CenterFaceDetector,
    Detection,
    UltraLightDetector,
    detect_zoomed_out,
    photo_input,
)
from maskdet.predict.model_cache import is_model_uri, local_model
from maskdet.predict.prior import reweight, training_prior

_BLAS = ThreadpoolController()  # sees NumPy's OpenBLAS, loaded by now


@dataclass
class Face:
    box: tuple[int, int, int, int]
    score: float
    label: str
    probs: dict[str, float]
    # mean RGB value (0-255) of the crop the classifier saw, for the served model's
    # input-drift gauges (``predict.metrics``); not part of the answer
    brightness: float | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "score": round(self.score, 4),
            "label": self.label,
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
        }


@dataclass
class Prediction:
    """The answer for one image, in the schema of docs/architecture.md, section 2."""

    image: str
    width: int | None = None
    height: int | None = None
    ms: float = 0.0
    error: str | None = None
    faces: list[Face] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "ms": round(self.ms, 1),
            "error": self.error,
            "faces": [f.to_dict() for f in self.faces],
        }

    def csv_rows(self) -> list[list]:
        """Rows under ``CSV_HEADER``: one per face, or one with empty face columns when there is none."""
        base = [self.image, self.width, self.height, round(self.ms, 1), self.error or ""]
        if not self.faces:
            return [base + [""] * (len(CSV_HEADER) - len(base))]
        return [
            base + [i, *face.box, round(face.score, 4), face.label, *(round(face.probs[k], 4) for k in LABELS)]
            for i, face in enumerate(self.faces)
        ]


CSV_HEADER = [
    "image",
    "width",
    "height",
    "ms",
    "error",
    "face",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "label",
    *(f"p_{k}" for k in LABELS),
]


def csv_writer(stream: TextIO) -> Callable[[Prediction], None]:
    """Writes ``CSV_HEADER`` to ``stream`` now and a prediction's rows at each
    call: the CLI streams them, the dashboard's download collects them."""
    writer = csv.writer(stream)
    writer.writerow(CSV_HEADER)
    return lambda prediction: writer.writerows(prediction.csv_rows())


DETECTORS = {"centerface": CenterFaceDetector, "ultralight": UltraLightDetector, "blazeface": BlazeFaceDetector}
SIZED_DETECTORS = ("centerface", "ultralight")  # those that take an input size (params: predict.<name>_input)


def make_detector(
    name: str,
    score_threshold: float | None = None,
    model_path: Path | None = None,
    input_size: tuple[int, int] | None = None,
):
    """A detector by name (see ``maskdet.predict.detectors``; the choice is measured in
    ``make bench``). ``score_threshold`` None keeps the detector's own: 0.3 for
    CenterFace, 0.7 for Ultra-Light, 0.5 for BlazeFace (MediaPipe's).
    ``input_size`` (width, height) applies to CenterFace and Ultra-Light; None
    keeps the detector's default."""
    if name not in DETECTORS:
        raise InputError(f"detector {name!r}: expected one of {', '.join(DETECTORS)}")
    options = {"score_threshold": score_threshold} if score_threshold is not None else {}
    if name in SIZED_DETECTORS and input_size is not None:
        options["input_size"] = tuple(input_size)
    return DETECTORS[name](model_path=model_path, **options)


def configured_detector(settings: PredictParams, model_path: Path | None = None):
    """The detector ``settings`` (the predict section) name, at its configured threshold and input."""
    return make_detector(
        settings.detector, settings.score_threshold, model_path, settings.input_sizes().get(settings.detector)
    )


def model_folder(model: str | Path) -> Path:
    """A local ``models/``-style folder for a folder path or an MLflow model URI
    (models:/maskdet@champion, runs:/…): the Predictor model logged by the
    evaluation keeps that folder under ``artifacts/<its folder name>``
    (``artifacts/models`` for the project's ``models/``)."""
    if not is_model_uri(model):
        return Path(model)
    local = local_model(str(model))
    found = sorted(local.glob("artifacts/*/metadata.json"))
    if not found:
        raise InputError(
            f"{model}: not a maskdet Predictor model (no artifacts/*/metadata.json); "
            "register one by running the evaluation stage"
        )
    return found[0].parent


def detect_faces(detector, rgb: np.ndarray, settings: PredictParams, photo: bool = True) -> list[Detection]:
    """Faces in a still photo (``photo``: seen at ``settings.photo.scale`` times
    its size, faces of ``photo.min_face`` pixels and up) or in a video frame
    (fitted into the detector's fast input, ``min_face`` and up). When none is
    found and ``closeup_retry`` is on, the detector looks again, at its fast
    input, at the image centred in a frame twice its size: a face that fills
    the picture is found there (a second detection, on images without a face
    only)."""
    h, w = rgb.shape[:2]
    size = photo_input(w, h, settings.photo.scale, settings.photo.max_pixels) if photo else None
    min_face = settings.photo.min_face if photo else settings.min_face
    found = [d for d in detector(rgb, input_size=size) if min(d.width, d.height) >= min_face]
    if not found and settings.closeup_retry:
        found = [d for d in detect_zoomed_out(detector, rgb) if min(d.width, d.height) >= settings.min_face]
    return found


class Predictor:
    """Detect and classify faces: the one implementation that the CLI, the
    dashboard and the served model share. Loads everything once; a call builds
    no graph. The face crop is padded as the training crops were."""

    def __init__(
        self,
        model: str | Path,
        settings: PredictParams | None = None,
        *,
        detector_path: Path | None = None,
        **overrides,
    ):
        """``model``: a ``models/`` folder or an MLflow URI (``models:/maskdet@champion``).
        ``settings``: the ``predict`` section of params.yaml (its defaults when
        None); ``overrides``: any of its fields (``detector="blazeface"``,
        ``runtime="keras"``), checked as params.yaml's are. ``detector_path``:
        the detector's weights file, where it is not the pinned asset (the
        served model ships its own)."""
        import json

        from maskdet.predict.classifier import load_classifier

        self.folder = model_folder(model)
        meta_path = self.folder / "metadata.json"
        if not meta_path.is_file():
            raise MissingFileError(f"{self.folder}: no metadata.json; train a model first (`make repro`)")
        self.metadata = json.loads(meta_path.read_text())
        if list(self.metadata["labels"]) != list(LABELS):
            raise InputError(f"{model}: label order {self.metadata['labels']} differs from {list(LABELS)}")
        self.settings = s = with_overrides(settings or PredictParams(), "Predictor", **overrides)
        self.source = str(model)
        trained = self.metadata.get("serving", {}).get("runtime", "keras")
        self.runtime = trained if s.runtime == "auto" else s.runtime
        self.classifier = load_classifier(self.folder, self.metadata, self.runtime)
        self.input_size = int(self.metadata["input_size"])
        self.trained_prior = training_prior(self.metadata)
        self.incorrect_share = s.incorrect_share
        self.detector = configured_detector(s, detector_path)
        self.detector_name = s.detector
        correction = self.metadata.get("box_correction")
        self.box_correction = BoxCorrection.from_dict(correction) if correction else None
        self.crop_padding = float(self.metadata.get("params", {}).get("data", {}).get("crop_padding", 0.15))

    @property
    def model_name(self) -> str:
        """The model as a visitor may see it: an MLflow URI whole, a folder by its
        name only (a server's paths are nobody else's business)."""
        return self.source if is_model_uri(self.source) else Path(self.source).name

    @property
    def detector_input(self) -> str:
        """The size the detector sees the image at, as WIDTHxHEIGHT."""
        return "x".join(str(v) for v in self.detector.input_size)

    def with_detector(self, name: str) -> Predictor:
        """The same Predictor (the same loaded classifier and settings) with another detector."""
        return self.with_settings(detector=name)

    def with_settings(self, **overrides) -> Predictor:
        """The same Predictor (the same loaded classifier) with fields of its
        settings overridden (``score_threshold=0.1``), checked as params.yaml's
        are. The classifier's ``runtime`` is the one field it cannot change."""
        import copy

        if "runtime" in overrides:
            raise InputError("runtime: a Predictor loads its classifier once; make a new Predictor for another")
        twin = copy.copy(self)
        twin.settings = s = with_overrides(self.settings, "Predictor", **overrides)
        twin.detector = configured_detector(s)
        twin.detector_name = s.detector
        twin.incorrect_share = s.incorrect_share
        return twin

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Class probabilities for face crops (RGB uint8, any size), one batch, at
        the class prior of ``predict.incorrect_share`` (``predict.prior``)."""
        if not crops:
            return np.zeros((0, len(LABELS)), np.float32)
        # The resizes are small matrix products. OpenBLAS would run them on all
        # cores and leave its workers spinning afterwards, in the way of the
        # classifier's own threads: 3.9 instead of 1.9 ms a face on 2 cores.
        with _BLAS.limit(limits=1, user_api="blas"):
            batch = np.stack([resize_crop(c, self.input_size) for c in crops])
        return reweight(self.classifier(batch), self.trained_prior, self.incorrect_share)

    def detect(self, rgb: np.ndarray, photo: bool = True) -> list:
        """The faces ``detect_faces`` keeps, in the annotators' box shape where the
        model carries a correction for this detector (``predict.boxfit``)."""
        found = detect_faces(self.detector, rgb, self.settings, photo)
        if self.box_correction is None or self.box_correction.detector != self.detector_name:
            return found
        h, w = rgb.shape[:2]
        return [Detection(self.box_correction.apply(d.box, w, h), d.score) for d in found]

    def faces(self, rgb: np.ndarray, crops_only: bool = False, photo: bool = True) -> list[Face]:
        """The faces of ``rgb``, found as ``detect`` does (``photo`` False for a
        video frame) or, with ``crops_only``, the whole image as one face."""
        if crops_only:
            h, w = rgb.shape[:2]
            return self.classify_found(rgb, [Detection((0, 0, w, h), 1.0)], padding=0.0)
        return self.classify_found(rgb, self.detect(rgb, photo))

    def classify_found(self, rgb: np.ndarray, found: list, padding: float | None = None) -> list[Face]:
        """``found`` (detections: ``box``, ``score``) classified, in one batch, each
        cropped with the training crops' padding (or ``padding``)."""
        h, w = rgb.shape[:2]
        padding = self.crop_padding if padding is None else padding
        crops = []
        for d in found:
            x1, y1, x2, y2 = padded_box(d.box, padding, w, h)
            crops.append(rgb[y1:y2, x1:x2])
        probs = self.classify(crops)
        return [
            Face(
                tuple(int(v) for v in d.box),
                float(d.score),
                LABELS[int(np.argmax(p))],
                {label: float(p[k]) for k, label in enumerate(LABELS)},
                float(crop.mean()) if crop.size else None,
            )
            for d, p, crop in zip(found, probs, crops)
        ]

    def predict(
        self,
        source: str | Path | bytes | np.ndarray,
        name: str | None = None,
        crops_only: bool = False,
        photo: bool = True,
    ) -> Prediction:
        """Never raises for a bad image: the reason goes into ``error``. ``source`` may
        be a path, the file's bytes, or an RGB array already decoded by ``load_rgb``.
        ``photo`` False: searched as a video frame (``detect_faces``), the fast setting."""
        started = time.perf_counter()
        result = Prediction(
            image=name if name is not None else ("<array>" if isinstance(source, np.ndarray) else str(source))
        )
        try:
            rgb = source if isinstance(source, np.ndarray) else load_rgb(source, name=name)
        except ImageError as exc:
            result.error = f"{exc.reason}: {exc}"
        else:
            result.height, result.width = rgb.shape[:2]
            result.faces = self.faces(rgb, crops_only, photo)
        result.ms = (time.perf_counter() - started) * 1000
        return result
