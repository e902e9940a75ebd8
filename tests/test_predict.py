"""`maskdet predict` and the Predictor on real images, with a real (tiny) trained model."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maskdet import LABELS, assets
from maskdet.params import parse_params
from maskdet.predict import Predictor, annotate
from maskdet.train import save_model, train_classifier
from tests.conftest import ROOT, small_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A real small_cnn trained one epoch on small real data: (model folder, its manifest)."""
    root = tmp_path_factory.mktemp("tiny")
    frame = small_data(root, crops_per_class_per_person=1)
    params = parse_params({"model": {"backbone": "small_cnn", "input_size": 48},
                           "train": {"epochs": 1, "fine_tune_epochs": 0, "early_stopping_patience": 0}})
    result = train_classifier(frame[frame["split"] == "train"], frame[frame["split"] == "val"], params)
    return save_model(result, root / "models", params, {}), frame


@pytest.fixture(scope="module")
def model_dir(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    group = assets.extract(assets.FACE_API_PHOTOS[0])
    (folder / "group.jpg").write_bytes(group.read_bytes())
    (folder / "broken.jpg").write_bytes(group.read_bytes()[:5000])
    return folder


def _predict(args, model_dir, stdin=None):
    env = {**os.environ, "MASKDET_ROOT": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "maskdet", "predict", "--model", str(model_dir), "-q", *args],
                          capture_output=True, text=True, input=stdin, env=env, cwd=ROOT)


def test_predictor_finds_every_face_with_a_full_answer(model_dir):
    pred = Predictor(model_dir).predict(assets.extract(assets.FACE_API_PHOTOS[0]))
    assert pred.error is None and (pred.width, pred.height) == (1920, 1280)
    assert len(pred.faces) == 3
    for face in pred.faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1280
        assert set(face.probs) == set(LABELS) and sum(face.probs.values()) == pytest.approx(1, abs=1e-4)
        assert face.label == max(face.probs, key=face.probs.get)


def test_jsonl_lines_follow_the_contract_and_errors_do_not_stop_the_run(model_dir, images):
    done = _predict([str(images), "--format", "jsonl"], model_dir)
    assert done.returncode == 1  # one input failed
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"].rsplit("/", 1)[-1] for line in lines] == ["broken.jpg", "group.jpg"]
    broken, group = lines
    assert broken["error"].startswith(("truncated", "corrupt")) and broken["faces"] == []
    assert group["error"] is None and len(group["faces"]) == 3
    assert set(group) == {"image", "width", "height", "ms", "error", "faces"}
    assert set(group["faces"][0]) == {"box", "score", "label", "probs"}
    assert "could not be read" in done.stderr


def test_stdin_streams_and_csv_has_a_row_per_face(model_dir, images):
    done = _predict(["-", "--format", "csv"], model_dir, stdin=f"{images / 'group.jpg'}\n")
    assert done.returncode == 0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 3 and {r["label"] for r in rows} <= set(LABELS)


def test_crops_mode_classifies_the_whole_image(model_dir, images):
    done = _predict([str(images / "group.jpg"), "--crops", "--format", "jsonl"], model_dir)
    face, = json.loads(done.stdout)["faces"]
    assert face["box"] == [0, 0, 1920, 1280]


def test_predictor_sees_a_crop_exactly_as_evaluation_does(tiny):
    """One resize path from crop to classifier: the Predictor on a processed crop
    gives the evaluation pipeline's probabilities (JPEG decoders differ by a hair)."""
    from maskdet.evaluate import predict_probs

    model_dir, frame = tiny
    test = frame[frame["split"] == "test"].head(12)
    predictor = Predictor(model_dir)
    ours = np.array([[f.probs[k] for k in LABELS] for path in test["file"]
                     for f in predictor.predict(path, crops_only=True).faces])
    theirs = predict_probs(predictor.classifier, test["file"], predictor.input_size)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_annotate_draws_in_the_class_colour(model_dir):
    rgb = np.full((200, 200, 3), 255, np.uint8)
    from maskdet.predict import COLOURS, Face

    out = annotate(rgb, [Face((20, 60, 120, 160), 0.9, "without_mask", dict.fromkeys(LABELS, 1 / 3))])
    assert tuple(out[100, 20]) == COLOURS["without_mask"] and tuple(rgb[100, 20]) == (255, 255, 255)
