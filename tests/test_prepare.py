"""The data stage on small data sets in each publisher layout, built here from real faces."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdet.data.prepare import prepare
from maskdet.io.voc import VocObject, write_voc
from maskdet.params import parse_params
from tests.helpers import face_crop, jpeg_bytes, save

# Faces in face-api's sample1.jpg and face-recognition's obama.jpg (found by the detector).
GROUP_FACES = [(1456, 199, 1686, 440), (411, 350, 598, 593), (831, 429, 1040, 663)]
OBAMA_FACE = (375, 79, 605, 418)


def _params(path, source, **data):
    """The user's set alone unless a test asks for the built-in set beside it."""
    return parse_params({"data": {"source": source, "path": str(path), "add_sample": False, **data}})


def _run(tmp_path, params):
    report = prepare(params, tmp_path, out=tmp_path / "processed", report_path=tmp_path / "report.json", progress=False)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    rows = list(csv.DictReader(open(tmp_path / "processed" / "manifest.csv")))
    return report, rows


def _reasons(report):
    return {(d["item"].split("/")[-1], d["reason"]) for d in report["dropped"]}


@pytest.fixture
def folder_set(tmp_path, group_rgb, face_rgb):
    root = tmp_path / "folders"
    faces = [face_crop(group_rgb, b) for b in GROUP_FACES]
    obama = face_crop(face_rgb, OBAMA_FACE)
    wm, nm = root / "with_mask", root / "without_mask"
    save(wm / "a.jpg", faces[0], quality=92)
    shutil.copyfile(wm / "a.jpg", wm / "dup.jpg")
    save(wm / "near.jpg", np.clip(faces[0].astype(int) + 3, 0, 255).astype(np.uint8), quality=80)
    save(wm / "gray.png", np.asarray(Image.fromarray(faces[1]).convert("L")))
    save(wm / "rgba.png", np.dstack([faces[2], np.full(faces[2].shape[:2], 255, np.uint8)]))
    save(nm / "sixteen.png", obama[..., 1].astype(np.uint16) * 257)
    img = Image.fromarray(np.ascontiguousarray(obama[:, ::-1]))
    exif = img.getexif()
    exif[0x0112] = 3  # upside down
    img.save(nm / "rotated.jpg", exif=exif)
    save(nm / "tiny.jpg", faces[1][:3, :3])
    (nm / "empty.jpg").write_bytes(b"")
    (nm / "truncated.jpg").write_bytes(jpeg_bytes(faces[2])[:900])
    (nm / "fake.jpg").write_text("<html>not an image</html>")
    (nm / "notes.txt").write_text("taken at the party")
    (root / "stray").mkdir()
    return root


def test_folder_layout_every_bad_input_is_reported(tmp_path, folder_set):
    report, rows = _run(tmp_path, _params(folder_set, "folders", split={"train": 0.5, "val": 0.25, "test": 0.25}))
    assert _reasons(report) >= {
        ("dup.jpg", "exact_duplicate"),
        ("tiny.jpg", "too_small"),
        ("empty.jpg", "empty"),
        ("truncated.jpg", "truncated"),
        ("fake.jpg", "not_an_image"),
        ("notes.txt", "not_an_image_file"),
        ("stray", "unknown_label"),
    }
    changes = {n["item"].split("/")[-1]: n["changes"] for n in report["normalized"]}
    assert changes == {
        "gray.png": ["grayscale"],
        "rgba.png": ["alpha"],
        "sixteen.png": ["16bit"],
        "rotated.jpg": ["exif_rotated"],
    }
    # Names are relative to the data set folder: data/processed hashes the same in every checkout.
    assert all(not r["source"].startswith("/") for r in rows)
    assert all(not d["item"].startswith("/") for d in report["dropped"])
    kept = {r["source"].split("/")[-1]: r for r in rows}
    assert set(kept) == {"a.jpg", "near.jpg", "gray.png", "rgba.png", "sixteen.png", "rotated.jpg"}
    # Near duplicates are kept but grouped, so they can never sit on both sides of the split.
    near = [g for g in report["near_duplicate_groups"] if any(i.endswith("a.jpg") for i in g)]
    assert near and any(i.endswith("near.jpg") for i in near[0])
    assert kept["a.jpg"]["split"] == kept["near.jpg"]["split"]
    assert kept["a.jpg"]["group"] == kept["near.jpg"]["group"]
    # Every crop written is an 8-bit RGB image; the EXIF-rotated one the right way up.
    for r in rows:
        img = Image.open(tmp_path / "processed" / r["path"])
        assert img.mode == "RGB" and (img.width, img.height) == (int(r["width"]), int(r["height"]))
    rotated = np.asarray(Image.open(tmp_path / "processed" / kept["rotated.jpg"]["path"])).astype(int)
    stored = np.asarray(Image.open(folder_set / "without_mask" / "rotated.jpg")).astype(int)  # EXIF not applied
    assert np.abs(rotated - np.rot90(stored, 2)).mean() < np.abs(rotated - stored).mean() / 3
    assert (
        report["counts"]["train"]["with_mask"]
        + report["counts"]["val"]["with_mask"]
        + report["counts"]["test"]["with_mask"]
        == 4
    )


def test_folder_layout_without_required_folders_says_what_is_needed(tmp_path):
    (tmp_path / "ds" / "with_mask").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="without_mask"):
        prepare(_params(tmp_path / "ds", "folders"), tmp_path, out=tmp_path / "p", report_path=tmp_path / "r.json")


@pytest.fixture
def voc_set(tmp_path, group_rgb):
    root = tmp_path / "voc"
    scene = group_rgb[::2, ::2]  # 960 x 640
    h, w = scene.shape[:2]
    save(root / "images" / "scene1.png", scene)
    boxes = [tuple(v // 2 for v in b) for b in GROUP_FACES]
    wide = (boxes[0][0], boxes[0][1], w + 40, boxes[0][3])  # runs off the right edge: clipped
    write_voc(
        root / "annotations" / "scene1.xml",
        "scene1.png",
        scene.shape,
        [
            VocObject("with_mask", boxes[1]),
            VocObject("mask_weared_incorrect", wide),
            VocObject("without_mask", (boxes[2][0], boxes[2][1], boxes[2][0], boxes[2][3])),  # zero width
            VocObject("mask", boxes[2]),  # not one of our classes
        ],
    )
    (root / "annotations" / "broken.xml").write_text("<annotation><object>")
    (root / "annotations" / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<annotation><filename>scene1.png</filename><object><name>&lol2;</name></object></annotation>"
    )
    write_voc(root / "annotations" / "orphan.xml", "gone.png", scene.shape, [VocObject("with_mask", boxes[1])])
    return root


def test_voc_layout_crops_clips_and_reports(tmp_path, voc_set):
    report, rows = _run(tmp_path, _params(voc_set, "voc", crop_padding=0.1))
    reasons = _reasons(report)
    assert ("scene1.xml", "unknown_label") in reasons
    assert ("broken.xml", "bad_annotation") in reasons
    assert ("bomb.xml", "bad_annotation") in reasons  # entities are refused, never expanded
    assert ("orphan.xml", "missing_image") in reasons
    assert ("scene1.xml", "inverted_box") in reasons  # the zero-width box
    assert [c["clipped_to"][2] for c in report["clipped"]] == [960]
    assert sorted(r["label"] for r in rows) == ["mask_weared_incorrect", "with_mask"]
    # Both faces come from one photo: one group, one split.
    assert len({r["group"] for r in rows}) == 1 and len({r["split"] for r in rows}) == 1
    crop = Image.open(tmp_path / "processed" / next(r["path"] for r in rows if r["label"] == "with_mask"))
    x1, y1, x2, y2 = (v // 2 for v in GROUP_FACES[1])
    assert crop.width == pytest.approx((x2 - x1) * 1.2, abs=2)


def test_a_hostile_voc_set_stays_inside_itself_in_the_data_stage_and_the_evaluation(tmp_path, group_rgb):
    """`<filename>` with ../ or an absolute path, an image or annotation that links out
    of the set, and boxes no face can have (1e308, inverted, off the image): one line
    each, the same in the data stage and `maskdet evaluate`, and no file outside read."""
    from maskdet.study.crosseval import read_labelled_set

    root, outside = tmp_path / "voc", tmp_path / "private"
    scene = group_rgb[::4, ::4]  # 480 x 320
    save(outside / "secret.png", scene)  # a readable image: reading it would make a face
    save(root / "images" / "ok.png", scene)
    (root / "images" / "link.png").symlink_to(outside / "secret.png")
    face = (100, 40, 160, 110)
    faces = [VocObject("with_mask", face)]
    for name, filename in (
        ("up", "../../private/secret.png"),
        ("absolute", str(outside / "secret.png")),
        ("link", "link.png"),
    ):
        write_voc(root / "annotations" / f"{name}.xml", filename, scene.shape, faces)
    write_voc(outside / "elsewhere.xml", "ok.png", scene.shape, faces)
    (root / "annotations" / "linked.xml").symlink_to(outside / "elsewhere.xml")
    write_voc(root / "annotations" / "ok.xml", "ok.png", scene.shape, faces)
    text = (root / "annotations" / "ok.xml").read_text()
    for name, value in (("huge", "1e308"), ("inf", "inf")):
        (root / "annotations" / f"{name}.xml").write_text(text.replace("<xmin>100</xmin>", f"<xmin>{value}</xmin>"))
    for name, box in (("inverted", (160, 40, 100, 110)), ("off", (500, 40, 560, 110))):
        write_voc(root / "annotations" / f"{name}.xml", "ok.png", scene.shape, [VocObject("with_mask", box)])
    expected = {("up.xml", "outside_the_set"), ("absolute.xml", "outside_the_set"), ("link.xml", "outside_the_set"),
                ("linked.xml", "outside_the_set"), ("huge.xml", "bad_box"), ("inf.xml", "bad_box"),
                ("inverted.xml", "inverted_box"), ("off.xml", "box_outside_image")}  # fmt: skip

    report, rows = _run(tmp_path, _params(root, "voc", min_size=8))
    assert expected <= _reasons(report) and len(report["dropped"]) == len(expected)
    assert [r["label"] for r in rows] == ["with_mask"]  # ok.xml's face alone
    evaluated = read_labelled_set(root)
    assert {(p["item"].split("/")[-1], p["reason"]) for p in evaluated.read.problems} == expected
    assert [item.path for item in evaluated.read.items] == [root / "images" / "ok.png"]


def test_a_voc_street_set_keeps_small_faces_and_its_training_photos(tmp_path, group_rgb):
    """Faces of 12 to 60 px in twelve photos of the same three people: with a
    small ``min_size`` every face becomes a crop, the photos form one group
    (near duplicates of each other), and the photos of the training side are
    kept whole with their boxes, for the detector's box correction. (A rare
    class on every side: test_small_faces.)"""
    from maskdet.study.scenes import read_scenes
    from tests.test_small_faces import street_photo

    root = tmp_path / "street"
    for i, width in enumerate((12, 16, 20, 24, 30, 36, 40, 44, 48, 52, 56, 60)):
        photo, boxes = street_photo(group_rgb, width, size=(640, 480))
        save(root / "images" / f"p{i}.png", photo)
        rare = "mask_weared_incorrect" if i % 4 == 0 else "without_mask"
        write_voc(
            root / "annotations" / f"p{i}.xml",
            f"p{i}.png",
            photo.shape,
            [VocObject("with_mask", boxes[0]), VocObject(rare, boxes[1]), VocObject("with_mask", boxes[2])],
        )
    report, rows = _run(tmp_path, _params(root, "voc", min_size=8))
    assert report["kept"] == 36 and not report["dropped"]
    assert min(int(r["width"]) for r in rows) < 16  # a 12-px face, padded, is data
    assert len({r["group"] for r in rows}) == 1 and {r["split"] for r in rows} == {"train"}
    train_photos = {r["photo"] for r in rows if r["split"] == "train"}
    kept = {p.stem for p in (tmp_path / "processed" / "scenes_train" / "images").iterdir()}
    assert kept == train_photos and report["train_scenes"] == len(train_photos)
    assert report["test_scenes"] == 0
    scenes = read_scenes(tmp_path / "processed" / "scenes_train")
    assert sum(len(s.objects) for s in scenes) == 36 and not any(o.difficult for s in scenes for o in s.objects)


def test_the_built_in_set_trains_beside_a_voc_set_and_stays_out_of_its_test_split(tmp_path, group_rgb):
    """data.add_sample: the rendered crops go to train and val, each crop says
    which data set it came from, and the test split is the user's alone."""
    from maskdet.data.sample import build_sample
    from maskdet.params import SampleParams
    from tests.test_small_faces import street_photo

    build_sample(
        tmp_path / "data" / "raw" / "sample",
        SampleParams(crops_per_class_per_person=1, crop_size=64, scene_renders=0),
        progress=False,
    )
    root = tmp_path / "street"
    for i, width in enumerate((16, 24, 32, 40)):
        photo, boxes = street_photo(group_rgb[:, ::-1] if i % 2 else group_rgb, width, size=(640, 480))
        save(root / "images" / f"p{i}.png", photo)
        write_voc(root / "annotations" / f"p{i}.xml", f"p{i}.png", photo.shape, [VocObject("with_mask", boxes[0])])
    report, rows = _run(tmp_path, _params(root, "voc", add_sample=True))
    by_set = {name: [r for r in rows if r["dataset"] == name] for name in ("voc", "sample")}
    assert len(by_set["voc"]) == 4 and len(by_set["sample"]) > 20
    assert {r["split"] for r in by_set["sample"]} == {"train", "val"}
    assert all(r["dataset"] == "voc" for r in rows if r["split"] == "test")
    assert report["items_read"] == len(rows) + len(report["dropped"])
    alone, _ = _run(tmp_path / "alone", _params(root, "voc"))
    assert alone["kept"] == 4
    (tmp_path / "data" / "raw" / "sample" / "crops.csv").unlink()
    with pytest.raises(FileNotFoundError, match="maskdet sample"):  # said, not skipped
        _run(tmp_path, _params(root, "voc", add_sample=True))


def test_a_split_file_holds_the_test_photos_when_a_data_setting_changes(tmp_path, group_rgb):
    """data.split_from: the faces go to the sides a split file names, whatever
    the crops look like (another padding, another min_size); a face the file
    does not list goes with its photo, and a photo it does not know, a side
    that is not a split or a file outside data/splits stops the stage with a
    line that names it."""
    from maskdet.params import ParamsError
    from tests.test_small_faces import street_photo

    root = tmp_path / "street"
    for i, width in enumerate((12, 20, 28, 36, 44, 52)):
        photo, boxes = street_photo(group_rgb[:, ::-1] if i % 2 else group_rgb, width, size=(640, 480))
        save(root / "images" / f"p{i}.png", photo)
        rare = "mask_weared_incorrect" if i % 3 == 0 else "without_mask"
        faces = [VocObject("with_mask", boxes[0]), VocObject(rare, boxes[1]), VocObject("with_mask", boxes[2])]
        write_voc(root / "annotations" / f"p{i}.xml", f"p{i}.png", photo.shape, faces)
    # A first run that drops the 12-px faces; its manifest, re-sided by hand, is the split file.
    _, rows = _run(tmp_path / "first", _params(root, "voc", min_size=20))
    assert {r["photo"] for r in rows} == {f"p{i}" for i in range(1, 6)}
    chosen = {"p1": "test", "p2": "val", "p3": "train", "p4": "test", "p5": "train"}
    splits = tmp_path / "data" / "splits"
    splits.mkdir(parents=True)
    with open(splits / "held.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "split": chosen[r["photo"]]} for r in rows)

    # Wider crops and every small face: the listed faces keep their sides.
    params = parse_params(
        {
            "data": {
                "source": "voc",
                "path": str(root),
                "add_sample": False,
                "min_size": 24,
                "crop_padding": 0.3,
                "split_from": "data/splits/held.csv",
            }
        },
        root=tmp_path,
    )
    report, held = _run(tmp_path, params)
    assert {(r["photo"], r["split"]) for r in held} == set(chosen.items())
    assert report["split_from"] == {"file": "data/splits/held.csv", "faces_placed_by_photo": 0}
    test_photos = {p.stem for p in (tmp_path / "processed" / "scenes" / "images").iterdir()}
    assert test_photos == {"p1", "p4"}

    # A face the file does not list goes with its photo's faces ...
    with open(splits / "held.csv", newline="") as fh:
        listed = [r for r in csv.DictReader(fh) if r["source"] != held[0]["source"]]
    with open(splits / "held.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(listed[0]))
        writer.writeheader()
        writer.writerows(listed)
    report, again = _run(tmp_path, params)
    assert report["split_from"]["faces_placed_by_photo"] == 1 and again == held
    # ... and a photo the file does not know at all is named.
    with pytest.raises(ValueError, match=r"does not place 3 of the 18 faces .*images/p0.png"):
        _run(tmp_path, params.model_copy(update={"data": params.data.model_copy(update={"min_size": 4})}))

    (splits / "bad.csv").write_text('source,split\n"images/p1.png#1,2,3,4",holdout\n')
    bad = params.model_copy(update={"data": params.data.model_copy(update={"split_from": "data/splits/bad.csv"})})
    with pytest.raises(ValueError, match=r"bad.csv, line 2: split 'holdout' is not one of train, val, test"):
        _run(tmp_path, bad)
    (splits / "bad.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match=r"bad.csv: data.split_from needs the columns source, split"):
        _run(tmp_path, bad)
    outside = {"data": {"source": "voc", "path": str(root), "split_from": "reports/held.csv"}}
    with pytest.raises(ParamsError, match=r"data.split_from = 'reports/held.csv' .*a file in data/splits/"):
        parse_params(outside, root=tmp_path)
    missing = {"data": {"source": "voc", "path": str(root), "split_from": "data/splits/gone.csv"}}
    with pytest.raises(ParamsError, match=r"expected an existing split file"):
        parse_params(missing, root=tmp_path)
