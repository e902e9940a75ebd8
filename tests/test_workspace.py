"""Where a stage writes: the study inside `dvc repro`, a run folder anywhere else."""

import pytest

from maskdet.stages import workspace as ws_module
from maskdet.stages.workspace import latest_trained_run, workspace


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch):
    monkeypatch.setattr(ws_module, "_CHOSEN", {})
    monkeypatch.delenv("DVC_STAGE", raising=False)


def test_inside_a_dvc_stage_the_study_itself_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train")
    for stage in ("train", "evaluate"):
        ws = workspace(stage, tmp_path)
        assert (ws.out, ws.models) == (tmp_path.resolve(), tmp_path.resolve() / "models")
        assert not ws.interactive and "study's" in ws.describe()
    assert not (tmp_path / "runs").exists()


def test_an_interactive_training_writes_a_fresh_run_folder_chosen_once(tmp_path):
    ws = workspace("train", tmp_path)
    assert ws.interactive
    assert ws.out.parent == tmp_path.resolve() / "runs" and ws.out.is_dir()
    assert ws.models == ws.out / "models"
    assert workspace("train", tmp_path) == ws  # the provenance cell and the run name the same folder
    assert f"runs/{ws.out.name}/" in ws.describe() and str(tmp_path) not in ws.describe()


def test_two_processes_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(ws_module.time, "strftime", lambda fmt: "20261127-120000")
    first = ws_module._new_run_folder(tmp_path)
    second = ws_module._new_run_folder(tmp_path)
    assert first.name == "20261127-120000" and second.name == "20261127-120000-1"


def test_an_interactive_evaluation_reads_the_newest_interactive_model(tmp_path):
    for stamp in ("20261126-090000", "20261127-100000", "20261127-110000"):
        (tmp_path / "runs" / stamp).mkdir(parents=True)
    for stamp in ("20261126-090000", "20261127-100000"):  # the newest folder holds no model yet
        (tmp_path / "runs" / stamp / "models").mkdir()
        (tmp_path / "runs" / stamp / "models" / "model.keras").write_bytes(b"")
    newest = tmp_path.resolve() / "runs" / "20261127-100000"
    assert latest_trained_run(tmp_path.resolve()) == newest
    ws = workspace("evaluate", tmp_path)
    assert (ws.out, ws.models) == (newest, newest / "models")


def test_without_an_interactive_model_the_evaluation_reads_the_study_and_writes_apart(tmp_path):
    ws = workspace("evaluate", tmp_path)
    assert ws.models == tmp_path.resolve() / "models"
    assert ws.out.parent == tmp_path.resolve() / "runs"


def test_only_train_and_evaluate_have_a_workspace(tmp_path):
    with pytest.raises(ValueError, match="eda"):
        workspace("eda", tmp_path)
