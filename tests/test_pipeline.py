"""The data stages of `dvc repro` on the default data, in a copy of the project.
(The study stages run on small data in test_study.py.)"""

import csv
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from benchmarks.project import copy_project, user_env
from maskdet import LABELS
from maskdet.io.voc import read_voc

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _dvc(project, *args):
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=project, capture_output=True, text=True, env=user_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    _dvc(project, "repro", "data")
    return project


def test_default_data_has_300_crops_per_class_from_every_person(reproduced):
    rows = list(csv.DictReader(open(reproduced / "data" / "processed" / "manifest.csv")))
    per_class = Counter(r["label"] for r in rows)
    assert all(per_class[label] >= 300 for label in LABELS), per_class
    assert len({r["person"] for r in rows}) == 25
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    for r in rows:
        assert (reproduced / "data" / "processed" / r["path"]).is_file()
        assert len(r["sha256"]) == 64


def test_no_group_person_or_photo_on_two_sides(reproduced):
    rows = list(csv.DictReader(open(reproduced / "data" / "processed" / "manifest.csv")))
    for column in ("group", "person", "photo"):
        sides = defaultdict(set)
        for r in rows:
            sides[r[column]].add(r["split"])
        leaks = {k: v for k, v in sides.items() if len(v) > 1}
        assert not leaks, f"{column} on two sides: {leaks}"


def test_test_scenes_count_only_test_people(reproduced):
    rows = list(csv.DictReader(open(reproduced / "data" / "processed" / "manifest.csv")))
    split_of = {r["person"]: r["split"] for r in rows}
    scenes = sorted((reproduced / "data" / "processed" / "scenes" / "annotations").glob("*.xml"))
    assert scenes
    for xml in scenes:
        for obj in read_voc(xml, LABELS).objects:
            assert obj.difficult == (split_of[obj.person] != "test")


def test_status_is_clean_and_second_repro_does_nothing(reproduced):
    assert "up to date" in _dvc(reproduced, "status", "data")
    before = (reproduced / "dvc.lock").read_text()
    out = _dvc(reproduced, "repro", "data")
    assert "didn't change, skipping" in out and "Running stage" not in out
    assert (reproduced / "dvc.lock").read_text() == before


def test_push_and_pull_through_a_local_remote(reproduced, tmp_path):
    """The default remote is a local folder: push, lose the data, pull it back."""
    _dvc(reproduced, "remote", "add", "-f", "--local", "-d", "scratch", str(tmp_path / "remote"))
    _dvc(reproduced, "push", "data")
    manifest = reproduced / "data" / "processed" / "manifest.csv"
    before = manifest.read_text()
    import shutil

    shutil.rmtree(reproduced / "data" / "processed")
    shutil.rmtree(reproduced / ".dvc" / "cache")
    _dvc(reproduced, "pull", "data")
    assert manifest.read_text() == before


def test_a_fresh_copy_lacks_outputs_but_no_dep_or_output_differs_from_dvc_lock(tmp_path):
    """What a clean clone's `dvc status` says before any repro: outputs missing
    (nothing is cached yet), never a changed dependency, parameter or committed
    output; those would mean the committed dvc.lock does not describe the files."""
    import json

    project = copy_project(tmp_path / "fresh")
    status = json.loads(_dvc(project, "status", "--json"))
    missing = {"deleted", "not in cache"}
    for stage, changes in status.items():
        for change in changes:
            assert isinstance(change, dict), f"{stage}: {change}"
            for kind, files in change.items():
                assert kind in ("changed deps", "changed outs"), f"{stage}: {kind} {files}"
                assert set(files.values()) <= missing, f"{stage}: {kind} {files}"
