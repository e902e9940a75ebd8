"""The whole Predictor (detector + classifier) as an MLflow pyfunc model, so
that ``mlflow models serve -m models:/maskdet@champion`` is a REST API.

Request (``POST /invocations``, JSON)::

    {"dataframe_records": [{"image": "<base64 of the file's bytes>", "name": "a.jpg"}, ...]}

(``name`` is optional), or ``{"inputs": {"image": ["<base64>", ...]}}``. With
``"params": {"crops": true}`` beside either, each image is one face already cut
out: no detection, as ``maskdet predict --crops``. With ``"params": {"frame":
true}``, each image is searched as a video frame (320x240, faces of 20 px and up:
the webcam's fast setting) instead of as a still photo (twice its size, faces
of 4 px and up), about three times faster on a 640x480 frame.
Answer: ``{"predictions": [<one object per image, docs/architecture.md section 2>]}``; an
image that cannot be decoded gets its ``error`` and no faces, never a 500. A
fault of the model itself answers HTTP 500 with a message that says so: the
scoring server would answer any other exception with 400 and "verify that the
serialized input Dataframe is compatible", blaming a request that was fine.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

from maskdet.errors import InputError

PYFUNC_ARTIFACT = "predictor"


class PredictorModel(mlflow.pyfunc.PythonModel):
    """Loads the Predictor once per server process; answers in the CLI's schema."""

    def load_context(self, context):
        from maskdet.params import PredictParams
        from maskdet.predict.predictor import Predictor

        # model_config is the predict section of params.yaml when the model was logged
        settings = PredictParams.model_validate(context.model_config or {})
        self.predictor = Predictor(
            context.artifacts["model"], settings, detector_path=Path(context.artifacts["detector"])
        )

    # The type hint lets MLflow check that a request is a table of records (it
    # hands the model a DataFrame either way); without one it warns on import.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[dict]:
        from maskdet.predict import metrics
        from maskdet.predict.predictor import Prediction

        frame = model_input if hasattr(model_input, "columns") else None
        if frame is None or "image" not in frame.columns:
            raise InputError("expected records with an 'image' field holding the base64 of an image file")
        names = list(frame["name"]) if "name" in frame.columns else [None] * len(frame)
        crops_only = bool((params or {}).get("crops", False))
        photo = not bool((params or {}).get("frame", False))
        monitor = metrics.current()  # None outside `maskdet serve`, or with --no-metrics
        answers = []
        for i, (encoded, name) in enumerate(zip(frame["image"], names)):
            name = name if isinstance(name, str) and name else f"image {i}"  # missing names read as NaN
            try:
                data = base64.b64decode(str(encoded), validate=True)
            except (binascii.Error, ValueError):
                answer = Prediction(name, error="not_base64: the 'image' field must be the base64 of an image file")
            else:
                try:
                    answer = self.predictor.predict(data, name=name, crops_only=crops_only, photo=photo)
                except Exception as exc:  # the Predictor turns every fault of the image into its `error`
                    raise MlflowException(
                        f"server fault while predicting {name!r}: {type(exc).__name__}: {exc}. "
                        "The request was read; the model failed on it. Retry, and report it if it persists.",
                        error_code=INTERNAL_ERROR,
                    ) from exc
            if monitor is not None:
                monitor.observe(answer)
            answers.append(answer.to_dict())
        return answers
