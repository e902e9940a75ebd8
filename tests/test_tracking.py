"""A kernel started in notebooks/ and a process started in the root share one MLflow store."""

import os
import subprocess
import sys
import textwrap

import pytest

LOG = textwrap.dedent("""
    import mlflow
    from maskdet.study.tracking import configure
    configure()
    with mlflow.start_run(run_name={name!r}):
        mlflow.log_metric("x", 1.0)
    print(mlflow.get_tracking_uri())
""")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MASKDET_ROOT", raising=False)
    return tmp_path


def test_kernel_in_notebooks_and_process_in_root_write_one_store(project):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(project / "notebooks"))
    try:
        reply = kc.execute_interactive(LOG.format(name="from-kernel"), timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    result = subprocess.run(
        [sys.executable, "-c", LOG.format(name="from-root")],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sqlite:///{project.resolve() / 'mlflow.db'}"
    assert not (project / "notebooks" / "mlflow.db").exists()

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("maskdet")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["from-kernel", "from-root"]
    assert exp.artifact_location == (project.resolve() / "mlartifacts").as_uri()


def test_dvc_experiment_name_becomes_the_run_name(monkeypatch):
    from maskdet.study.tracking import run_name

    monkeypatch.setenv("DVC_EXP_NAME", "exp-1234")
    assert run_name("default") == "exp-1234"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert run_name("default") == "default"


def test_tree_state_ignores_what_dvc_writes_and_names_other_changes(tmp_path):
    """A clean `dvc repro` rewrites dvc.lock and the stage outputs while it runs:
    the reports must still say "clean"; any other uncommitted change is named."""
    import subprocess

    from maskdet.study.tracking import tree_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: x\n    metrics:\n      - reports/metrics.json:\n          cache: false\n"
    )
    (tmp_path / "reports").mkdir()
    for name in ("dvc.lock", "reports/metrics.json", "code.py"):
        (tmp_path / name).write_text("v1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "dvc.lock").write_text("v2\n")
    (tmp_path / "reports" / "metrics.json").write_text("v2\n")
    assert tree_state(tmp_path) == "clean"
    (tmp_path / "code.py").write_text("v2\n")
    assert tree_state(tmp_path) == "modified: code.py"
