"""Two cross-validated runs compared photo by photo (benchmarks/compare_folds.py)."""

import pytest

from benchmarks.compare_folds import called_right, paired_differences, pooled_answers
from benchmarks.own_data_folds import detection_counts
from maskdet.io.voc import VocObject
from maskdet.predict.predictor import Prediction
from maskdet.study.scenes import Scene, scene_metrics
from tests.helpers import scene_face


def _answers(tmp_path, right_incorrect: list[bool]):
    """One photo per entry, each with a masked face named right and an
    incorrectly worn mask named right or, ranked below every masked face, bare."""
    scenes, preds = [], []
    for i, right in enumerate(right_incorrect):
        masked, incorrect = (0, 0, 100, 100), (200, 0, 300, 100)
        scenes.append(
            Scene(
                tmp_path / f"{i}.jpg", [VocObject("with_mask", masked), VocObject("mask_weared_incorrect", incorrect)]
            )
        )
        said, p = ("mask_weared_incorrect", 0.8) if right else ("without_mask", 0.98)
        preds.append(Prediction(f"{i}.jpg", faces=[scene_face(masked, "with_mask"), scene_face(incorrect, said, p=p)]))
    metrics, rows = scene_metrics(scenes, preds)
    return scenes, metrics, rows


def test_a_setting_that_names_more_faces_right_gains_on_the_same_photos(tmp_path):
    scenes, before, a = _answers(tmp_path, [True] * 5 + [False] * 5)
    _, after, b = _answers(tmp_path, [True] * 9 + [False])
    figures = paired_differences(scenes, a, b, draws=500)
    gain = figures["ap50_mask_weared_incorrect"]
    assert gain["a"] == pytest.approx(before["ap50_mask_weared_incorrect"])
    assert gain["b"] == pytest.approx(after["ap50_mask_weared_incorrect"])
    assert gain["b_minus_a"] == pytest.approx(gain["b"] - gain["a"]) and gain["b_minus_a"] > 0.1
    # B is right on every photo where A is: no resample of the photos can show a loss
    assert 0 <= gain["ci95_low"] < gain["b_minus_a"] < gain["ci95_high"]
    assert figures["map50"]["a"] == pytest.approx(before["map50"])
    assert figures["ap50_with_mask"]["b_minus_a"] == figures["ap50_with_mask"]["ci95_high"] == 0.0
    assert called_right(scenes, a)["mask_weared_incorrect"] == {"faces": 10, "called_right": 5}
    assert called_right(scenes, b)["mask_weared_incorrect"] == {"faces": 10, "called_right": 9}


def test_a_run_against_itself_gains_nothing(tmp_path):
    scenes, _, a = _answers(tmp_path, [True, False] * 5)
    figures = paired_differences(scenes, a, a.copy(), draws=300)
    scored = {name: f for name, f in figures.items() if name != "ap50_without_mask"}  # no bare face: no AP
    assert all(f["b_minus_a"] == f["ci95_low"] == f["ci95_high"] == 0.0 for f in scored.values())


def test_answers_of_other_photos_or_no_kept_run_are_refused(tmp_path):
    scenes, _, a = _answers(tmp_path, [True, False])
    with pytest.raises(ValueError, match="photos the set does not hold: 1.jpg"):
        paired_differences(scenes[:1], a, a, draws=100)
    (tmp_path / "fold-1").mkdir()
    a.to_csv(tmp_path / "fold-1" / "scene_predictions.csv", index=False)
    assert pooled_answers(tmp_path, 1).equals(a)
    with pytest.raises(FileNotFoundError, match=r"no scene answers of fold-2 \(of 2 folds\)"):
        pooled_answers(tmp_path, 2)  # a run not finished


def test_detection_counts_say_what_a_lower_threshold_trades(tmp_path):
    scenes, _, a = _answers(tmp_path, [True, False])
    assert detection_counts(scenes, a) == {"answers": 4, "faces": 4, "found": 4, "recall": 1.0, "precision": 1.0}
    # one face missed and a false face answered in its place: recall and precision both fall
    b = a.copy()
    b.loc[b.index[0], ["true_label", "true_box"]] = None
    counts = detection_counts(scenes, b)
    assert counts["found"] == 3
    assert counts["recall"] == pytest.approx(0.75) and counts["precision"] == pytest.approx(0.75)
