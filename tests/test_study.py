"""The whole study (`dvc repro`) on small data in a copy of the project: metrics,
plots, HTML reports, and the MLflow store with runs, figures and the registered model."""

import json

import mlflow
import pytest

from tests.test_notebooks import run, smoke_project

pytestmark = pytest.mark.slow
TINY = {"model": {"input_size": 64},
        "train": {"epochs": 1, "fine_tune_epochs": 1, "early_stopping_patience": 0},
        "evaluate": {"loso_epochs": 1}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    project = smoke_project(tmp_path_factory.mktemp("study"), **TINY)
    done = run(["dvc", "repro"], project, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return project


def _client(project):
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def test_metrics_plots_and_dvc_views(study):
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert len([k for k in metrics if k.startswith("test_")]) >= 30
    assert 0 <= metrics["test_f1_macro"] <= 1
    assert {"loso_f1_macro_surgical", "loso_f1_macro_cloth", "loso_f1_macro_kn95"} <= set(metrics)
    shown = run(["dvc", "metrics", "show", "--json"], study)
    assert shown.returncode == 0 and "test_f1_macro" in shown.stdout
    plots = run(["dvc", "plots", "show", "--json"], study)
    assert plots.returncode == 0, plots.stderr
    for name in ("history.csv", "confusion.csv", "roc/with_mask.csv", "pr/without_mask.csv"):
        assert (study / "reports" / "plots" / name).is_file()
    assert "up to date" in run(["dvc", "status"], study).stdout


def test_html_reports_have_no_code_and_state_their_provenance(study):
    pages = sorted(p.name for p in (study / "reports" / "html").glob("*.html"))
    assert pages == ["01_eda.html", "02_train.html", "03_evaluate.html"]
    for page in (study / "reports" / "html").glob("*.html"):
        html = page.read_text()
        assert "Produced by" in html and "params sha256" in html
        assert "run_training(params)" not in html and "notebook_params(" not in html  # no code cells
        assert "data:image/png;base64" in html  # images embedded


def test_mlflow_has_one_execution_with_every_stage_and_the_model(study):
    client = _client(study)
    exp = client.get_experiment_by_name("maskdet")
    runs = client.search_runs([exp.experiment_id])
    stages = {r.data.tags.get("maskdet.stage"): r for r in runs if "maskdet.stage" in r.data.tags}
    assert set(stages) == {"eda", "train", "evaluate", "report"}
    parents = {r.data.tags["mlflow.parentRunId"] for r in stages.values()}
    assert len(parents) == 1  # one pipeline execution holds all four
    train, evaluate = stages["train"], stages["evaluate"]
    assert train.data.params["train.epochs"] == "1" and "git_commit" in train.data.tags
    history = client.get_metric_history(train.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]  # logged per epoch, both phases
    assert "test_f1_macro" in evaluate.data.metrics and len(evaluate.data.metrics) >= 30
    figures = {f.path for f in client.list_artifacts(evaluate.info.run_id, "figures")}
    assert {"figures/confusion_counts.png", "figures/roc.png", "figures/reliability.png"} <= figures
    reports = {f.path for f in client.list_artifacts(parents.pop(), "reports")}
    assert "reports/03_evaluate.html" in reports
    version = client.get_model_version_by_alias("maskdet", "champion")
    assert version.run_id == train.info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{study / 'mlflow.db'}")
    served = mlflow.pyfunc.load_model("models:/maskdet@champion")
    import numpy as np

    probs = served.predict(np.zeros((2, 64, 64, 3), np.float32))
    assert np.asarray(probs).shape == (2, 3)


def test_dvc_experiment_lands_in_the_project_store(study):
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"]):
        assert run(cmd, study).returncode == 0
    done = run(["dvc", "exp", "run", "--temp", "-n", "smoke-exp", "-S", "evaluate.leave_one_style_out=false",
                "-S", "train.fine_tune_epochs=0"], study, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = _client(study).search_runs([_client(study).get_experiment_by_name("maskdet").experiment_id],
                                      filter_string="attributes.run_name = 'smoke-exp'")
    assert runs, "the experiment's pipeline run did not reach the project's MLflow store"
