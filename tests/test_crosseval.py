"""`maskdet evaluate`: a trained model on another labelled set, without retraining."""

import json
import shutil

import pandas as pd
import pytest

from maskdet.io import assets
from tests.helpers import run_maskdet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_class_set(tiny, tmp_path_factory):
    """A folder-per-class set from the tiny data's crops (two classes), with an
    unreadable image and a folder that is no class."""
    _, _, frame = tiny
    root = tmp_path_factory.mktemp("twoclass")
    for label in ("with_mask", "without_mask"):
        (root / label).mkdir()
        for i, file in enumerate(frame[frame["label"] == label]["file"].head(4)):
            shutil.copy(file, root / label / f"{i}.jpg")
    (root / "with_mask" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (root / "cats").mkdir()
    # A real photo, so that the detector views find a face in at least one image.
    shutil.copy(assets.extract(assets.PORTRAIT_PHOTOS[0]), root / "without_mask" / "portrait.jpg")
    return root


def _evaluate(model_dir, *args, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return run_maskdet("evaluate", "--model", str(model_dir), "-q", *args, MLFLOW_TRACKING_URI=tracking)


def test_two_class_folders_in_three_views_with_figures_and_an_mlflow_run(tiny, two_class_set, tmp_path):
    _, model_dir, _ = tiny
    out = tmp_path / "out"
    done = _evaluate(model_dir, str(two_class_set), "--out", str(out), tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]  # one image could not be read
    assert "broken.jpg" in done.stderr and "could not be read" in done.stderr
    assert "skipped cats" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    printed = json.loads(done.stdout)
    assert {k: v for k, v in printed.items() if k != "mlflow_run_id"} == metrics  # the run id comes last
    assert metrics["classes"] == ["with_mask", "without_mask"] and "not with_mask" in metrics["rule"]
    assert metrics["images"] == 10
    for view in ("crops", "framed", "closeup"):
        scores = metrics[view]
        assert scores["n"] == 10 and scores["errors"] == 1
        assert 0 <= scores["with_mask_called_right"] <= 1 and 0 <= scores["f1_macro"] <= 1
        low, high = scores["with_mask_called_right_ci95"]
        assert 0 <= low <= scores["with_mask_called_right"] <= high <= 1 and high - low > 0.2  # 5 photos: wide
        assert (out / f"confusion_{view}.png").stat().st_size > 5000
    assert "found" not in metrics["crops"] and 0 < metrics["framed"]["without_mask_found"] <= 1
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 10 and rows[0].startswith("image,label,view,faces,found,predicted")
    assert any((out / f"mistakes_{v}.png").exists() for v in ("crops", "framed", "closeup"))

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = mlflow.get_run(printed["mlflow_run_id"])
    assert run.data.tags["model"] == str(model_dir) and run.data.tags["detector"] == "centerface"
    # the prior it answered for
    assert metrics["incorrect_share"] == 0.03 and run.data.tags["incorrect_share"] == "0.03"
    assert run.data.metrics["crops_accuracy"] == pytest.approx(metrics["crops"]["accuracy"])


def test_voc_scenes_give_crops_and_detection_scores(tiny, tmp_path):
    root, model_dir, _ = tiny
    out = tmp_path / "voc"
    done = _evaluate(
        model_dir, str(root / "data" / "raw" / "sample" / "scenes"), "--out", str(out), "--no-mlflow", tmp_path=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout)
    assert metrics["kind"] == "voc" and metrics["crops"]["n"] == metrics["faces"] > 0
    scenes = metrics["scenes"]
    assert 0 < scenes["recall"] <= scenes["recall_iou30"] <= 1 and scenes["map50"] <= scenes["map30"]
    assert sum(v for k, v in scenes.items() if k.startswith("faces_")) == scenes["faces"]
    # AP per class and at both IoUs on one line of the terminal
    assert f"mAP@0.5 {scenes['map50']:.3f}" in done.stderr and "mAP@0.3" in done.stderr
    answers = pd.read_csv(out / "scene_predictions.csv")
    assert len(answers) and {"x1", "y1", "x2", "y2", "label", "score", "true_label", "true_box"} <= set(answers)
    assert (out / "scenes_pr.png").stat().st_size > 0 and (out / "scenes_recall_by_size.png").stat().st_size > 0
    # where the mAP is lost: the same answers with parts made right, on the terminal and in a table
    headroom = pd.read_csv(out / "scene_headroom.csv").set_index("case")
    assert headroom.loc["as_answered", "map50"] == pytest.approx(scenes["map50"])
    assert headroom.loc["ceiling", "map50"] == pytest.approx(scenes["headroom_ceiling_map50"])
    assert scenes["headroom_ceiling_map50"] >= scenes["map50"]
    assert f"every found face given its true class {scenes['headroom_classes_right_map50']:.3f}" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p, "no with_mask or without_mask folder"),
        (lambda p: (p / "with_mask").mkdir() or (p / "without_mask").mkdir() or p, "no labelled images found"),
        (lambda p: p / "missing", "not a folder"),
    ],
)
def test_bad_sets_fail_with_one_line(tiny, tmp_path, make, expected):
    _, model_dir, _ = tiny
    target = make(tmp_path / "set") if (tmp_path / "set").mkdir() is None else None
    done = _evaluate(model_dir, str(target), "--no-mlflow", tmp_path=tmp_path)
    assert done.returncode == 2
    assert expected in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_a_view_that_does_not_fit_the_set_is_named(tiny, two_class_set, tmp_path):
    _, model_dir, _ = tiny
    done = _evaluate(model_dir, str(two_class_set), "--views", "crops,scenes", "--no-mlflow", tmp_path=tmp_path)
    assert done.returncode == 2 and "view scenes does not apply to a folders set" in done.stderr


def test_wilson_interval_matches_the_textbook_values():
    from maskdet.study.metrics import wilson_interval

    assert wilson_interval(50, 100) == pytest.approx([0.4038, 0.5962], abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(287, 300) == pytest.approx([0.9270, 0.9745], abs=1e-3)
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_the_generalisation_table_scores_every_set_at_hand_and_names_the_missing(tiny, two_class_set, tmp_path):
    """`evaluate.external`: a folder set in its three views, a VOC set as crops and
    scenes, and a set that is not there: one line saying so, no row."""
    from maskdet.predict.predictor import Predictor
    from maskdet.study.crosseval import generalisation

    root, model_dir, _ = tiny
    voc = root / "data" / "raw" / "sample" / "scenes"
    sets = {"two": two_class_set, "scenes": voc, "../gone": tmp_path / "gone"}
    table, skipped = generalisation(Predictor(model_dir), sets, "sample (sample)", candidates_from=0.1)
    assert skipped == ["../gone: not here; skipped"]  # as the user named it: no path of this machine
    assert list(zip(table["tested_on"], table["view"])) == [
        (two_class_set.name, "crops"),
        (two_class_set.name, "framed"),
        (two_class_set.name, "closeup"),
        ("scenes", "crops"),
        ("scenes", "scenes"),
    ]
    assert set(table["trained_on"]) == {"sample (sample)"}
    crops = table[table["view"] == "crops"].iloc[0]
    assert crops["faces"] == 10 and 0 <= crops["f1_macro"] <= 1 and 0 <= crops["with_mask_called_right"] <= 1
    scenes = table[table["view"] == "scenes"].iloc[0]
    assert scenes["faces"] > 0 and 0 <= scenes["map50"] <= 1 and 0 < scenes["found"] <= 1
