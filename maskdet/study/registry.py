"""The model registry: the whole Predictor logged as an MLflow pyfunc model
(``maskdet.predict.serving`` is the code that serves it), registered as
``maskdet``, and the ``champion`` alias moved to the best by test macro-F1."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc

import maskdet
from maskdet.io import assets
from maskdet.predict.predictor import DETECTORS
from maskdet.predict.serving import PYFUNC_ARTIFACT, PredictorModel

REGISTERED_MODEL = "maskdet"
CHAMPION = "champion"


def log_predictor(model_folder: Path, predict_params, name: str = PYFUNC_ARTIFACT):
    """Log the Predictor as a pyfunc model in the active run (its code, the
    models/ folder and the detector's weights travel with it)."""
    import pandas as pd
    from mlflow.models import infer_signature

    detector_file = assets.extract(DETECTORS[predict_params.detector].weights)
    example = pd.DataFrame({"image": ["<base64 of a JPEG, PNG, WebP or BMP file>"], "name": ["photo.jpg"]})
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=PredictorModel(),
        artifacts={"model": str(model_folder), "detector": str(detector_file)},
        code_paths=[str(Path(maskdet.__file__).parent)],
        model_config=predict_params.model_dump(),  # the served Predictor's settings, whole
        # The server runs in the project's own environment (`--env-manager local`,
        # as `make serve` does): requirements.lock pins it, so none are inferred here.
        signature=infer_signature(example),
        pip_requirements=[],
    )


def move_champion(version: str, f1: float) -> bool:
    """Give ``version`` the champion alias when its test macro-F1 beats the current champion's."""
    client = mlflow.MlflowClient()
    client.set_model_version_tag(REGISTERED_MODEL, version, "test_f1_macro", f"{f1:.6f}")
    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
        best = float(current.tags.get("test_f1_macro", "-inf"))
    except mlflow.exceptions.MlflowException:
        best = float("-inf")
    if f1 > best:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
        return True
    return False
