"""The face classifier at prediction time: the trained Keras model, or one of
its TFLite exports (float32, float16 weights, or dynamic-range int8) where that
export agrees with the Keras model. On x86 CPUs LiteRT's XNNPACK widens float16
weights to float32 at load, so float16 saves disk, not time; the float32 export
is there because float16 rounding alone can move a probability by a few
hundredths.

Parity: an export is used only when, on every crop checked, no class
probability differs from the Keras model's by more than ``PARITY_MAX_ABS`` and
at least ``PARITY_MIN_AGREEMENT`` of the crops get the same label. Training
checks this on the validation split and records the fastest passing runtime
in ``metadata.json``; the evaluation checks it again on the test split.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from maskdet import LABELS

TFLITE_FILES = {"float32": "model_float32.tflite", "float16": "model_float16.tflite", "int8": "model_int8.tflite"}
PARITY_MAX_ABS = 0.02
PARITY_MIN_AGREEMENT = 0.99


class LiteClassifier:
    """A TFLite export run by LiteRT. The batch dimension follows the number of
    faces; the interpreter is only re-planned when that number changes. An
    interpreter is not thread-safe (the scoring server calls from several
    threads): one call at a time holds it, from resize to reading the answer."""

    def __init__(self, model: Path | bytes, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        threads = threads or min(4, os.cpu_count() or 1)
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        self.interpreter = Interpreter(**source, num_threads=threads)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self._input, self._shape = detail["index"], tuple(int(v) for v in detail["shape"])
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.input_size = self._shape[1]
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        with self._lock:
            if len(batch) != self._shape[0]:
                self._shape = (len(batch), *self._shape[1:])
                self.interpreter.resize_tensor_input(self._input, list(self._shape))
                self.interpreter.allocate_tensors()
            self.interpreter.set_tensor(self._input, np.ascontiguousarray(batch, np.float32))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output).copy()


class KerasClassifier:
    """The Keras model itself (``predict_on_batch`` traces its graph once)."""

    def __init__(self, model):
        self.model = model
        self.input_size = int(model.input_shape[1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        return np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)))


def inference_function(model):
    """The model's inference graph (augmentation off), traced once for every
    export: converting from the Keras model re-traces and re-saves it for each
    kind, three times the work."""
    import tensorflow as tf

    size = int(model.input_shape[1])
    call = tf.function(lambda images: model(images, training=False),
                       input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])
    return call.get_concrete_function()


def export_tflite(model, kind: str, function=None) -> bytes:
    """The Keras model as a TFLite flatbuffer: ``float32``, ``float16`` weights,
    or ``int8`` dynamic-range quantisation (weights int8, activations float).
    ``function``: the model's ``inference_function``, when several kinds are exported."""
    import tensorflow as tf

    if kind not in TFLITE_FILES:
        raise ValueError(f"TFLite export kind {kind!r}: expected one of {sorted(TFLITE_FILES)}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function or inference_function(model)], model)
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How far ``candidate`` probabilities are from ``reference`` ones, and whether that is within tolerance."""
    diff = np.abs(np.asarray(reference) - np.asarray(candidate))
    agreement = float(np.mean(reference.argmax(1) == candidate.argmax(1))) if len(reference) else 1.0
    max_abs = float(diff.max()) if diff.size else 0.0
    return {"max_abs_diff": max_abs, "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
            "label_agreement": agreement, "crops": int(len(reference)),
            "passed": bool(max_abs <= PARITY_MAX_ABS and agreement >= PARITY_MIN_AGREEMENT)}


def predict_batched(classifier, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
    parts = [classifier(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)), np.float32)


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
        report[kind] = {**parity(reference, predict_batched(lite, crops)), "bytes": len(files[name]),
                        "ms_per_face": single_face_ms(lite, crops[0])}
    passing = [k for k in TFLITE_FILES if report[k]["passed"]]
    runtime = min(passing, key=lambda k: report[k]["ms_per_face"]) if passing else "keras"
    return files, {"runtime": runtime, "tolerance": {"max_abs_diff": PARITY_MAX_ABS,
                                                     "min_label_agreement": PARITY_MIN_AGREEMENT},
                   "checked_on": "validation split", "runtimes": report}


def load_classifier(folder: Path, metadata: dict, runtime: str | None = None):
    """The runtime ``metadata`` names (or ``runtime``), from a ``models/`` folder."""
    runtime = runtime or metadata.get("serving", {}).get("runtime", "keras")
    if runtime == "keras":
        import keras

        return KerasClassifier(keras.models.load_model(folder / "model.keras"))
    if runtime not in TFLITE_FILES:
        raise ValueError(f"runtime {runtime!r}: expected keras or one of {sorted(TFLITE_FILES)}")
    path = folder / TFLITE_FILES[runtime]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; re-run training (`dvc repro train`) to export it")
    return LiteClassifier(path)
