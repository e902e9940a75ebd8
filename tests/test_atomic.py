"""The one atomic writer: an output is replaced whole or left as it was."""

import os

import pytest

from maskdet.io.atomic import atomic_path, write_json_atomic


def test_a_file_is_replaced_in_one_rename_and_keeps_its_suffix(tmp_path):
    target = tmp_path / "deep" / "metrics.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".json" and str(os.getpid()) in tmp.name
        assert not target.exists()
        tmp.write_text("{}")
    assert target.read_text() == "{}" and list(target.parent.iterdir()) == [target]


def test_a_failure_leaves_the_old_output_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"f1": 1.0})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert '"f1": 1.0' in target.read_text() and list(tmp_path.iterdir()) == [target]


def test_a_folder_replaces_the_old_folder_whole(tmp_path):
    target = tmp_path / "processed"
    (target / "old").mkdir(parents=True)
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("x")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and list(tmp_path.iterdir()) == [target]


def test_nothing_written_leaves_the_target_alone(tmp_path):
    target = tmp_path / "video.mp4"
    target.write_bytes(b"old")
    with atomic_path(target):
        pass
    assert target.read_bytes() == b"old"
