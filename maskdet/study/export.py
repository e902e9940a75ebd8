"""TFLite exports of the trained classifier and the parity check that decides
which one serves.

Parity: an export is used only when, on every crop checked, no class
probability differs from the Keras model's by more than ``PARITY_MAX_ABS`` and
at least ``PARITY_MIN_AGREEMENT`` of the crops get the same label. Training
checks this on the validation split and records the fastest passing runtime
in ``metadata.json``; the evaluation checks it again on the test split.
"""

from __future__ import annotations

import logging
import statistics
import time

import numpy as np

from maskdet.errors import InputError
from maskdet.predict.classifier import TFLITE_FILES, KerasClassifier, LiteClassifier, predict_batched
from maskdet.quiet import logger_level, native_stderr_quiet

PARITY_MAX_ABS = 0.02


PARITY_MIN_AGREEMENT = 0.99


def inference_function(model):
    """The model's inference graph (augmentation off), traced once for every
    export: converting from the Keras model re-traces and re-saves it for each
    kind, three times the work."""
    import tensorflow as tf

    size = int(model.input_shape[1])
    call = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")],
    )
    return call.get_concrete_function()


def export_tflite(model, kind: str, function=None) -> bytes:
    """The Keras model as a TFLite flatbuffer: ``float32``, ``float16`` weights,
    or ``int8`` dynamic-range quantisation (weights int8, activations float).
    ``function``: the model's ``inference_function``, when several kinds are exported."""
    import tensorflow as tf

    if kind not in TFLITE_FILES:
        raise InputError(f"TFLite export kind {kind!r}: expected one of {sorted(TFLITE_FILES)}")
    # Without the model as its trackable object the converter takes the graph
    # as it is instead of saving a SavedModel first for each kind: the same bytes
    # (md5 of all three committed exports), 1.5 s instead of 7 a kind. That path
    # is marked deprecated in TensorFlow 2.21 (pinned); the parity check below
    # still holds every export to the Keras model.
    with logger_level("absl", logging.ERROR):  # its deprecation note would land in the training report
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function or inference_function(model)])
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    with native_stderr_quiet():  # the converter's graph notes go to standard error
        return converter.convert()


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How far ``candidate`` probabilities are from ``reference`` ones, and whether that is within tolerance."""
    diff = np.abs(np.asarray(reference) - np.asarray(candidate))
    agreement = float(np.mean(reference.argmax(1) == candidate.argmax(1))) if len(reference) else 1.0
    max_abs = float(diff.max()) if diff.size else 0.0
    return {
        "max_abs_diff": max_abs,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "label_agreement": agreement,
        "crops": int(len(reference)),
        "passed": bool(max_abs <= PARITY_MAX_ABS and agreement >= PARITY_MIN_AGREEMENT),
    }


def single_face_ms(classifier, crop: np.ndarray, repeats: int = 30) -> float:
    """Median time of one single-face call (the common case in a video frame)."""
    classifier(crop[None])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier(crop[None])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def build_exports(model, crops: np.ndarray) -> tuple[dict[str, bytes], dict]:
    """Export every TFLite kind, check each against the Keras model on ``crops``
    (float32, model-sized), time it, and pick the fastest that passes parity
    (the Keras model when none does). Returns the files and the report."""
    keras_classifier = KerasClassifier(model)
    reference = predict_batched(keras_classifier, crops)
    files, report = {}, {"keras": {"ms_per_face": single_face_ms(keras_classifier, crops[0])}}
    function = inference_function(model)
    for kind, name in TFLITE_FILES.items():
        files[name] = export_tflite(model, kind, function)
        lite = LiteClassifier(files[name])
        report[kind] = {
            **parity(reference, predict_batched(lite, crops)),
            "bytes": len(files[name]),
            "ms_per_face": single_face_ms(lite, crops[0]),
        }
    passing = [k for k in TFLITE_FILES if report[k]["passed"]]
    runtime = min(passing, key=lambda k: report[k]["ms_per_face"]) if passing else "keras"
    return files, {
        "runtime": runtime,
        "tolerance": {"max_abs_diff": PARITY_MAX_ABS, "min_label_agreement": PARITY_MIN_AGREEMENT},
        "checked_on": "validation split",
        "runtimes": report,
    }
