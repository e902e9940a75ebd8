"""Where a scene evaluation's mAP is lost: the answers re-scored with one part made right."""

import pytest

from maskdet.io.voc import VocObject
from maskdet.predict.predictor import Prediction
from maskdet.study.scene_headroom import class_positives, headroom_metrics, scene_headroom
from maskdet.study.scenes import Scene, scene_metrics
from tests.helpers import scene_face


def _scene(tmp_path, bare_width=100):
    """A masked face named right, a bare face named with_mask, an incorrect mask
    never found, a difficult face and a false detection."""
    bare = (200, 0, 200 + bare_width, bare_width)
    scene = Scene(
        tmp_path / "s.jpg",
        [
            VocObject("with_mask", (0, 0, 100, 100)),
            VocObject("without_mask", bare),
            VocObject("mask_weared_incorrect", (400, 0, 500, 100)),
            VocObject("without_mask", (600, 0, 700, 100), difficult=True),
        ],
    )
    faces = [
        scene_face((0, 0, 100, 100), "with_mask"),
        scene_face(bare, "with_mask", 0.8),
        scene_face((600, 0, 700, 100), "without_mask"),
        scene_face((800, 0, 900, 100), "without_mask", 0.3),
    ]
    return scene, Prediction("s.jpg", faces=faces)


def _by_case(table):
    return table.set_index("case")


def test_each_case_by_hand(tmp_path):
    scene, pred = _scene(tmp_path)
    metrics, rows = scene_metrics([scene], [pred])
    table = _by_case(scene_headroom([scene], rows))
    assert class_positives([scene]) == {"with_mask": 1, "without_mask": 1, "mask_weared_incorrect": 1}
    assert table.loc["as_answered", "map50"] == pytest.approx(metrics["map50"])
    # Without the empty box the bare face (0.8 x 0.05) is the second candidate for
    # without_mask, after the masked face (0.9 x 0.05): precision 1/2 at full recall.
    assert table.loc["no_false_faces", "ap50_without_mask"] == pytest.approx(0.5)
    assert table.loc["no_false_faces", "map50"] == pytest.approx((1 + 0.5 + 0) / 3)
    # Given its class the bare face (0.8 x 1) ranks first; the incorrect mask was never
    # found, and no class can make it so: the ceiling stays at 2/3.
    for case in ("classes_right_16px", "classes_right", "ceiling"):
        assert table.loc[case, "ap50_without_mask"] == pytest.approx(1.0)
        assert table.loc[case, "ap50_mask_weared_incorrect"] == 0.0
        assert table.loc[case, "map50"] == pytest.approx(2 / 3)
    assert table.loc["ceiling", "made right"] == "both: every found face right, no false detection"
    assert headroom_metrics(table.reset_index()) == {
        f"headroom_{case}_map50": pytest.approx(table.loc[case, "map50"])
        for case in ("no_false_faces", "classes_right_16px", "classes_right", "ceiling")
    }


def test_faces_narrower_than_readable_keep_their_answer(tmp_path):
    scene, pred = _scene(tmp_path, bare_width=12)
    _, rows = scene_metrics([scene], [pred])
    table = _by_case(scene_headroom([scene], rows))
    # The 12-px bare face keeps its with_mask answer (0.8 x 0.05), below the empty box
    # (0.3 x 0.9) among the candidates for without_mask: precision 1/2. Only the masked
    # face, given its class, leaves that list's head.
    assert table.loc["as_answered", "ap50_without_mask"] == pytest.approx(1 / 3)
    assert table.loc["classes_right_16px", "ap50_without_mask"] == pytest.approx(0.5)
    assert table.loc["classes_right", "ap50_without_mask"] == pytest.approx(1.0)
    wider = _by_case(scene_headroom([scene], rows, readable_width=10))
    assert wider.loc["classes_right_10px", "map50"] == pytest.approx(wider.loc["classes_right", "map50"])
    assert wider.loc["classes_right_10px", "made right"] == "found faces of 10 px and wider given their true class"


def test_no_answers_score_zero_in_every_case(tmp_path):
    scene, _ = _scene(tmp_path)
    _, rows = scene_metrics([scene], [Prediction("s.jpg", faces=[])])
    table = scene_headroom([scene], rows)
    assert len(table) == 5 and (table["map50"] == 0).all()
