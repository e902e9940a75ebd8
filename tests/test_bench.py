"""`make bench` runs end to end (every pipeline, real models) on small inputs.
It measures; it asserts nothing about speed (timings belong in the README)."""

import json
import shutil
import subprocess
import sys

import pytest

from benchmarks.bench import table
from maskdet.io import assets
from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def _photo_folder(frame, root):
    """A stand-in for a folder of real photos (the tests never use the team's
    real set): a few rendered crops per class and a real portrait."""
    for label in ("with_mask", "without_mask"):
        (root / label).mkdir(parents=True)
        for i, file in enumerate(frame[frame["label"] == label]["file"].head(3)):
            shutil.copy(file, root / label / f"{i}.jpg")
    shutil.copy(assets.extract(assets.PORTRAIT_PHOTOS[0]), root / "without_mask" / "portrait.jpg")
    return root


def _bench(tiny, tmp_path, real):
    root, model_dir, _ = tiny
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--repeats",
            "1",
            "--model",
            str(model_dir),
            "--scenes",
            str(root / "data" / "raw" / "sample" / "scenes"),
            "--out",
            str(out),
            "--real",
            real,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done


def test_benchmark_measures_every_pipeline_and_detector_on_real_photos_too(tiny, tmp_path):
    photos = _photo_folder(tiny[2], tmp_path / "photos")
    results, done = _bench(tiny, tmp_path, str(photos))
    for kind in ("maskdet", "maskdet_ultralight", "maskdet_blazeface", "classic", "classic_compiled"):
        r = results[kind]
        assert r["frames"] >= 6 and 0 < r["p50_ms"] <= r["p95_ms"] and r["images_per_s"] > 0
        assert r["peak_rss_mb"] > 50
    assert results["maskdet"]["tensorflow_loaded"] is (results["maskdet"]["runtime"] == "keras")
    assert results["maskdet"]["detector"] == "centerface" and results["maskdet"]["detector_input"] == "320x240"
    assert results["maskdet_blazeface"]["detector"] == "blazeface"
    assert results["maskdet_ultralight"]["detector_input"] == "400x300"  # as params.yaml sets it
    assert results["classic_compiled"]["runtime"] == "keras, compiled call"
    assert results["classic"]["tensorflow_loaded"]
    assert set(results["detectors"]) == {
        "centerface 320x240",
        "centerface 416x320",
        "centerface 640x480",
        "ultralight 400x300",
        "ultralight 640x480",
        "blazeface 192x192",
        "res10 (classic) 300x300",
    }
    for r in results["detectors"].values():
        assert r["p50_ms"] > 0 and 0 <= r["recall_masked"] <= 1 and 0 <= r["precision"] <= 1
        assert 0 <= r["real_framed_masked"] <= 1 and r["real_closeup_retry_bare"] >= r["real_closeup_bare"]
    assert results["detectors"]["centerface 320x240"]["real_framed_bare"] > 0  # the portrait, at least
    assert results["real"]["crops"]["n"] == 7 and "with_mask_found" in results["real"]["framed"]
    assert str(photos) in results["real_note"]
    assert results["faces_per_frame"][0] == 1 and results["faces_per_frame"][-1] == 6
    assert "| p50 latency per 640x480 frame (ms) |" in done.stdout and table(results) in done.stdout
    assert "close-up with retry" in done.stdout and "classic compiled p50 / ours" in done.stdout


def test_without_real_photos_the_bench_says_so_and_leaves_the_columns_out(tmp_path):
    from benchmarks.bench import real_photos

    photos, note = real_photos(str(tmp_path / "nowhere"))
    assert photos is None and "none" in note and "--real" in note
    assert real_photos("")[0] is None


def test_street_photos_are_measured_as_photos_and_as_frames(tiny, tmp_path, group_rgb):
    """`make bench-street` on a small VOC set of street photos made here (faces
    of 12 to 40 px): the photo setting finds the small faces the frame setting
    misses; the table has a row per face-width bin, and the classifier's
    crops view one for every face and one for the small ones."""
    from maskdet.io.voc import VocObject, write_voc
    from tests.helpers import save
    from tests.test_small_faces import street_photo

    _, model_dir, _ = tiny
    voc = tmp_path / "street"
    for width in (12, 14, 16, 40):
        photo, boxes = street_photo(group_rgb, width)
        save(voc / "images" / f"w{width}.png", photo)
        write_voc(
            voc / "annotations" / f"w{width}.xml",
            f"w{width}.png",
            photo.shape,
            [VocObject("without_mask", b) for b in boxes],
        )
    out = tmp_path / "street.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.street", "--voc", str(voc), "--model", str(model_dir), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    photo, frame = results["photo"], results["frame"]
    assert photo["faces"] == frame["faces"] == 12 and photo["photos"] == 4
    assert photo["recall_iou30"] > frame["recall_iou30"] and frame["recall_0-12"] == 0
    assert "| recall, faces 12-16 px wide (6) |" in done.stdout and "time per photo" in done.stdout
    # the classifier alone on the annotated faces, every face and the faces under 16 px
    every, small = results["crops"]["every"], results["crops"]["under_16px"]
    under_16 = photo["faces_0-12"] + photo["faces_12-16"]  # the scene table's bins under 16 px
    assert every["n"] == 12 and small["n"] == under_16 and 0 <= small["without_mask_called_right"] <= 1
    assert f"| faces under 16 px | {under_16} | {small['f1_macro']:.3f} |" in done.stdout


def test_street_bench_says_when_there_are_no_photos(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.street", "--voc", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "no street photos" in done.stderr and "nothing measured" in done.stderr


def test_the_own_data_benchmark_copies_the_project_with_the_photos_and_the_settings_asked(tmp_path):
    """`make bench-own-data` runs in a copy of the project set up as the docs'
    "Your own data" says, with any `--set` applied (a malformed one is refused)
    and a `--split` file taken as data.split_from."""
    import argparse

    import yaml

    from benchmarks.own_data import DATA_PATH, prepare, setting
    from maskdet.params import parse_params

    voc = tmp_path / "voc"
    for part in ("images", "annotations"):
        (voc / part).mkdir(parents=True)
    (voc / "annotations" / "a.xml").write_text("<annotation/>")
    project = prepare(voc, tmp_path / "copy", [setting("train.seed=43"), setting("data.min_size=8")])
    raw = yaml.safe_load((project / "params.yaml").read_text())
    assert raw["data"]["source"] == "voc" and raw["data"]["path"] == DATA_PATH
    assert raw["train"]["seed"] == 43 and raw["data"]["min_size"] == 8
    assert (project / DATA_PATH / "annotations" / "a.xml").is_file() and (project / "dvc.yaml").is_file()
    parse_params(raw, check_paths=False)  # the pipeline's own check takes it
    with pytest.raises(argparse.ArgumentTypeError, match="section.key=value"):
        setting("seed")
    # --split: the file goes where the data stage reads split files, named by data.split_from
    (tmp_path / "held.csv").write_text("source,photo,split\n")
    project = prepare(voc, tmp_path / "held", split=tmp_path / "held.csv")
    raw = yaml.safe_load((project / "params.yaml").read_text())
    assert raw["data"]["split_from"] == "data/splits/held.csv"
    assert (project / "data" / "splits" / "held.csv").read_text() == "source,photo,split\n"
    parse_params(raw, root=project)


def test_the_own_data_benchmark_retrains_with_the_next_seeds(tmp_path):
    """--seeds N: the copy's train.seed moved on, each training's figures kept, a count under 1 refused."""
    import yaml

    from benchmarks.own_data import main, reseed, seed_figures

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"seed": 42}, "train": {"seed": 42, "epochs": 3}}))
    reseed(tmp_path, 43)
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == {
        "data": {"seed": 42},
        "train": {"seed": 43, "epochs": 3},
    }
    summary = {"scene": {"map50": 0.7, "ap50_mask_weared_incorrect": 0.4, "recall": 0.9}, "test": {"f1_macro": 0.8}}
    assert seed_figures(summary, 43, 90) == {
        "seed": 43,
        "minutes": 1.5,
        "map50": 0.7,
        "ap50_mask_weared_incorrect": 0.4,
        "f1_macro": 0.8,
    }
    with pytest.raises(SystemExit) as stopped:
        main(["--seeds", "0", "--voc", str(tmp_path)])
    assert stopped.value.code == 2


def test_spark_pays_off_where_its_longer_start_up_is_earned_back():
    from benchmarks.spark import break_even

    # 30 s more start-up, 0.05 s saved on each photo after it: 600 photos
    r = {"cli_images_per_s": 10.0, "spark_images_per_s": 20.0, "spark_start_s": 40.0, "cli_start_s": 10.0}
    assert break_even(r) == "it pays off past about 600 photos on this machine"
    assert break_even({**r, "spark_images_per_s": 10.0}) == "it does not pay off on this machine"


def test_the_cross_validated_benchmark_writes_one_split_file_per_fold_that_the_data_stage_takes(tmp_path):
    """`make bench-own-data-folds`: each fold's file tests its photos, trains and
    validates on the others, keeps a photo group on one side, and lists the user's
    faces only (the built-in set beside them is never tested)."""
    import csv

    import yaml

    from benchmarks.own_data_folds import copy_fold_files, earlier_fold_files, main, write_fold_files
    from maskdet.data.split_file import read_split_file, sides_from_file

    split = {"train": 0.7, "val": 0.15, "test": 0.15}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "voc", "seed": 42, "split": split}}))
    rows = []
    for p in range(40):  # 40 photos of 1-4 faces; photos 0 and 1 near duplicates (one group)
        for f in range(1 + p % 4):
            label = "mask_weared_incorrect" if f == 0 and p % 5 == 0 else ("with_mask", "without_mask")[(p + f) % 2]
            group = "photo:p0" if p < 2 else f"photo:p{p}"
            rows.append(
                {"dataset": "voc", "label": label, "group": group, "source": f"images/p{p}.png#{f}", "photo": f"p{p}"}
            )
    rows += [{"dataset": "sample", "label": "with_mask", "group": "person:x", "source": "x#0", "photo": ""}]
    (tmp_path / "data" / "processed").mkdir(parents=True)
    with open(tmp_path / "data" / "processed" / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    own = rows[:-1]
    files = write_fold_files(tmp_path, 4)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        f"data/splits/fold-{i}-of-4.csv" for i in range(1, 5)
    ]
    tested = []
    for file in files:
        by_face, by_photo = read_split_file(file)
        assert set(by_face) == {r["source"] for r in own}  # the data stage places every face by it
        sides, _ = sides_from_file([r["source"] for r in own], [r["photo"] for r in own], file)
        assert by_photo["p0"] == by_photo["p1"] and {"train", "val", "test"} <= set(sides)
        tested += [r["source"] for r, side in zip(own, sides) if side == "test"]
    assert sorted(tested) == sorted(r["source"] for r in own)  # every face tested once
    with pytest.raises(SystemExit) as stopped:
        main(["--folds", "1", "--voc", str(tmp_path)])
    assert stopped.value.code == 2

    # --folds-from: another run (another setting) takes these folds as they are
    splits = tmp_path / "data" / "splits"
    again = copy_fold_files(earlier_fold_files(splits, 4), tmp_path / "again")
    assert [f.read_bytes() for f in again] == [f.read_bytes() for f in files]
    assert all(f.parent == tmp_path / "again" / "data" / "splits" for f in again)
    with pytest.raises(FileNotFoundError, match="fold-5-of-5.csv; give the data/splits folder"):
        earlier_fold_files(splits, 5)


def test_the_cross_validated_benchmark_refuses_folds_it_cannot_find(tmp_path, capsys):
    from benchmarks.own_data_folds import main

    with pytest.raises(SystemExit) as stopped:
        main(["--folds-from", str(tmp_path), "--voc", str(tmp_path)])
    assert stopped.value.code == 2
    assert f"--folds-from {tmp_path}: no fold-1-of-5.csv" in capsys.readouterr().err
