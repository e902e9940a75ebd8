"""The face classifier at prediction time: the trained Keras model, or one of
its TFLite exports (float32, float16 weights, or dynamic-range int8) where that
export agrees with the Keras model. On x86 CPUs LiteRT's XNNPACK widens float16
weights to float32 at load, so float16 saves disk, not time; the float32 export
is there because float16 rounding alone can move a probability by a few
hundredths.

Which runtime a model uses is decided when it is exported
(``maskdet.study.export``, the parity check) and recorded in ``metadata.json``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from maskdet import LABELS
from maskdet.errors import InputError, MissingFileError
from maskdet.quiet import native_stderr_quiet

TFLITE_FILES = {"float32": "model_float32.tflite", "float16": "model_float16.tflite", "int8": "model_int8.tflite"}


def lite_interpreter(**options):
    """A LiteRT interpreter with its tensors allocated (``model_path`` or
    ``model_content``, ``num_threads``), the one way the project makes one:
    LiteRT prints its XNNPACK notice on standard error when it applies the
    delegate, at the first allocation, so that is done here quietly."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_quiet():
        interpreter = Interpreter(**options)
        interpreter.allocate_tensors()
    return interpreter


class LiteClassifier:
    """A TFLite export run by LiteRT. The batch dimension follows the number of
    faces; the interpreter is only re-planned when that number changes. An
    interpreter is not thread-safe (the scoring server calls from several
    threads): one call at a time holds it, from resize to reading the answer."""

    def __init__(self, model: Path | bytes, threads: int | None = None):
        threads = threads or min(4, os.cpu_count() or 1)
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        self.interpreter = lite_interpreter(**source, num_threads=threads)
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


def predict_batched(classifier, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
    parts = [classifier(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)), np.float32)


def load_classifier(folder: Path, metadata: dict, runtime: str | None = None):
    """The runtime ``metadata`` names (or ``runtime``), from a ``models/`` folder."""
    runtime = runtime or metadata.get("serving", {}).get("runtime", "keras")
    if runtime == "keras":
        import keras

        return KerasClassifier(keras.models.load_model(folder / "model.keras"))
    if runtime not in TFLITE_FILES:
        raise InputError(f"runtime {runtime!r}: expected keras or one of {sorted(TFLITE_FILES)}")
    path = folder / TFLITE_FILES[runtime]
    if not path.is_file():
        raise MissingFileError(f"{path}: missing; re-run training (`dvc repro train`) to export it")
    return LiteClassifier(path)
