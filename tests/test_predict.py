"""`maskdet predict` and the Predictor on real images, with a real (tiny) trained model."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maskdet import LABELS
from maskdet.errors import InputError
from maskdet.io import assets
from maskdet.params import PredictParams
from maskdet.predict.drawing import annotate
from maskdet.predict.predictor import Predictor
from maskdet.predict.prior import reweight
from tests.helpers import ROOT, run_maskdet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    group = assets.extract(assets.FACE_API_PHOTOS[0])
    (folder / "group.jpg").write_bytes(group.read_bytes())
    (folder / "broken.jpg").write_bytes(group.read_bytes()[:5000])
    return folder


def _predict(args, model_dir, stdin=None):
    return run_maskdet("predict", "--model", str(model_dir), "-q", *args, stdin=stdin)


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
    (face,) = json.loads(done.stdout)["faces"]
    assert face["box"] == [0, 0, 1920, 1280]


def test_predictor_sees_a_crop_exactly_as_evaluation_does(tiny):
    """One preprocessing path from crop file to classifier: the Predictor on a
    processed crop gives the training/evaluation pipeline's probabilities. (When
    the pipeline decoded with TensorFlow, its JPEG decoder differed from the
    Predictor's by up to 14 grey levels, and the probabilities by up to 0.12.)"""
    from maskdet.study.datasets import load_crops
    from maskdet.study.loso import predict_probs

    _, model_dir, frame = tiny
    test = frame[frame["split"] == "test"].head(12)
    predictor = Predictor(model_dir, runtime="keras")
    ours = np.array(
        [[f.probs[k] for k in LABELS] for path in test["file"] for f in predictor.predict(path, crops_only=True).faces]
    )
    theirs = predict_probs(predictor.classifier.model, load_crops(test["file"], predictor.input_size))
    np.testing.assert_allclose(ours, reweight(theirs, predictor.trained_prior, predictor.incorrect_share), atol=1e-5)


def test_every_answer_is_at_the_incorrect_share_and_none_gives_the_classifiers_own(tiny, face_rgb):
    """The Predictor moves the classifier's probabilities from the shares it was
    trained on (a third each, recorded in metadata.json) to predict.incorrect_share
    (0.03 by default); the CLI takes the share or none."""
    _, model_dir, _ = tiny
    crops = [face_rgb, face_rgb[::2, ::2], np.full((60, 50, 3), 90, np.uint8)]
    own = Predictor(model_dir, PredictParams(incorrect_share=None)).classify(crops)
    default = Predictor(model_dir)
    assert default.incorrect_share == 0.03
    np.testing.assert_allclose(default.trained_prior, np.full(3, 1 / 3), atol=1e-6)
    ratio = np.where(np.array(LABELS) == "mask_weared_incorrect", 0.03, 0.97 / 2) * 3
    np.testing.assert_allclose(default.classify(crops), own * ratio / (own * ratio).sum(1, keepdims=True), rtol=1e-5)

    photo = assets.extract(assets.PORTRAIT_PHOTOS[0])
    lines = {}
    for share in ("none", "0.5"):
        done = _predict(
            ["--crops", "--format", "jsonl", "--incorrect-share", share, str(photo)], model_dir
        )  # the default runtime, a TFLite export: the CLI's process need not load TensorFlow
        assert done.returncode == 0, done.stderr
        lines[share] = json.loads(done.stdout)["faces"][0]["probs"]
    own_photo = Predictor(model_dir, PredictParams(incorrect_share=None)).predict(photo, crops_only=True)
    assert lines["none"] == own_photo.faces[0].to_dict()["probs"]
    assert lines["0.5"]["mask_weared_incorrect"] > lines["none"]["mask_weared_incorrect"]
    refused = _predict(["--incorrect-share", "1.5", str(photo)], model_dir)
    assert refused.returncode == 2 and "--incorrect-share: '1.5': expected a share between 0 and 1" in refused.stderr


def test_annotate_draws_in_the_class_colour(model_dir):
    rgb = np.full((200, 200, 3), 255, np.uint8)
    from maskdet.predict.drawing import COLOURS
    from maskdet.predict.predictor import Face

    out = annotate(rgb, [Face((20, 60, 120, 160), 0.9, "without_mask", dict.fromkeys(LABELS, 1 / 3))])
    assert tuple(out[100, 20]) == COLOURS["without_mask"] and tuple(rgb[100, 20]) == (255, 255, 255)


def test_tflite_exports_hold_parity_with_keras_on_the_test_split(tiny):
    """The parity check itself: every export's probabilities on the test split
    against the Keras model's, within the stated tolerance (max |dp| <= 0.02,
    labels agreeing on >= 99 % of crops), for the runtime that training chose."""
    from maskdet.predict.classifier import LiteClassifier, load_classifier, predict_batched
    from maskdet.study.datasets import load_crops
    from maskdet.study.export import PARITY_MAX_ABS, parity

    _, model_dir, frame = tiny
    meta = json.loads((model_dir / "metadata.json").read_text())
    crops = load_crops(frame[frame["split"] == "test"]["file"], 48)
    reference = predict_batched(load_classifier(model_dir, meta, "keras"), crops)
    float16 = parity(reference, predict_batched(LiteClassifier(model_dir / "model_float16.tflite"), crops))
    assert float16["max_abs_diff"] <= PARITY_MAX_ABS, float16
    runtime = meta["serving"]["runtime"]
    if runtime != "keras":
        assert parity(reference, predict_batched(load_classifier(model_dir, meta), crops))["passed"]


def test_predictor_runtimes_agree_and_batch_size_follows_the_faces(model_dir):
    photo = assets.extract(assets.FACE_API_PHOTOS[0])
    keras_run = Predictor(model_dir, runtime="keras").predict(photo)
    lite = Predictor(model_dir, runtime="float16")
    for _ in range(2):  # 3 faces, then 1 crop, then 3 again: the interpreter re-plans its batch
        lite_run = lite.predict(photo)
        lite.predict(photo, crops_only=True)
    assert [f.box for f in lite_run.faces] == [f.box for f in keras_run.faces]
    for a, b in zip(lite_run.faces, keras_run.faces):
        assert max(abs(a.probs[k] - b.probs[k]) for k in LABELS) <= 0.02


def test_crop_resizes_run_on_one_blas_thread_and_leave_the_setting_as_it_was(model_dir, monkeypatch):
    """OpenBLAS workers left spinning after the resizes would take the cores the
    classifier runs on; the Predictor limits them only around its own resizes."""
    from threadpoolctl import threadpool_info

    import maskdet.predict.predictor as predict

    def blas_threads():  # NumPy's own OpenBLAS: SciPy or TensorFlow may bring others, unused here
        return [
            lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]
        ]

    seen, real = [], predict.resize_crop
    monkeypatch.setattr(predict, "resize_crop", lambda crop, size: (seen.append(blas_threads()), real(crop, size))[1])
    before = blas_threads()
    assert len(before) == 1  # NumPy's OpenBLAS is there to limit
    probs = Predictor(model_dir).classify([np.full((90, 80, 3), 120, np.uint8)] * 3)
    assert probs.shape == (3, len(LABELS))
    assert seen == [[1]] * 3
    assert blas_threads() == before


def test_numpy_resize_matches_the_training_resize(face_rgb):
    from maskdet.predict.crops import resize_crop
    from maskdet.study.datasets import resize_for_model

    for crop in (face_rgb[100:400, 150:420], face_rgb[:40, :30], face_rgb[:500, :90]):
        for size in (48, 160):
            np.testing.assert_allclose(resize_crop(crop, size), resize_for_model(crop, size).numpy(), atol=0.01)


def test_zip_inputs_give_a_line_per_entry_with_errors_for_bad_ones(model_dir, images, tmp_path):
    import zipfile

    archive = tmp_path / "shots.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(images / "group.jpg", "day1/group.jpg")
        z.write(images / "broken.jpg", "day1/broken.jpg")
        z.writestr("notes.txt", "not an image")
        z.writestr("../escape.jpg", (images / "group.jpg").read_bytes())
    done = _predict([str(archive), "--format", "jsonl", "--out", str(tmp_path / "annotated")], model_dir)
    assert done.returncode == 1
    lines = {json.loads(line)["image"].split("!", 1)[1]: json.loads(line) for line in done.stdout.splitlines()}
    assert set(lines) == {"day1/group.jpg", "day1/broken.jpg", "notes.txt", "../escape.jpg"}
    assert len(lines["day1/group.jpg"]["faces"]) == 3 and lines["day1/group.jpg"]["width"] == 1920
    assert lines["day1/broken.jpg"]["error"].startswith(("truncated", "corrupt"))
    assert lines["notes.txt"]["error"].startswith("not_an_image")
    assert lines["../escape.jpg"]["error"].startswith("unsafe_path")
    assert [p.name for p in (tmp_path / "annotated").iterdir()] == ["group.annotated.jpg"]
    assert not (tmp_path / "escape.jpg").exists()


def test_video_file_is_annotated_with_a_summary(model_dir, group_rgb, tmp_path):
    import cv2

    video = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    frame = cv2.cvtColor(cv2.resize(group_rgb, (640, 480)), cv2.COLOR_RGB2BGR)
    for i in range(8):
        writer.write(frame if i % 2 == 0 else np.zeros_like(frame))  # faces, then none
    writer.release()
    out = tmp_path / "out" / "annotated.mp4"
    env = {**os.environ, "MASKDET_ROOT": str(ROOT), "DISPLAY": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maskdet",
            "video",
            str(video),
            "--out",
            str(out),
            "-q",
            "--model",
            str(model_dir),
            "--save-confident",
            str(tmp_path / "keep"),
            "--min-confidence",
            "0",
            "--detect-every",
            "1",  # every frame: the frames without faces show none
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 8 and sum(summary["faces"].values()) == 12 and summary["fps"] > 0
    assert summary["saved_frames"] == 4 and len(list((tmp_path / "keep").glob("*.jpg"))) == 4
    # the served model's drift check, on the video's faces: 12 are too few to judge
    assert summary["drift"] == ["12 faces in the window, fewer than 100: too few to judge yet"]
    assert sum(summary["estimated_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    capture = cv2.VideoCapture(str(out))
    ok, first = capture.read()
    assert ok and first.shape == (480, 640, 3) and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert not list(out.parent.glob("*.partial*"))
    assert not np.array_equal(first, frame)  # boxes and the FPS band were drawn


def test_video_tracks_the_people_of_a_rendered_clip_and_writes_one_row_each(tiny, tmp_path):
    """A rendered walk-through (``data.clips``) through `maskdet video` with
    the detector on every second frame: each person a track, counted once."""
    import pandas as pd

    from maskdet.data.clips import render_clip

    root, model_dir, _ = tiny
    sample = root / "data" / "raw" / "sample"
    clip = render_clip(pd.read_csv(sample / "crops.csv"), sample, people=4, walk_frames=30, seed=1)
    video = clip.write(tmp_path / "walk.mp4")
    tracks = tmp_path / "tracks.csv"
    done = run_maskdet(
        "video",
        str(video),
        "--out",
        str(tmp_path / "out.mp4"),
        "-q",
        "--model",
        str(model_dir),
        "--detect-every",
        "2",
        "--tracks",
        str(tracks),
        DISPLAY="",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = list(csv.DictReader(tracks.open()))
    assert summary["detect_every"] == 2 and summary["tracks_csv"] == str(tracks)
    # the detector is the real one: every walker found and followed as one track
    assert sum(summary["people"].values()) == len(rows) == 4
    assert len({r["track"] for r in rows}) == 4
    assert all(1 <= int(r["first_frame"]) < int(r["last_frame"]) <= summary["frames"] for r in rows)
    assert all(abs(sum(float(r[f"p_{k}"]) for k in LABELS) - 1) < 0.01 for r in rows)
    bad = run_maskdet(
        "video", str(video), "--out", str(tmp_path / "x.mp4"), "--model", str(model_dir), "--detect-every", "0"
    )
    assert bad.returncode != 0 and "--detect-every 0" in bad.stderr


def test_the_tracking_benchmark_scores_every_frame_loop_on_a_rendered_clip(tiny, tmp_path):
    from benchmarks import tracking

    root, model_dir, _ = tiny
    out = tmp_path / "tracking.json"
    sample = root / "data" / "raw" / "sample"
    args = [
        "--model",
        str(model_dir),
        "--sample",
        str(sample),
        "--people",
        "2",
        "--walk-frames",
        "25",
        "--out",
        str(out),
    ]
    assert tracking.main(args) == 0
    results = json.loads(out.read_text())
    assert results["truth"]["persons"] == 2 and len(results["runs"]) == 1 + len(tracking.EVERY) + len(
        tracking.CLASSIFY_EVERY
    )
    tracked = results["runs"]["tracked, detector on every frame"]
    assert tracked["recall"] > 0.5 and tracked["id_switches"] >= 0 and sum(tracked["people"].values()) >= 1
    # the frames between detections cost less than a detection
    assert results["runs"]["tracked, detector on every 5th frame"]["ms_mean"] < tracked["ms_mean"]
    assert "| tracked, detector on every 3rd frame |" in tracking.table(results)
    assert "| tracked, detector on every 2nd frame, a face classified every 6th frame |" in tracking.table(results)


def test_video_errors_name_the_problem(model_dir, tmp_path):
    env = {**os.environ, "MASKDET_ROOT": str(ROOT), "DISPLAY": ""}
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "maskdet", "video", *a, "--model", str(model_dir)],  # noqa: E731
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    missing = run(str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o.mp4"))
    assert missing.returncode == 2 and "cannot open video file" in missing.stderr
    no_display = run(str(tmp_path / "nope.mp4"))
    assert no_display.returncode == 2 and "--out" in no_display.stderr
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    not_video = run(str(text), "--out", str(tmp_path / "o.mp4"))
    said = not_video.stderr.splitlines()[-1]
    assert not_video.returncode == 2 and ("no frame could be read" in said or "cannot open" in said), said
    assert "NaN" not in not_video.stdout
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("detector", ["centerface", "ultralight", "blazeface"])
def test_one_predictor_gives_each_thread_its_own_answer(model_dir, detector):
    """Threads share one Predictor (as the scoring server does): no answer may
    carry another image's faces, and no call may fail on a busy interpreter."""
    from concurrent.futures import ThreadPoolExecutor

    predictor = Predictor(model_dir, detector=detector, runtime="float32")
    images = [assets.extract(assets.FACE_API_PHOTOS[0]), assets.extract(assets.PORTRAIT_PHOTOS[0])]
    alone = {str(p): predictor.predict(p).to_dict() for p in images}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(predictor.predict, images * 6))
    for answer in answers:
        got, expected = answer.to_dict(), alone[answer.image]
        assert [f["box"] for f in got["faces"]] == [f["box"] for f in expected["faces"]]
        assert [f["probs"] for f in got["faces"]] == [f["probs"] for f in expected["faces"]]


def test_a_selfie_that_fills_the_picture_is_found_by_the_retry(model_dir, face_rgb):
    tight = Predictor(model_dir, closeup_retry=False)
    x1, y1, x2, y2 = tight.detector(face_rgb)[0].box
    dx, dy = (x2 - x1) // 4, (y2 - y1) // 4  # the middle half of the face
    selfie = np.ascontiguousarray(face_rgb[y1 + dy : y2 - dy, x1 + dx : x2 - dx])
    assert tight.faces(selfie) == []
    assert len(Predictor(model_dir).faces(selfie)) == 1  # closeup_retry is on by default


def test_predictor_takes_the_predict_section_whole_and_checks_its_overrides(model_dir):
    """One place for the defaults: the Predictor reads every field of a
    PredictParams; keyword overrides are validated as params.yaml is, and
    another detector keeps the rest of the settings."""
    from maskdet.params import ParamsError, PredictParams

    settings = PredictParams(score_threshold=0.55, min_face=33, ultralight_input=[320, 240], closeup_retry=False)
    predictor = Predictor(model_dir, settings, detector="ultralight", runtime="keras")
    assert (predictor.detector_name, predictor.runtime, predictor.settings.min_face) == ("ultralight", "keras", 33)
    assert predictor.detector.score_threshold == 0.55 and predictor.detector_input == "320x240"
    assert predictor.settings.closeup_retry is False
    twin = predictor.with_detector("centerface")
    assert twin.detector.score_threshold == 0.55 and twin.detector_input == "320x240"  # centerface_input's default
    assert twin.settings.min_face == 33 and twin.classifier is predictor.classifier
    lower = predictor.with_settings(score_threshold=0.1, incorrect_share=0.1)
    assert lower.detector.score_threshold == 0.1 and lower.incorrect_share == 0.1
    assert predictor.detector.score_threshold == 0.55 and predictor.incorrect_share == 0.03  # the original kept
    with pytest.raises(InputError, match="runtime"):
        predictor.with_settings(runtime="float32")
    with pytest.raises(ParamsError, match="detector = 'yolo' is not allowed"):
        Predictor(model_dir, detector="yolo")
    with pytest.raises(ParamsError, match="min_face"):
        Predictor(model_dir, settings, min_face=0)


def test_out_keeps_every_annotated_image_and_refuses_a_file(model_dir, images, tmp_path):
    """Inputs that share a name (two folders, a zip) each get their annotated
    copy; --out naming a file is one line, not a traceback."""
    import shutil
    import zipfile

    group = images / "group.jpg"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(group, tmp_path / folder / "group.jpg")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.write(group, "group.jpg")
    out = tmp_path / "out"
    done = _predict(["--out", str(out), str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c.zip")], model_dir)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "group-2.annotated.jpg",
        "group-3.annotated.jpg",
        "group.annotated.jpg",
    ]
    blocked = _predict(["--out", str(group), str(group)], model_dir)
    assert blocked.returncode == 2 and "a file is there" in blocked.stderr and "Traceback" not in blocked.stderr


def test_nul_separated_stdin_keeps_a_path_with_a_newline(model_dir, images, tmp_path):
    """`find -print0 | maskdet predict -0 -`: a file name holding a newline is one input."""
    import shutil

    odd = tmp_path / "two\nlines.jpg"
    shutil.copy(images / "group.jpg", odd)
    done = subprocess.run(
        [sys.executable, "-m", "maskdet", "predict", "--model", str(model_dir), "-q", "--format", "jsonl", "-0", "-"],
        input=f"{odd}\0{images / 'group.jpg'}\0".encode(),
        capture_output=True,
        env={**os.environ, "MASKDET_ROOT": str(ROOT)},
        cwd=ROOT,
    )
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.returncode == 0, done.stderr.decode()[-500:]
    assert [a["image"] for a in answers] == [str(odd), str(images / "group.jpg")]
    assert answers[0]["error"] is None and answers[0]["faces"] == answers[1]["faces"]


def test_served_model_answers_500_for_its_own_fault_and_keeps_bad_images_per_image(model_dir):
    """A fault inside the model is the server's (HTTP 500, the request not blamed);
    a bad image stays an `error` in its own answer."""
    import base64

    import pandas as pd
    from mlflow.exceptions import MlflowException

    from maskdet.predict.serving import PredictorModel

    served = PredictorModel()
    served.predictor = Predictor(model_dir)
    good = base64.b64encode(assets.extract(assets.PORTRAIT_PHOTOS[0]).read_bytes()).decode()
    junk = base64.b64encode(b"not an image").decode()
    answers = served.predict(None, pd.DataFrame({"image": [good, junk], "name": ["a.jpg", "b.jpg"]}))
    assert answers[0]["faces"] and not answers[0]["error"]
    assert answers[1]["error"] and not answers[1]["faces"]

    def broken(*args, **kwargs):  # what the unguarded interpreter raised under concurrent calls
        raise RuntimeError("There is at least 1 reference to internal data in the interpreter")

    served.predictor.classifier = broken
    with pytest.raises(MlflowException) as failed:
        served.predict(None, pd.DataFrame({"image": [good], "name": ["a.jpg"]}))
    assert failed.value.get_http_status_code() == 500
    assert "server fault while predicting 'a.jpg'" in failed.value.message and "RuntimeError" in failed.value.message
    assert "verify" not in failed.value.message.lower()


def test_the_video_hud_fits_its_longest_line_and_moves_off_a_face_in_its_corner():
    from collections import Counter

    from maskdet.predict.video import draw_hud, hud_corner

    frame = np.full((480, 640, 3), 255, np.uint8)
    counts = Counter({"mask_weared_incorrect": 12})
    shown = draw_hud(frame.copy(), 14.2, counts)
    dark = (shown == (20, 20, 20)).all(axis=2)
    columns = np.flatnonzero(dark[2])
    assert columns[0] == 0  # top left when no face is there
    rows = np.flatnonzero(dark[:, 2])
    band = shown[: rows[-1] + 1, : columns[-1] + 1]
    drawn = np.flatnonzero((band != (20, 20, 20)).any(axis=2).any(axis=0))
    # the text ends inside the band: "mask_weared_incorrect: 12" fits, and nothing outside it was drawn
    assert drawn[-1] < columns[-1] and (shown[:, columns[-1] + 1 :] == 255).all()
    face = (10, 40, 150, 200)  # a face (and its label above it) in the top-left corner
    assert hud_corner(640, 480, 250, 120, [face], label_height=14) == (390, 0)
    moved = (draw_hud(frame.copy(), 14.2, counts, [face]) == (20, 20, 20)).all(axis=2)
    assert moved[2, 637] and not moved[2, 2]


def test_video_serves_the_counters_of_maskdet_serve_while_it_runs(model_dir, group_rgb, tmp_path):
    """`maskdet video --metrics-port`: the frames are counted as the server counts
    images, and the counters are scraped over HTTP (they stay up until the process ends)."""
    import cv2
    import requests

    from maskdet.predict.predictor import Predictor
    from maskdet.predict.video import run_video
    from tests.helpers import free_port

    video = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(3):
        writer.write(cv2.cvtColor(cv2.resize(group_rgb, (640, 480)), cv2.COLOR_RGB2BGR))
    writer.release()
    port = free_port()
    summary = run_video(  # the detector on every frame: every face shown was answered by the classifier
        Predictor(model_dir), str(video), out=tmp_path / "out.mp4", progress=False, metrics_port=port, detect_every=1
    )
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = sum(summary.faces.values())
    counted = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("maskdet_faces_total{")
    )
    assert found == 9 and counted == found and "maskdet_class_share{" in text


def test_a_registered_model_is_downloaded_once_per_version_and_kept_whole(tiny, tmp_path, monkeypatch):
    """A Predictor of models:/maskdet@champion answers as the folder's does, from
    a copy kept per registry version: a second load reuses it, a moved alias gets
    its own, a missing model leaves nothing, and no temporary folder stays behind
    (MLflow's own download would leave one per load)."""
    import shutil
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    from maskdet.paths import cache_dir
    from maskdet.predict.model_cache import local_model
    from maskdet.study.registry import log_predictor, move_champion, register

    _, folder, _ = tiny
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # a store of its own
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def champion_of_a_new_version():
        with mlflow.start_run():
            info = log_predictor(folder, PredictParams())
        assert move_champion(register(info.model_uri), 0.5)
        return info.model_uri  # the logged model's own URI, models:/m-…

    logged = champion_of_a_new_version()
    kept_before = set((cache_dir() / "models").glob("*")) if (cache_dir() / "models").is_dir() else set()
    first = Predictor("models:/maskdet@champion")
    kept = local_model("models:/maskdet@champion")
    try:
        assert kept.parent == cache_dir() / "models" and first.folder.is_relative_to(kept)
        assert Predictor("models:/maskdet@champion").folder == first.folder  # reused, not downloaded again
        assert Predictor("models:/maskdet/1").folder == first.folder  # the same version by its number
        assert (local_model(logged) / "MLmodel").is_file()  # by the logged model's id: a copy of its own
        photo = assets.extract(assets.FACE_API_PHOTOS[0])
        answers = [[(f.box, f.label) for f in p.predict(photo).faces] for p in (first, Predictor(folder))]
        assert len(answers[0]) == 3 and answers[0] == answers[1]

        champion_of_a_new_version()
        moved = Predictor("models:/maskdet@champion").folder
        assert moved != first.folder and moved.is_relative_to(cache_dir() / "models")
        with pytest.raises(MlflowException):
            local_model("models:/maskdet@nobody")
        new = set((cache_dir() / "models").glob("*")) - kept_before  # dot-folders are downloads under way
        assert sorted(p.name.startswith(".") for p in new) == [False, False, False]
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        for copy in set((cache_dir() / "models").glob("*")) - kept_before:
            shutil.rmtree(copy)
