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
