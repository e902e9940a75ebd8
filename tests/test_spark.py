"""`maskdet spark-predict`: a real local-mode Spark (PySpark from the lock, the
system's Java) scores a folder of good and bad images through the registered
Predictor, and answers what `maskdet predict --format csv` answers."""

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from maskdet.io import assets
from maskdet.predict.predictor import CSV_HEADER
from maskdet.scale.spark import java_found
from tests.helpers import BIN, require_system

pytestmark = [pytest.mark.slow, pytest.mark.scale]


@pytest.fixture(scope="module")
def registered(tiny, tmp_path_factory):
    """The tiny model's Predictor logged and registered as models:/maskdet@champion
    in a store of its own; the store's URI."""
    import mlflow

    from maskdet.params import PredictParams
    from maskdet.study.registry import log_predictor, move_champion, register

    _, folder, _ = tiny
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run():
            info = log_predictor(folder, PredictParams())
        move_champion(register(info.model_uri), 0.5)
    finally:
        mlflow.set_tracking_uri(previous)
    return uri


def _images(folder: Path) -> Path:
    """Two group photos and a portrait (one in a sub-folder), a file that is not
    an image, an image cut short, and a text file that is skipped."""
    (folder / "sub").mkdir(parents=True)
    shutil.copy(assets.extract(assets.FACE_API_PHOTOS[0]), folder / "group0.jpg")
    shutil.copy(assets.extract(assets.FACE_API_PHOTOS[1]), folder / "group1.jpg")
    shutil.copy(assets.extract(assets.PORTRAIT_PHOTOS[0]), folder / "sub" / "portrait.jpg")
    (folder / "junk.jpg").write_bytes(b"not an image at all")
    (folder / "cut.jpg").write_bytes(assets.extract(assets.FACE_API_PHOTOS[0]).read_bytes()[:3000])
    (folder / "notes.txt").write_text("not an image, and not an image name either")
    return folder


def _maskdet(*args, uri):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run([str(BIN / "maskdet"), *args], capture_output=True, text=True, env=env, timeout=600)


def _key(row):
    """A row by file name (Spark names files by URI, the CLI by path) and its face."""
    name = Path(str(row["image"])).name
    if row["error"]:
        return name, row["error"].split(":")[0]
    if row["face"] in ("", None):
        return name, None
    return name, int(row["face"]), tuple(int(row[k]) for k in ("x1", "y1", "x2", "y2")), row["label"]


def test_spark_scores_a_folder_as_the_cli_does_and_a_bad_image_never_fails_the_job(registered, tmp_path):
    import pandas as pd

    require_system("Java (for Spark)", java_found(), "`make system`")
    folder = _images(tmp_path / "in")
    out = tmp_path / "faces.parquet"
    done = _maskdet("spark-predict", str(folder), str(out), "--master", "local[2]", "--batch-size", "2", uri=registered)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "5 images" in done.stderr and "2 failed" in done.stderr, done.stderr[-2000:]
    spark_rows = pd.read_parquet(out)
    spark_rows = spark_rows.astype(object).where(spark_rows.notna(), None)  # nulls as None, as in the CSV's ""
    assert list(spark_rows.columns) == CSV_HEADER
    cli = _maskdet(
        "predict", str(folder), "--model", "models:/maskdet@champion", "--format", "csv", "-q", uri=registered
    )
    assert cli.returncode == 1  # the CLI's status says that some input failed
    cli_rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert sorted(map(_key, spark_rows.to_dict("records")), key=str) == sorted(map(_key, cli_rows), key=str)
    assert {k[1] for k in map(_key, cli_rows) if k[0] in ("junk.jpg", "cut.jpg")} == {"not_an_image", "truncated"}
    faces = spark_rows[spark_rows["label"].notna()]
    assert len(faces) >= 6  # the group photos' faces were found, not only errors
    # probabilities match the CLI's to the 4 decimals both write
    cli_probs = sorted(float(r["p_with_mask"]) for r in cli_rows if r["label"])
    assert sorted(round(float(p), 4) for p in faces["p_with_mask"]) == cli_probs


def test_a_missing_input_is_one_clear_line(registered, tmp_path):
    require_system("Java (for Spark)", java_found(), "`make system`")
    done = _maskdet(
        "spark-predict", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--master", "local[1]", uri=registered
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("maskdet spark-predict: error:") and "nowhere" in last, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()
