"""Every pipeline notebook runs top to bottom with its smoke defaults (nbval), and
the committed notebooks are stripped, canonical and parameterised."""

import json
import sys

import pytest

from maskdet.study.metrics import read_metrics
from tests.helpers import BIN, ROOT, run, smoke_project

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_pipeline_notebooks_exist_with_a_parameters_cell():
    assert [p.name for p in NOTEBOOKS] == ["01_eda.ipynb", "02_train.ipynb", "03_evaluate.ipynb"]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name


def test_committed_notebooks_are_stripped():
    result = run(
        [
            str(BIN / "nbstripout"),
            "--verify",
            "--extra-keys",
            "metadata.language_info.version",
            *map(str, NOTEBOOKS),
            *map(str, (ROOT / "notebooks").glob("dashboard*.ipynb")),
        ],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["execution_count"] is None and not cell["outputs"], path.name


def test_working_copies_are_byte_for_byte_what_the_clean_filter_commits():
    """DVC hashes the working copy, git stores the clean filter's output: when
    the two differ, the committed dvc.lock is stale on every clone."""
    for path in [*NOTEBOOKS, *(ROOT / "notebooks").glob("dashboard*.ipynb")]:
        cleaned = run(
            [str(BIN / "nbstripout"), "--textconv", "--extra-keys", "metadata.language_info.version", str(path)],
            cwd=ROOT,
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert cleaned.stdout == path.read_text(), f"{path.name}: run `nbstripout` on it (or `git checkout` it)"


def test_notebooks_run_under_nbval_with_smoke_defaults(tmp_path):
    """Also: a notebook run outside `dvc repro` leaves the study alone. Its
    model and reports land in runs/<timestamp>/, the tracked report files keep
    their bytes, and nothing is registered."""
    project = smoke_project(tmp_path)
    tracked = {rel: (project / rel).read_bytes() for rel in ("reports/plots/history.csv", "reports/metrics.json")}
    for step in (["maskdet", "sample", "--quiet"], ["maskdet", "data", "--quiet"]):
        done = run(step, project)
        assert done.returncode == 0, done.stderr
    result = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "-o",
            "addopts=",
            "-q",
            "notebooks/01_eda.ipynb",
            "notebooks/02_train.ipynb",
            "notebooks/03_evaluate.ipynb",
        ],
        project,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    # The notebooks resolved paths from the root (not notebooks/), and wrote one run folder there.
    runs = sorted((project / "runs").iterdir())
    assert len(runs) == 1, runs
    run_folder = runs[0]
    assert (run_folder / "models" / "model.keras").is_file()
    assert (run_folder / "reports" / "plots" / "history.csv").is_file()
    assert read_metrics(run_folder / "reports" / "metrics.json")["test_f1_macro"] >= 0
    assert not (project / "models").exists() and not (project / "notebooks" / "runs").exists()
    assert {rel: (project / rel).read_bytes() for rel in tracked} == tracked
    assert (project / "mlflow.db").is_file() and not (project / "notebooks" / "mlflow.db").exists()
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert client.search_registered_models() == []
    stages = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`maskdet.stage` = 'evaluate'"
    )
    assert [r.data.tags["maskdet.output"] for r in stages] == [f"runs/{run_folder.name}"]
