"""Street photos with small faces: the photo setting of the Predictor, the box
correction fitted on hand-drawn boxes, recall by face size, and a split that
puts a rare class on every side. Real detectors on real faces, made small here."""

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskdet.data.split import split_by_group
from maskdet.io.voc import VocObject
from maskdet.params import PredictParams
from maskdet.predict.boxfit import MIN_PAIRS, BoxCorrection, fit_box_correction
from maskdet.predict.detectors import photo_input
from maskdet.predict.predictor import Predictor, detect_faces, make_detector
from maskdet.study.scenes import Scene, match, scene_metrics, size_bin
from tests.test_prepare import GROUP_FACES


def street_photo(group_rgb, face_width: int, size=(400, 300)) -> tuple[np.ndarray, list]:
    """The three-face group photo shrunk until its faces are about ``face_width``
    px wide, on a grey photo of ``size``; returns the photo and the faces' boxes."""
    factor = face_width / np.mean([b[2] - b[0] for b in GROUP_FACES])
    small = cv2.resize(group_rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    photo = np.full((size[1], size[0], 3), 128, np.uint8)
    h, w = min(small.shape[0], size[1]), min(small.shape[1], size[0])
    top, left = (size[1] - h) // 2, (size[0] - w) // 2
    photo[top : top + h, left : left + w] = small[:h, :w]
    boxes = [tuple(round(v * factor) + d for v, d in zip(b, (left, top, left, top))) for b in GROUP_FACES]
    return photo, boxes


def test_photo_input_grows_small_photos_and_caps_large_ones():
    assert photo_input(400, 300, 2.0, 2_000_000) == (800, 600)
    assert photo_input(4000, 3000, 2.0, 3_000_000) == (2000, 1500)  # capped at max_pixels
    assert photo_input(640, 480, 0.5, 2_000_000) == (320, 240)


def test_a_street_photo_s_small_faces_are_found_as_a_photo_not_as_a_frame(group_rgb):
    """Faces 14 px wide: the photo setting (2x, min_face 4) finds them; the
    frame setting (fitted into 320x240, min_face 20) cannot."""
    photo, truth = street_photo(group_rgb, 14)
    settings = PredictParams(closeup_retry=False)
    detector = make_detector("centerface")
    found = detect_faces(detector, photo, settings, photo=True)
    truth = [VocObject("with_mask", b) for b in truth]
    _, taken = match(truth, [d.box for d in found], [d.score for d in found], iou=0.3)
    assert sum(taken) == 3, (found, truth)
    assert detect_faces(detector, photo, settings, photo=False) == []


def _shifted(box, dy=0.12, grow=1.1):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + dy * h
    return (cx - w * grow / 2, cy - h * grow / 2, cx + w * grow / 2, cy + h * grow / 2)


def test_box_correction_learns_the_annotators_shift_and_ignores_stray_pairs():
    rng = np.random.default_rng(0)
    detections = []
    for _ in range(200):
        w = float(rng.uniform(8, 120))
        x, y = rng.uniform(0, 500, 2)
        detections.append((x, y, x + w, y + w * 1.2))
    truths = [_shifted(b) for b in detections]
    truths[:10] = [(0, 0, 5, 5)] * 10  # matched to the wrong face: must not pull the fit
    fitted = fit_box_correction("centerface", detections, truths)
    assert fitted.coef["shift_y"][0] == pytest.approx(0.12, abs=0.01)
    assert fitted.coef["log_width"][0] == pytest.approx(np.log(1.1), abs=0.01)
    assert abs(fitted.coef["shift_x"][0]) < 0.01 and abs(fitted.coef["shift_y"][1]) < 0.01
    box = (100, 100, 120, 124)
    assert fitted.apply(box, 640, 480) == tuple(round(v) for v in _shifted(box))
    assert fitted.apply((630, 470, 640, 480), 640, 480)[2:] == (640, 480)  # kept inside the image
    assert BoxCorrection.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted
    assert fit_box_correction("centerface", detections[: MIN_PAIRS - 1], truths[: MIN_PAIRS - 1]) is None


def test_a_bad_box_correction_in_metadata_is_named():
    from maskdet.errors import InputError

    with pytest.raises(InputError, match="box_correction"):
        BoxCorrection.from_dict({"detector": "centerface", "coef": {"shift_x": [0, 0]}})


def test_the_predictor_answers_in_the_annotators_box_shape(tiny, tmp_path, group_rgb):
    """A model folder that carries a correction for its detector gets its boxes
    moved; for another detector, or without one, the detector's own boxes."""
    import shutil

    _, model_dir, _ = tiny
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    coef = {"shift_x": [0, 0], "shift_y": [0.12, 0], "log_width": [float(np.log(1.1)), 0], "log_height": [0, 0]}
    meta["box_correction"] = {"detector": "centerface", "coef": coef, "pairs": 100}
    (folder / "metadata.json").write_text(json.dumps(meta))
    photo, _ = street_photo(group_rgb, 40)
    plain = [f.box for f in Predictor(model_dir).faces(photo)]
    corrected = Predictor(folder)
    assert len(plain) == 3
    assert [f.box for f in corrected.faces(photo)] == [
        corrected.box_correction.apply(b, photo.shape[1], photo.shape[0]) for b in plain
    ]
    assert [f.box for f in corrected.with_detector("ultralight").faces(photo)] == [
        f.box for f in Predictor(model_dir, detector="ultralight").faces(photo)
    ]


def test_recall_is_reported_by_face_width():
    from maskdet.predict.predictor import Face, Prediction

    objects = [VocObject("with_mask", (0, 0, 10, 12)), VocObject("with_mask", (50, 50, 80, 86))]
    probs = {"with_mask": 0.9, "without_mask": 0.05, "mask_weared_incorrect": 0.05}
    pred = Prediction("x.png", faces=[Face((51, 52, 80, 88), 0.9, "with_mask", probs)])
    scores, rows = scene_metrics([Scene(Path("x.png"), objects)], [pred])
    assert scores["recall_0-12"] == 0 and scores["recall_24-32"] == 1
    assert scores["faces_0-12"] == scores["faces_24-32"] == 1 and "recall_96-up" not in scores
    assert list(rows[["x1", "y1", "x2", "y2"]].iloc[0]) == [51, 52, 80, 88] and rows["true_box"][0] == "50 50 80 86"
    assert [size_bin(w) for w in (3, 12, 23, 200)] == ["0-12", "12-16", "16-24", "96-up"]


def test_the_split_puts_a_rare_class_on_every_side():
    """86 incorrectly worn masks beside 2,248 masks (the Kaggle set's shares):
    each side gets its share of the rare class, not only of the common ones."""
    rng = np.random.default_rng(1)
    labels, groups = [], []
    for photo in range(300):
        n = int(rng.integers(1, 12))
        labels += ["with_mask"] * n
        groups += [photo] * n
    for photo in range(300, 320):
        labels += ["mask_weared_incorrect", "with_mask"]
        groups += [photo, photo]
    splits = split_by_group(labels, groups, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    rare = Counter(s for s, label in zip(splits, labels) if label == "mask_weared_incorrect")
    assert rare["train"] == 14 and rare["val"] == rare["test"] == 3


def test_the_correction_is_fitted_on_training_photos_with_the_predictor_s_detector(group_rgb, tmp_path):
    """Annotators who draw every face 12 % lower and 10 % larger than the
    detector: fitted on their photos, the correction says so."""
    from maskdet.study.boxes import fit_on_scenes

    settings = PredictParams()
    detector = make_detector("centerface")
    scenes = []
    for width in (16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60):
        photo, _ = street_photo(group_rgb, width, size=(640, 480))
        path = tmp_path / f"{width}.png"
        cv2.imwrite(str(path), photo[..., ::-1])
        drawn = [VocObject("with_mask", _shifted(d.box)) for d in detect_faces(detector, photo, settings)]
        scenes.append(Scene(path, drawn))
    fitted = fit_on_scenes(settings, scenes)
    assert fitted.detector == "centerface" and fitted.pairs == sum(len(s.objects) for s in scenes) >= 30
    assert fitted.coef["shift_y"][0] == pytest.approx(0.12, abs=0.02)
    assert fitted.coef["log_height"][0] == pytest.approx(np.log(1.1), abs=0.02)


def test_the_train_stage_fits_the_correction_with_nothing_on_standard_error(group_rgb, tmp_path, capsys):
    """The train stage runs in a notebook whose report refuses standard-error output
    (stages/report.py): a progress bar of the box correction stopped `make repro`
    of a VOC set at the report stage."""
    from maskdet.params import Params
    from maskdet.paths import TRAIN_SCENES
    from maskdet.stages.train import _box_correction

    folder = tmp_path / "data" / "processed" / TRAIN_SCENES
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    settings, detector = PredictParams(), make_detector("centerface")
    for width in range(16, 64, 4):
        photo, _ = street_photo(group_rgb, width, size=(640, 480))
        cv2.imwrite(str(folder / "images" / f"{width}.png"), photo[..., ::-1])
        objects = "".join(
            "<object><name>with_mask</name><bndbox>"
            + "".join(f"<{k}>{round(v)}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), _shifted(d.box)))
            + "</bndbox></object>"
            for d in detect_faces(detector, photo, settings)
        )
        (folder / "annotations" / f"{width}.xml").write_text(
            f"<annotation><filename>{width}.png</filename><size><width>640</width><height>480</height>"
            f"<depth>3</depth></size>{objects}</annotation>"
        )
    correction = _box_correction(tmp_path, Params())
    assert correction["detector"] == "centerface" and correction["pairs"] >= 30
    assert capsys.readouterr().err == ""


def test_a_crowd_gets_numbers_a_few_faces_get_labels():
    """Thirty 16-px faces in a 400x300 photo: "mask_weared_incorrect 87%" above
    each would cover its neighbours, so each box carries its number (the
    dashboard table's #); three faces with room between them keep their labels."""
    from maskdet.predict.drawing import annotate, label_texts
    from maskdet.predict.predictor import Face

    probs = {"with_mask": 0.1, "without_mask": 0.03, "mask_weared_incorrect": 0.87}
    rgb = np.full((300, 400, 3), 200, np.uint8)
    crowd = [
        Face(
            (10 + 38 * (i % 10), 40 + 80 * (i // 10), 26 + 38 * (i % 10), 58 + 80 * (i // 10)),
            0.9,
            "mask_weared_incorrect",
            probs,
        )
        for i in range(30)
    ]
    texts = [t for t, _ in label_texts(rgb, crowd)]
    assert texts == [str(i) for i in range(1, 31)]
    few = [Face((10 + 400 * i, 100, 210 + 400 * i, 320), 0.9, "mask_weared_incorrect", probs) for i in range(3)]
    assert [t for t, _ in label_texts(np.zeros((600, 1200, 3), np.uint8), few)] == ["mask_weared_incorrect 87%"] * 3
    drawn = annotate(rgb, crowd)
    assert (drawn != rgb).any() and (rgb == 200).all()  # a copy, drawn on


def test_the_scene_evaluation_ranks_candidates_under_what_the_predictor_shows(tiny, tmp_path, group_rgb):
    """The evaluation's answers reach below the detector's threshold (as
    detection benchmarks validate), and those at or above it are exactly
    what the Predictor shows: the same boxes, scores and classes."""
    from maskdet.io.images import write_jpeg
    from maskdet.study.scenes import scene_answers

    _, model_dir, _ = tiny
    photo, truth = street_photo(group_rgb, 14)
    write_jpeg(tmp_path / "street.jpg", photo)
    scene = Scene(tmp_path / "street.jpg", [VocObject("with_mask", b) for b in truth])
    predictor = Predictor(model_dir)
    shown = predictor.predict(scene.image).faces
    (answer,), shown_from = scene_answers(predictor, [scene], candidates_from=0.02)
    assert shown_from == predictor.detector.score_threshold == 0.3
    above = [f for f in answer.faces if f.score >= shown_from]
    assert [(f.box, f.label) for f in above] == [(f.box, f.label) for f in shown]
    assert [f.score for f in above] == pytest.approx([f.score for f in shown])
    assert len(answer.faces) > len(shown)  # a grey photo of three faces holds weaker candidates too
    _, rows = scene_metrics([scene], [answer], shown_from=shown_from)
    assert rows["shown"].sum() == len(shown)
    # a threshold over the Predictor's own never hides what it shows
    (answer,), _ = scene_answers(predictor, [scene], candidates_from=0.9)
    assert [f.box for f in answer.faces] == [f.box for f in shown]
