"""The model registry: the whole Predictor logged as an MLflow pyfunc model
(``maskdet.predict.serving`` is the code that serves it), registered as
``maskdet``, and the ``champion`` alias moved to the best by test macro-F1."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc

import maskdet
from maskdet.io import assets
from maskdet.predict import serving
from maskdet.predict.predictor import DETECTORS
from maskdet.predict.serving import PYFUNC_ARTIFACT

# What the served model runs: predict/ and what the import rules let it use
# (tests/test_architecture.py checks this against predict's import closure).
RUNTIME_PACKAGE = ("__init__.py", "errors.py", "quiet.py", "params.py", "paths.py", "io", "predict")

REGISTERED_MODEL = "maskdet"
CHAMPION = "champion"


def log_predictor(model_folder: Path, predict_params, name: str = PYFUNC_ARTIFACT):
    """Log the Predictor as a pyfunc model in the active run, from code
    (``maskdet/predict/served_model.py``; the runtime part of the package, the
    models/ folder and the detector's weights travel with it), with a real input example."""
    import base64
    import tempfile

    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from maskdet.io.images import encode_jpeg

    detector_file = assets.extract(DETECTORS[predict_params.detector].weights)
    grey = base64.b64encode(encode_jpeg(np.full((48, 64, 3), 128, np.uint8), 80)).decode()
    example = pd.DataFrame({"image": [grey], "name": ["grey.jpg"]})  # a valid request: no face in it
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(serving.__file__).with_name("served_model.py")),
            artifacts={"model": str(model_folder), "detector": str(detector_file)},
            code_paths=[str(runtime_package(Path(tmp)))],
            model_config=predict_params.model_dump(),  # the served Predictor's settings, whole
            # The server runs in the project's own environment (`--env-manager local`,
            # as `make serve` does): requirements.lock pins it, so none are inferred here.
            signature=_signature(infer_signature(example, params={"crops": False, "frame": False})),
            input_example=example,
            pip_requirements=[],
        )


def _signature(inferred):
    """The request's columns, ``name`` optional (a record of an image alone is
    answered as "image 0"), and its two options: ``{"params": {"crops": true}}``
    skips detection (``--crops``), ``{"frame": true}`` searches as the webcam does."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec("string", "image"), ColSpec("string", "name", required=False)])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def runtime_package(dest: Path) -> Path:
    """The runtime part of maskdet (RUNTIME_PACKAGE) copied into ``dest/maskdet``:
    the served model ships it alone, not the data builder or the study."""
    import shutil

    source, out = Path(maskdet.__file__).parent, dest / "maskdet"
    out.mkdir(parents=True)
    for part in RUNTIME_PACKAGE:
        if (source / part).is_dir():
            shutil.copytree(source / part, out / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source / part, out / part)
    return out


def register(model_uri: str) -> str:
    """A new version of the registered Predictor; its number. (MLflow would also
    print "Registered model ... already exists" on standard error, into the report.)"""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return str(mlflow.register_model(model_uri, REGISTERED_MODEL).version)


def move_champion(version: str, f1: float) -> bool:
    """Give ``version`` the champion alias when its test macro-F1 is at least the
    current champion's. A tie goes to the newer model: on the rendered test split
    every good model scores 1.000, and "strictly better" left the first of them
    champion for ever, however much better a later one did on real photos."""
    client = mlflow.MlflowClient()
    client.set_model_version_tag(REGISTERED_MODEL, version, "test_f1_macro", f"{f1:.6f}")
    try:
        current = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
        best = float(current.tags.get("test_f1_macro", "-inf"))
    except mlflow.exceptions.MlflowException:
        best = float("-inf")
    if f1 >= best:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
        return True
    return False
