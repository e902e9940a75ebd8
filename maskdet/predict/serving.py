"""The whole Predictor (detector + classifier) as an MLflow pyfunc model, so
that ``mlflow models serve -m models:/maskdet@champion`` is a REST API.

Request (``POST /invocations``, JSON)::

    {"dataframe_records": [{"image": "<base64 of the file's bytes>", "name": "a.jpg"}, ...]}

(``name`` is optional), or ``{"inputs": {"image": ["<base64>", ...]}}``.
Answer: ``{"predictions": [<one object per image, docs/architecture.md section 2>]}``; an
image that cannot be decoded gets its ``error`` and no faces, never a 500.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import mlflow.pyfunc

PYFUNC_ARTIFACT = "predictor"


class PredictorModel(mlflow.pyfunc.PythonModel):
    """Loads the Predictor once per server process; answers in the CLI's schema."""

    def load_context(self, context):
        from maskdet.predict.predictor import Predictor

        config = context.model_config or {}
        self.predictor = Predictor(
            context.artifacts["model"],
            detector=config["detector"],
            score_threshold=config.get("score_threshold"),
            min_face=int(config.get("min_face", 20)),
            input_sizes=config.get("input_sizes"),
            detector_path=Path(context.artifacts["detector"]),
            closeup_retry=bool(config.get("closeup_retry", True)),
        )

    def predict(self, context, model_input, params=None):
        from maskdet.predict.predictor import Prediction

        frame = model_input if hasattr(model_input, "columns") else None
        if frame is None or "image" not in frame.columns:
            raise ValueError("expected records with an 'image' field holding the base64 of an image file")
        names = list(frame["name"]) if "name" in frame.columns else [None] * len(frame)
        answers = []
        for i, (encoded, name) in enumerate(zip(frame["image"], names)):
            name = name if isinstance(name, str) and name else f"image {i}"  # missing names read as NaN
            try:
                data = base64.b64decode(str(encoded), validate=True)
            except (binascii.Error, ValueError):
                answers.append(
                    Prediction(
                        image=name, error="not_base64: the 'image' field must be the base64 of an image file"
                    ).to_dict()
                )
                continue
            answers.append(self.predictor.predict(data, name=name).to_dict())
        return answers
