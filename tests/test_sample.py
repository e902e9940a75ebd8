"""The built-in default data set, built small (2 crops per class per person)."""

import csv
from collections import Counter

import pytest
from PIL import Image

from maskdet import LABELS
from maskdet.data.readers import read_sample
from maskdet.data.sample import GROUP_PHOTOS, build_sample
from maskdet.params import SampleParams


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "sample"
    counts = build_sample(
        out,
        SampleParams(
            crops_per_class_per_person=2, scene_renders=1, crop_size=96, facial_hair=0.5, eyewear=0.3, one_loop=0.5
        ),
        progress=False,
    )
    return out, counts


def test_every_person_of_the_sources_gets_every_class(small_sample):
    out, counts = small_sample
    rows = list(csv.DictReader(open(out / "crops.csv")))
    people = Counter(r["person"] for r in rows)
    # 22 faces in the six group photos, Obama, Biden and the astronaut.
    assert len(people) == 25 and set(people.values()) == {6}
    assert counts == dict.fromkeys(LABELS, 50)
    for r in rows:
        assert (out / r["file"]).is_file()
        assert (r["style"] == "none") == (r["label"] == "without_mask")
        assert r["placement"] == {"with_mask": "correct", "without_mask": "none"}.get(r["label"], r["placement"])
        assert r["label"] != "mask_weared_incorrect" or r["placement"] in ("nose_out", "chin", "one_loop")
        assert r["lookalike"] in ("none", "sunglasses", "glasses") or r["label"] == "without_mask"
    drawn = Counter(r["lookalike"] for r in rows)
    assert drawn["beard"] + drawn["stubble"] + drawn["goatee"] + drawn["moustache"] > 10 and drawn["sunglasses"] > 5
    assert sum(r["placement"] == "one_loop" for r in rows) > 10
    assert Image.open(out / rows[0]["file"]).size == (96, 96)


def test_scenes_are_voc_with_a_person_per_face(small_sample):
    out, _ = small_sample
    read = read_sample(out)
    assert len(read.scenes) == len(GROUP_PHOTOS) == 6
    faces = sum(len(s.objects) for s in read.scenes)
    assert faces == 22
    assert all(o.person and o.label in LABELS for s in read.scenes for o in s.objects)
    sizes = {Image.open(s.image).size[0] for s in read.scenes}
    assert sizes == {1280}


def test_contact_sheet_shows_every_class(small_sample):
    out, _ = small_sample
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height == 3 * 112 and sheet.width > 1000
