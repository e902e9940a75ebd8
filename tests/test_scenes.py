"""Scene-level scoring (Pascal VOC rules) on hand-checked cases and on real scenes."""

import numpy as np
import pytest

from maskdet import LABELS
from maskdet.io.voc import VocObject
from maskdet.predict.predictor import Face, Prediction
from maskdet.study.scenes import Scene, average_precision, detection_recall, iou_matrix, match, scene_metrics


def _face(box, label, score=0.9, p=0.9):
    probs = dict.fromkeys(LABELS, (1 - p) / 2)
    probs[label] = p
    return Face(box, score, label, probs)


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
            _face((0, 0, 100, 100), "with_mask"),  # right
            _face((200, 0, 300, 100), "with_mask", 0.8),  # found, wrong label
            _face((600, 0, 700, 100), "without_mask"),  # difficult: ignored
            _face((800, 0, 900, 100), "without_mask", 0.3),
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
