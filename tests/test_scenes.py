"""Scene-level scoring (Pascal VOC rules) on hand-checked cases and on real scenes."""

import numpy as np
import pytest

from maskdet.io.voc import VocObject
from maskdet.predict.predictor import Prediction
from maskdet.study.scene_intervals import scene_groups, scene_intervals
from maskdet.study.scenes import (
    Scene,
    average_precision,
    detection_recall,
    iou_matrix,
    match,
    scene_metrics,
)
from tests.helpers import scene_face


def test_iou_of_known_boxes():
    iou = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_each_face_is_matched_once_best_score_first():
    truth = [VocObject("with_mask", (0, 0, 10, 10))]
    matched, taken = match(truth, [(0, 0, 10, 9), (0, 0, 10, 10)], [0.5, 0.9])
    assert matched == [None, 0] and taken == [True]
    assert match(truth, [(5, 0, 15, 10)], [0.9]) == ([None], [False])  # IoU 1/3 < 0.5


def test_average_precision_by_hand():
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)
    # a false positive ranked first: precision 1/2 at recall 1/2 and 2/3 at recall 1
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([False, True, True]), 2) == pytest.approx(
        0.5 * 2 / 3 + 0.5 * 2 / 3
    )
    assert average_precision(np.array([0.9]), np.array([True]), 2) == pytest.approx(0.5)  # half never found
    assert np.isnan(average_precision(np.array([]), np.array([], bool), 0))


def test_scene_metrics_count_misses_wrong_labels_and_difficult_faces(tmp_path):
    scene = Scene(
        tmp_path / "s.jpg",
        [
            VocObject("with_mask", (0, 0, 100, 100)),
            VocObject("without_mask", (200, 0, 300, 100)),
            VocObject("mask_weared_incorrect", (400, 0, 500, 100)),
            VocObject("without_mask", (600, 0, 700, 100), difficult=True),
        ],
    )
    pred = Prediction(
        "s.jpg",
        faces=[
            scene_face((0, 0, 100, 100), "with_mask"),  # right
            scene_face((200, 0, 300, 100), "with_mask", 0.8),  # found, wrong label
            scene_face((600, 0, 700, 100), "without_mask"),  # difficult: ignored
            scene_face((800, 0, 900, 100), "without_mask", 0.3),
        ],
    )  # nothing there
    metrics, rows = scene_metrics([scene], [pred])
    assert metrics["faces"] == 3 and metrics["masked_faces"] == 2
    assert metrics["recall"] == pytest.approx(2 / 3) and metrics["recall_masked"] == pytest.approx(1 / 2)
    assert metrics["precision"] == pytest.approx(2 / 3)  # 3 counted detections, 2 on a face
    assert metrics["ap50_with_mask"] == pytest.approx(1.0)  # its one face found first, the wrong one after
    # Every found face is a candidate for every class (confidence score x probability): the bare
    # face called with_mask is still the without_mask list's third candidate (0.8 x 0.05), after
    # the empty box (0.3 x 0.9) and the masked face (0.9 x 0.05): precision 1/3 at full recall.
    assert metrics["ap50_without_mask"] == pytest.approx(1 / 3)
    assert metrics["ap50_mask_weared_incorrect"] == 0.0  # never found
    assert metrics["map50"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert len(rows) == 3 and list(rows["label"]) == ["with_mask", "with_mask", "without_mask"]
    assert rows["p_without_mask"].tolist() == pytest.approx([0.05, 0.05, 0.9])


def test_candidates_under_the_shown_threshold_count_for_ap_not_for_recall(tmp_path):
    """A face found at a low score adds to the AP at the tail of the ranking;
    recall and precision count the faces the Predictor shows."""
    scene = Scene(
        tmp_path / "s.jpg",
        [VocObject("with_mask", (0, 0, 100, 100)), VocObject("with_mask", (200, 0, 300, 100))],
    )
    pred = Prediction(
        "s.jpg",
        faces=[
            scene_face((0, 0, 100, 100), "with_mask", 0.9),
            scene_face((200, 0, 300, 100), "with_mask", 0.2),  # found under the threshold
            scene_face((0, 0, 100, 98), "with_mask", 0.15),  # a second box on a face already taken
        ],
    )
    shown, shown_rows = scene_metrics([scene], [pred], shown_from=0.3)
    every, _ = scene_metrics([scene], [pred])
    assert shown["recall"] == pytest.approx(1 / 2) and every["recall"] == 1.0
    assert shown["precision"] == 1.0 and every["precision"] == pytest.approx(2 / 3)
    assert shown["ap50_with_mask"] == every["ap50_with_mask"] == pytest.approx(1.0)  # both faces before the double
    assert shown_rows["shown"].tolist() == [True, False, False]
    # the shown rows match as they would alone: the candidates under them take no face of theirs
    alone, _ = scene_metrics([scene], [Prediction("s.jpg", faces=pred.faces[:1])])
    assert (alone["recall"], alone["precision"]) == (shown["recall"], shown["precision"])
    assert alone["ap50_with_mask"] == pytest.approx(0.5)


def _photos(tmp_path, right_incorrect: list[bool]):
    """One photo per entry, each with a masked face found and named right and an
    incorrectly worn mask found and named right or not."""
    scenes, preds = [], []
    for i, right in enumerate(right_incorrect):
        masked, incorrect = (0, 0, 100, 100), (200, 0, 300, 100)
        faces = [VocObject("with_mask", masked), VocObject("mask_weared_incorrect", incorrect)]
        scenes.append(Scene(tmp_path / f"{i}.jpg", faces))
        # named wrong, it ranks below every masked face among the candidates for its class
        said, p = ("mask_weared_incorrect", 0.8) if right else ("without_mask", 0.98)
        preds.append(Prediction(f"{i}.jpg", faces=[scene_face(masked, "with_mask"), scene_face(incorrect, said, p=p)]))
    return scenes, preds


def test_scene_intervals_resample_whole_photos(tmp_path):
    scenes, preds = _photos(tmp_path, [True] * 6 + [False] * 4)
    metrics, rows = scene_metrics(scenes, preds)
    bounds = scene_intervals(scenes, rows, draws=500)
    for name in ("map50", *(f"ap50_{k}" for k in ("with_mask", "mask_weared_incorrect"))):
        assert bounds[f"{name}_ci95_low"] <= metrics[name] <= bounds[f"{name}_ci95_high"], name
    # the masked faces are always right: no resample can show a mistake there
    assert bounds["ap50_with_mask_ci95_low"] == bounds["ap50_with_mask_ci95_high"] == 1.0
    # four of ten photos hold the mistakes: the resamples see more or fewer of them
    assert bounds["ap50_mask_weared_incorrect_ci95_high"] - bounds["ap50_mask_weared_incorrect_ci95_low"] > 0.2
    assert "ap50_without_mask_ci95_low" not in bounds  # no bare face: no AP, no interval
    assert bounds == scene_intervals(scenes, rows, draws=500)  # seeded


def test_scene_intervals_narrow_with_more_photos(tmp_path):
    few = scene_intervals(*_scored(*_photos(tmp_path, [True, False] * 5)), draws=500)
    many = scene_intervals(*_scored(*_photos(tmp_path, [True, False] * 40)), draws=500)
    width = lambda b: b["map50_ci95_high"] - b["map50_ci95_low"]  # noqa: E731
    assert width(many) < width(few) / 2
    one = _photos(tmp_path, [False])
    assert scene_intervals(one[0], scene_metrics(*one)[1]) == {}


def test_renders_of_one_photo_and_near_duplicates_are_resampled_together(tmp_path):
    import pandas as pd

    scenes, preds = _photos(tmp_path, [True, False] * 5)
    rows = scene_metrics(scenes, preds)[1]
    # a VOC set's manifest: photos 0-4 near duplicates of one another, 5-9 each its own
    manifest = pd.DataFrame(
        {
            "photo": [str(i) for i in range(10)],
            "person": "",
            "group": [*["photo:0"] * 5, *(f"photo:{i}" for i in range(5, 10))],
        }
    )
    groups = scene_groups(scenes, manifest)
    assert groups == ["photo:0"] * 5 + [f"photo:{i}" for i in range(5, 10)]
    assert scene_intervals(scenes, rows, groups, draws=300) != scene_intervals(scenes, rows, draws=300)
    # the built-in set's scenes are renders of one group photo: their people's group, one group, no interval
    people = [Scene(s.image, [VocObject(o.label, o.box, person="ann") for o in s.objects]) for s in scenes]
    one_group = scene_groups(people, pd.DataFrame({"photo": ["x"], "person": ["ann"], "group": ["person:ann"]}))
    assert one_group == ["person:ann"] * 10 and scene_intervals(people, rows, one_group) == {}
    # a scene the manifest does not know is its own group
    assert scene_groups(scenes[:1], manifest.iloc[:0]) == ["0.jpg"]


def _scored(scenes, preds):
    return scenes, scene_metrics(scenes, preds)[1]


def test_detection_recall_on_real_scenes_for_both_detectors(tiny):
    from maskdet.predict.predictor import make_detector
    from maskdet.study.scenes import detection_table, read_scenes

    root, _, _ = tiny
    scenes = read_scenes(root / "data" / "raw" / "sample" / "scenes")
    assert len(scenes) == 6
    for name in ("centerface", "ultralight", "blazeface"):
        table = detection_table(scenes, make_detector(name))  # each at its own threshold
        recall = detection_recall(table)
        assert recall["faces"] == sum(len(s.objects) for s in scenes) and recall["masked_faces"] > 0
        assert 0.3 <= recall["recall"] <= 1.0, (name, recall)  # real detectors find most faces
