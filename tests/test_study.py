"""The whole study (`dvc repro`) on small data in a copy of the project: metrics,
plots, HTML reports, and the MLflow store with runs, figures and the registered model.

The store is a team tracking server (PostgreSQL, `mlflow server` with proxied
artifacts), started as `make tracking-server` starts it and reached through
MLFLOW_TRACKING_URI alone: every stage, the registry alias, `maskdet serve`,
the CLI and the dashboard are checked against it here (#16). The project's own
sqlite store is what test_notebooks.py and test_tracking.py run on.
"""

import base64
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest
import requests
import yaml

from maskdet import LABELS
from maskdet.errors import InputError
from maskdet.predict.rest import wait_until_ready
from maskdet.study.metrics import HEADLINE_METRICS, read_metrics
from tests.helpers import BIN, ROOT, docs_tool, free_port, require_system, run, smoke_project

pytestmark = pytest.mark.slow
TINY = {
    "model": {"input_size": 64},
    "train": {"epochs": 1, "fine_tune_epochs": 1, "early_stopping_patience": 0},
    # "trained on A, tested on B": the built-in scenes at hand, and a set that is not there
    "evaluate": {"loso_epochs": 1, "loso_input_size": 48, "external": ["data/raw/sample/scenes", "no/such/set"]},
}


# The study's writer and a reader, as a team's admin would create them
# (docs, Past one machine: "A team tracking server").
USERS = {"writer": ("study-writer", "writer-password-1"), "reader": ("team-reader", "reader-password-1")}
SERVER = {}  # the tracking fixture's folder


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """The tracking server's URI; its PostgreSQL and artifacts live in a throw-away folder.
    It speaks HTTPS with a certificate made here, as a team would bring its own.
    Everything in this module reaches it as the study's writer would: MLflow's own
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and
    MLFLOW_TRACKING_SERVER_CERT_PATH in the environment."""
    from mlflow.server.auth.client import AuthServiceClient

    from maskdet.scale.tracking_server import ADMIN, NoPostgresError, Tls, postgres_bin, tracking_server

    try:
        found = bool(postgres_bin())
    except NoPostgresError:
        found = False
    require_system("PostgreSQL (initdb, pg_ctl)", found, "`make system` installs it")
    # Under root PostgreSQL runs as the postgres user, who may not enter pytest's private folders.
    folder = Path(tempfile.mkdtemp(prefix="maskdet-tracking-"))
    folder.chmod(0o755)
    SERVER["folder"] = folder
    logs = tmp_path_factory.mktemp("tracking")
    admin_file = logs / "admin.password"
    admin_file.write_text("admin-password-1\n")
    admin_file.chmod(0o600)
    certfile, keyfile = _self_signed(logs)
    SERVER["cert"] = str(certfile)
    tls = Tls(certfile, keyfile)
    try:
        with (
            (logs / "server.log").open("w") as log,
            tracking_server(
                folder,
                port=free_port(),
                pg_port=free_port(),
                workers=1,
                log=log,
                admin_password_file=admin_file,
                tls=tls,
            ) as server,
            pytest.MonkeyPatch.context() as env,
        ):
            assert server.url.startswith("https://")
            env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certfile))
            env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
            env.setenv("MLFLOW_TRACKING_PASSWORD", "admin-password-1")
            admin = AuthServiceClient(server.url)
            for name, password in USERS.values():
                admin.create_user(name, password)
            env.setenv("MLFLOW_TRACKING_USERNAME", USERS["writer"][0])
            env.setenv("MLFLOW_TRACKING_PASSWORD", USERS["writer"][1])
            yield server.url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory, tracking):
    project = smoke_project(tmp_path_factory.mktemp("study"), **TINY)
    done = run(["dvc", "repro"], project, tracking_uri=tracking, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return project


def _client(tracking):
    return mlflow.MlflowClient(tracking_uri=tracking)


def test_metrics_plots_and_dvc_views(study):
    metrics = read_metrics(study / "reports" / "metrics.json")
    assert len([k for k in metrics if k.startswith("test_")]) >= 30
    assert 0 <= metrics["test_f1_macro"] <= 1
    assert {"loso_f1_macro_surgical", "loso_f1_macro_cloth", "loso_f1_macro_kn95"} <= set(metrics)
    assert set(HEADLINE_METRICS) <= set(metrics)  # every number the dashboard's model card shows
    shown = run(["dvc", "metrics", "show", "--json"], study)
    assert shown.returncode == 0, shown.stderr
    # nested by section (#13): DVC lists test.f1_macro, scene.map50, ... not one row of 90 flat keys
    assert '"f1_macro"' in shown.stdout and '"test_f1_macro"' not in shown.stdout
    written = json.loads((study / "reports" / "metrics.json").read_text())
    assert {"test", "scene", "serving", "loso", "detector"} <= set(written) and "f1_macro" in written["test"]
    plots = run(["dvc", "plots", "show", "--json"], study)
    assert plots.returncode == 0, plots.stderr
    # only the plots defined with their axes: no CSV drawn against its row index
    assert sorted(json.loads(plots.stdout)["data"]) == sorted(
        ["Loss", "Accuracy", "ROC", "Precision-recall", "reports/plots/confusion.csv"]
    )
    for name in ("history.csv", "confusion.csv", "roc/with_mask.csv", "pr/without_mask.csv"):
        assert (study / "reports" / "plots" / name).is_file()
    assert "up to date" in run(["dvc", "status"], study).stdout


def test_dvc_plots_show_draws_every_plot_offline(study, tmp_path):
    """#13: DVC's own page loads Vega from a CDN and is blank offline; `make
    setup` writes the template with Vega inlined that .dvc/config names. Drawn
    here by the system Chromium with every request off this machine refused."""
    from playwright.sync_api import sync_playwright

    from maskdet.stages.pdf import find_chromium

    browser_path = find_chromium()
    require_system("Chromium", bool(browser_path), "`make browser` installs it")
    written = run([str(BIN / "python"), "-m", "maskdet.io.vega"], study)  # as `make setup` does
    assert written.returncode == 0, written.stderr
    shown = run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], study)
    assert shown.returncode == 0, shown.stderr
    page_html = (tmp_path / "plots" / "index.html").read_text()
    assert "<script src" not in page_html and page_html.count("vegaEmbed(") == 5
    refused = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page()

        def local(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        page.route("**/*", local)
        page.goto((tmp_path / "plots" / "index.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= 5")
        browser.close()
    assert refused == []


def test_headline_numbers_carry_an_interval_over_people_and_groups_no_absent_class_f1(study):
    """#15: a bootstrap over the test split's people for accuracy, macro-F1 and
    each class's recall, in metrics.json and the results table; per-style and
    per-person tables score only the classes a group holds."""
    import pandas as pd

    metrics = read_metrics(study / "reports" / "metrics.json")
    assert metrics["test_bootstrap_people"] >= 2
    for name in ("accuracy", "f1_macro", "recall_with_mask", "recall_without_mask"):
        low, high = metrics[f"test_{name}_ci95_low"], metrics[f"test_{name}_ci95_high"]
        assert 0 <= low <= metrics[f"test_{name}"] <= high <= 1, name
    markdown = (study / "reports" / "tables" / "results.md").read_text()
    low, high = metrics["test_accuracy_ci95_low"], metrics["test_accuracy_ci95_high"]
    assert f"| {low:.3f}–{high:.3f} |" in markdown and "over people" in markdown
    by_style = pd.read_csv(study / "reports" / "tables" / "by_style.csv")
    assert not any("f1" in c for c in by_style.columns) and {"accuracy", "recall_without_mask"} <= set(by_style.columns)
    bare = by_style.set_index("style").loc["none"]
    assert 0 <= bare["recall_without_mask"] <= 1 and pd.isna(bare["recall_with_mask"])


def test_the_methods_paragraph_and_results_tables_match_the_metrics(study):
    """reports/methods.md and reports/tables/results.{tex,md}: the tables show
    metrics.json's numbers, the paragraph this run's settings and split, and the
    evaluation report shows both."""
    metrics = read_metrics(study / "reports" / "metrics.json")
    latex = (study / "reports" / "tables" / "results.tex").read_text()
    markdown = (study / "reports" / "tables" / "results.md").read_text()
    for key in ("test_accuracy", "test_f1_macro", "test_recall_with_mask", "loso_f1_macro_mean", "scene_recall"):
        assert f" & {metrics[key]:.3f} & " in latex and f"| {metrics[key]:.3f} |" in markdown, key
    assert f" & {int(metrics['test_n'])} & " in latex
    methods = (study / "reports" / "methods.md").read_text()
    settings = yaml.safe_load((study / "params.yaml").read_text())
    assert f"input {settings['model']['input_size']} x {settings['model']['input_size']}" in methods
    assert "test " in methods and "Software: python" in methods and "CPU only" in methods
    html = (study / "reports" / "html" / "03_evaluate.html").read_text()
    assert "For a paper: Methods and results" in html and "Methods." in html


def test_html_reports_have_no_code_and_state_their_provenance(study):
    pages = sorted(p.name for p in (study / "reports" / "html").glob("*.html"))
    assert pages == ["01_eda.html", "02_train.html", "03_evaluate.html", "report.html"]
    for page in (study / "reports" / "html").glob("*.html"):
        html = page.read_text()
        assert "Produced by" in html and "params sha256" in html
        assert "Software" in html and "tensorflow 2." in html and "scikit-learn" in html  # the versions that matter
        assert "run_training(params)" not in html and "notebook_params(" not in html  # no code cells
        assert "data:image/png;base64" in html  # images embedded


def test_every_figure_and_table_is_numbered_and_captioned_in_order(study):
    """#13: "Figure 3.2." is the evaluation's second figure; numbers run 1, 2, 3...
    in each report, captions carry this run's numbers, and the combined report
    keeps every notebook's numbering."""
    import re

    metrics = read_metrics(study / "reports" / "metrics.json")
    for chapter, name, least in ((1, "01_eda", (2, 3)), (2, "02_train", (1, 3)), (3, "03_evaluate", (10, 8))):
        html = (study / "reports" / "html" / f"{name}.html").read_text()
        for kind, minimum in zip(("Figure", "Table"), least):
            numbers = [int(n) for n in re.findall(rf"<strong>{kind} {chapter}\.(\d+)\.</strong>", html)]
            assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= minimum, (name, kind, numbers)
    evaluation = (study / "reports" / "html" / "03_evaluate.html").read_text()
    assert f"Confusion matrix on the {int(metrics['test_n'])} test crops of " in evaluation
    assert f"over the {int(metrics['test_bootstrap_people'])} people" in evaluation
    combined = (study / "reports" / "html" / "report.html").read_text()
    assert all(f"<strong>Figure {c}.1.</strong>" in combined for c in (1, 2, 3))


def test_the_combined_report_has_contents_and_prints_to_pdf(study):
    """reports/html/report.html: the three notebooks in order behind a table of
    contents; reports/pdf/report.pdf: its print by the system Chromium, read
    back with poppler (text of page 1, pixels of the pages after it)."""
    import shutil

    import numpy as np
    from PIL import Image

    html = (study / "reports" / "html" / "report.html").read_text()
    contents = html.split('<nav class="maskdet-toc">', 1)[1].split("</nav>", 1)[0]
    parts = [contents.find(f"{n} · ") for n in ("01", "02", "03")]
    assert -1 < parts[0] < parts[1] < parts[2], contents[:500]
    assert "Confusion matrices" in contents and "For a paper" in contents
    assert html.count("Produced by") == 3 and "run_training(params)" not in html
    pdf = study / "reports" / "pdf" / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if not shutil.which("pdftoppm"):
        if os.environ.get("CI"):
            pytest.fail("pdftoppm (poppler-utils) missing in CI: `make browser` installs it")
        pytest.skip("pdftoppm (poppler-utils) not installed: `make browser` installs it")
    text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True)
    assert "maskdet: face-mask detection study" in text.stdout and "Contents" in text.stdout
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "2", "-l", "3", str(pdf), str(study / "page")], check=True)
    pages = sorted(study.glob("page-*.png"))
    assert len(pages) == 2
    # a figure: many saturated pixels (the class colours of the charts), which text alone never has
    rgb = np.concatenate([np.asarray(Image.open(p).convert("RGB"), np.int16).reshape(-1, 3) for p in pages])
    saturated = (rgb.max(axis=1) - rgb.min(axis=1)) > 80
    assert saturated.mean() > 0.02, saturated.mean()  # 0.04 on figure pages, 0.007 on the contents page


def test_mlflow_has_one_execution_with_every_stage_and_the_model(study, tracking):
    client = _client(tracking)
    exp = client.get_experiment_by_name("maskdet")
    runs = client.search_runs([exp.experiment_id])
    stages = {r.data.tags.get("maskdet.stage"): r for r in runs if "maskdet.stage" in r.data.tags}
    assert set(stages) == {"eda", "train", "evaluate", "report", "evaluate.loso"}
    loso = [r for r in runs if r.data.tags.get("maskdet.stage") == "evaluate.loso"]
    stages.pop("evaluate.loso")
    parents = {r.data.tags["mlflow.parentRunId"] for r in stages.values()}
    assert len(parents) == 1, [  # one pipeline execution holds all four
        (r.info.run_name, r.data.tags.get("mlflow.parentRunId"), r.data.tags.get("maskdet.pipeline_key")) for r in runs
    ]
    train, evaluate = stages["train"], stages["evaluate"]
    assert train.data.params["train.epochs"] == "1" and "git_commit" in train.data.tags
    history = client.get_metric_history(train.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]  # logged per epoch, both phases
    assert "test_f1_macro" in evaluate.data.metrics and len(evaluate.data.metrics) >= 30
    figures = {f.path for f in client.list_artifacts(evaluate.info.run_id, "figures")}
    assert {"figures/confusion_counts.png", "figures/roc.png", "figures/reliability.png"} <= figures
    parent_id = next(iter(parents))
    reports = {f.path for f in client.list_artifacts(parent_id, "reports")}
    assert "reports/03_evaluate.html" in reports
    # the server keeps the artifacts (proxied): nothing lands in a store of the project's own
    assert evaluate.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert not (study / "mlflow.db").exists() and not (study / "mlartifacts").exists()
    classifier = {f.path for f in client.list_artifacts(train.info.run_id, "classifier")}
    assert "classifier/MLmodel" in classifier  # the bare Keras network, for researchers
    version = client.get_model_version_by_alias("maskdet", "champion")
    assert version.run_id == evaluate.info.run_id  # the registered model is the whole Predictor
    # MLflow that reads well (#15): the UI opens on runs, each leave-one-style-out
    # training is a child of the evaluation (no curves drawn over each other), the
    # pipeline's run carries the headline metrics, short names, the data as an
    # input, a described registry entry and version.
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert {r.info.run_name for r in loso} == {
        "loso-control (every style)",
        "loso-without-surgical",
        "loso-without-cloth",
        "loso-without-kn95",
    }
    assert {r.data.tags["mlflow.parentRunId"] for r in loso} == {evaluate.info.run_id}
    assert "val_loss" not in evaluate.data.metrics and all("val_loss" in r.data.metrics for r in loso)
    parent = client.get_run(parent_id)
    assert set(HEADLINE_METRICS) <= set(parent.data.metrics)
    assert parent.data.metrics["test_f1_macro"] == evaluate.data.metrics["test_f1_macro"]
    assert parent.info.run_name == f"{parent.data.tags['git_commit'][:7]}-p{parent.data.tags['params_sha256'][:4]}"
    assert parent.data.tags["mlflow.source.name"] == "dvc repro"
    assert train.data.tags["mlflow.source.name"] == "notebooks/02_train.ipynb"
    inputs = evaluate.inputs.dataset_inputs
    digest = train.data.tags["data_sha256"][:16]
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("data/processed", digest)]
    registered = client.get_registered_model("maskdet")
    assert "Predictor" in registered.description and "champion" in registered.description
    assert "Test split: accuracy" in version.description and train.data.tags["data_sha256"][:12] in version.description
    for key in (
        "scene_map50",
        "scene_recall_masked",
        "serving_float16_max_abs_diff",
        "detector_ultralight_recall_masked",
        "detector_ultralight_640x480_recall_masked",
        "detector_blazeface_recall_masked",
        "detector_centerface_recall_masked",
    ):
        assert key in evaluate.data.metrics, key


def test_the_report_carries_trained_on_a_tested_on_b_for_every_set_at_hand(study):
    """evaluate.external: the test split first, then each set that is there; the
    missing one is named in the report, not scored."""
    import pandas as pd

    table = pd.read_csv(study / "reports" / "tables" / "generalisation.csv")
    assert list(zip(table["tested_on"], table["view"])) == [
        ("its test split", "crops"),
        ("scenes", "crops"),
        ("scenes", "scenes"),
    ]
    metrics = read_metrics(study / "reports" / "metrics.json")
    assert table["f1_macro"][0] == pytest.approx(metrics["test_f1_macro"])
    assert 0 <= table["map50"][2] <= 1 and table["faces"][1] > 0
    report = (study / "reports" / "notebooks" / "03_evaluate.ipynb").read_text()
    assert "no/such/set: not here; skipped" in report and "Trained on one set, tested on each" in report


def test_the_server_lets_in_only_the_team_and_only_the_writer_moves_the_champion(study, tracking):
    """Basic auth on every API: no credentials or a wrong password get 401; the
    study's writer, who registered the model, may move `champion`; a reader may read it, not move it."""
    with pytest.raises(requests.exceptions.SSLError):  # HTTPS with a certificate no system trusts
        requests.get(f"{tracking}/health", timeout=10)
    post = functools.partial(requests.post, verify=SERVER["cert"], timeout=30)
    search = f"{tracking}/api/2.0/mlflow/experiments/search"
    assert post(search, json={"max_results": 1}).status_code == 401
    assert post(search, json={"max_results": 1}, auth=("team-reader", "wrong-password")).status_code == 401
    assert post(search, json={"max_results": 1}, auth=USERS["reader"]).status_code == 200
    version = _client(tracking).get_model_version_by_alias("maskdet", "champion").version
    alias = {"name": "maskdet", "alias": "champion", "version": version}
    moved = post(f"{tracking}/api/2.0/mlflow/registered-models/alias", json=alias, auth=USERS["reader"], timeout=30)
    assert moved.status_code == 403, moved.text
    moved = post(f"{tracking}/api/2.0/mlflow/registered-models/alias", json=alias, auth=USERS["writer"], timeout=30)
    assert moved.status_code == 200, moved.text
    artifact = requests.get(f"{tracking}/api/2.0/mlflow-artifacts/artifacts", verify=SERVER["cert"], timeout=30)
    assert artifact.status_code == 401  # the proxied artifacts too


def test_postgres_wants_a_password_and_the_mlflow_role_is_no_superuser(study, tracking, tmp_path):
    """psql as anyone without the password is refused (scram-sha-256 everywhere);
    with it, the role owns its database and is not a superuser."""
    import psycopg

    from maskdet.scale.tracking_server import USER

    secrets = SERVER["folder"] / "secrets"
    port = (secrets / "pgpass").read_text().split(":")[1]
    assert all(f.stat().st_mode & 0o077 == 0 for f in secrets.iterdir()), "secrets readable by others"
    psql = shutil.which("psql") or "psql"
    # another OS user's view: no pgpass, no PGPASSWORD, nothing to answer the password prompt
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    refused = subprocess.run(
        [psql, "-w", f"host=127.0.0.1 port={port} user={USER} dbname=mlflow", "-c", "select 1"],
        env=clean, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0 and "password" in refused.stderr, refused.stderr
    for user in ("postgres", "nobody"):
        other = subprocess.run(
            [psql, "-w", f"host=127.0.0.1 port={port} user={user} dbname=postgres", "-c", "select 1"],
            env=clean, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert other.returncode != 0, other.stdout
    password = (secrets / "mlflow-db.password").read_text().strip()
    with psycopg.connect(f"host=127.0.0.1 port={port} user={USER} dbname=mlflow", password=password) as db:
        superuser, create_role, create_db = db.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert (superuser, create_role, create_db) == (False, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("COPY (SELECT 1) TO PROGRAM 'id'")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as a team would bring its own."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    keyfile.chmod(0o600)
    return certfile, keyfile


def test_with_no_password_given_the_admins_is_generated_and_kept_private(tmp_path, monkeypatch):
    """No --admin-password-file and no MLFLOW_AUTH_ADMIN_PASSWORD: a password is
    generated into the folder's secrets (0600), the same at the next start; never a default."""
    from maskdet.scale.tracking_server import ADMIN_PASSWORD_ENV, admin_password

    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    password, source = admin_password(tmp_path)
    generated = tmp_path / "secrets" / "mlflow-admin.password"
    assert source == str(generated) and generated.stat().st_mode & 0o077 == 0 and len(password) >= 24
    assert admin_password(tmp_path) == (password, source) and admin_password(tmp_path / "other")[0] != password
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "short")
    with pytest.raises(InputError, match="at least 12"):
        admin_password(tmp_path)


def test_the_own_data_benchmark_reports_what_the_pipeline_wrote(study, tmp_path):
    """`make bench-own-data` reads a finished study's reports; the docs'
    paragraph is written from what it read (here the default data's study)."""
    import csv

    from benchmarks.own_data import headroom, save_split, summarise
    from maskdet.data.split_file import read_split_file

    got = summarise(study)
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert got["scene"] == metrics["scene"] and got["test"]["f1_macro"] == metrics["test"]["f1_macro"]
    with open(study / "data" / "processed" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for split, counts in got["data"]["counts"].items():  # the set's own crops, per split and class
        assert sum(counts.values()) == sum(r["split"] == split for r in rows)
    save_split(study, tmp_path / "held.csv")  # --save-split: a split file a later run takes
    by_face, _ = read_split_file(tmp_path / "held.csv")
    assert by_face == {r["source"]: r["split"] for r in rows} and len(by_face) == len(rows)
    run_info = {"photos": 3, "note": "photos", "repro_minutes": 2.5, "commit": "abc1234", "cpu": "a CPU", "cores": 2}
    paragraph = docs_tool().own_data_block({**got, **run_info, "date": "2026-01-01"})
    assert f"**mAP@0.5 {metrics['scene']['map50']:.3f}**" in paragraph
    assert f"macro-F1 {metrics['test']['f1_macro']:.3f}" in paragraph and "2.5 min against 30 (met)" in paragraph
    assert "Trained" not in paragraph  # one seed: no spread to state
    assert "Where that mAP@0.5 is lost" not in paragraph  # not measured: not stated
    # where the mAP is lost, as `maskdet evaluate` on the test photos says it
    lost = headroom(study, tmp_path)
    assert lost["as_answered"] == pytest.approx(metrics["scene"]["map50"], abs=1e-6)
    assert lost["ceiling"] >= max(lost["no_false_faces"], lost["classes_right"]) and lost["ceiling"] <= 1
    paragraph = docs_tool().own_data_block({**got, **run_info, "date": "2026-01-01", "headroom": lost})
    assert f"{lost['classes_right']:.3f} with every found face given it" in paragraph
    # the evaluation stage keeps the same answers and headroom in its own tables and metrics
    import pandas as pd

    staged = pd.read_csv(study / "reports" / "tables" / "scene_headroom.csv")
    assert dict(zip(staged["case"], staged["map50"])) == pytest.approx(lost, nan_ok=True)
    assert metrics["scene"]["headroom_ceiling_map50"] == pytest.approx(lost["ceiling"], abs=1e-6)
    kept = pd.read_csv(study / "reports" / "tables" / "scene_predictions.csv")
    cli = pd.read_csv(tmp_path / "headroom" / "scene_predictions.csv")
    assert kept[["scene", "x1", "y1", "x2", "y2", "shown"]].equals(cli[["scene", "x1", "y1", "x2", "y2", "shown"]])
    assert (~kept["shown"]).any() and (kept.loc[~kept["shown"], "score"] < 0.3).all()  # candidates under 0.3
    # the cross-validated benchmark: one fold's answers pooled alone are that fold's own evaluation
    from benchmarks.own_data_folds import pooled_figures
    from maskdet.study.scenes import read_scenes

    scenes = read_scenes(study / "data" / "processed" / "scenes")
    answers = pd.read_csv(tmp_path / "headroom" / "scene_predictions.csv")
    crops = pd.read_csv(study / "reports" / "tables" / "test_predictions.csv")
    pooled = pooled_figures(scenes, answers, crops)
    for key in ("map50", *(f"ap50_{label}" for label in LABELS), "recall", "precision"):
        expected = metrics["scene"][key]  # a class the test photos lack has no AP: null in the JSON
        assert pooled["scene"][key] == pytest.approx(
            math.nan if expected is None else expected, abs=1e-6, nan_ok=True
        ), key
    assert pooled["scene"]["faces"] == metrics["scene"]["faces"] and pooled["headroom"] == pytest.approx(lost)
    assert pooled["test"]["f1_macro"] == pytest.approx(metrics["test"]["f1_macro"], abs=1e-6)
    assert pooled["test"]["n"] == metrics["test"]["n"]
    # a fold kept whole, its model scored again with a setting of prediction (benchmarks/rescore_folds.py)
    from benchmarks.own_data_folds import keep_fold
    from benchmarks.rescore_folds import main as rescore_main

    keep_fold(study, tmp_path / "run" / "fold-1")
    (tmp_path / "run" / "project").mkdir()
    shutil.copyfile(study / "params.yaml", tmp_path / "run" / "project" / "params.yaml")
    with pytest.raises(SystemExit):  # a training setting needs a new run
        rescore_main([str(tmp_path / "run"), str(tmp_path / "again"), "--set", "train.seed=43"])
    rescore_main([str(tmp_path / "run"), str(tmp_path / "again"), "--set", "predict.incorrect_share=null"])
    again = pd.read_csv(tmp_path / "again" / "fold-1" / "scene_predictions.csv")
    assert again[["scene", "x1", "y1", "x2", "y2"]].equals(answers[["scene", "x1", "y1", "x2", "y2"]])  # same faces
    # without the prior of 3 %, the classifier's own share (a third) is answered for: the class gains everywhere
    assert (again["p_mask_weared_incorrect"] >= answers["p_mask_weared_incorrect"] - 1e-9).all()
    assert (again["p_mask_weared_incorrect"] > answers["p_mask_weared_incorrect"] + 1e-6).any()
    folds = [{"fold": 1, "map50": 0.7}, {"fold": 2, "map50": 0.8}]
    paragraph = docs_tool().own_data_folds_block(
        {**pooled, **run_info, "date": "2026-01-01", "folds": 2, "per_fold": folds, "minutes": 31}
    )
    assert f"**mAP@0.5 {pooled['scene']['map50']:.3f}**" in paragraph and "own mAP@0.5 0.700 / 0.800" in paragraph
    assert f"{pooled['headroom']['ceiling']:.3f} with both" in paragraph and "31 min" in paragraph
    seeds = [{"seed": 42, "map50": 0.7, "ap50_mask_weared_incorrect": 0.4, "f1_macro": 0.8}]
    seeds.append({"seed": 43, "map50": 0.8, "ap50_mask_weared_incorrect": 0.5, "f1_macro": 0.9})
    paragraph = docs_tool().own_data_block({**got, **run_info, "date": "2026-01-01", "seeds": seeds})
    assert "Trained 2 times on the same photos (`--seeds 2`, `train.seed` 42, 43" in paragraph
    assert "mAP@0.5 0.700 / 0.800 (mean 0.750)" in paragraph and "macro-F1 0.800 / 0.900 (mean 0.850)" in paragraph


def test_scene_evaluation_and_serving_parity_reach_the_metrics(study):
    metrics = read_metrics(study / "reports" / "metrics.json")
    assert metrics["scene_faces"] >= 3 and 0 <= metrics["scene_map50"] <= 1
    # The built-in set's test scenes are renders of one group photo: one photo group gives no
    # interval (several do: tests/test_scenes.py), and the paper's table says none.
    assert "scene_map50_ci95_low" not in metrics
    assert "over whole photo groups" not in (study / "reports" / "tables" / "results.md").read_text()
    assert 0 <= metrics["scene_precision"] <= 1 and 0 <= metrics["scene_recall_masked"] <= 1
    meta = json.loads((study / "models" / "metadata.json").read_text())
    serving = meta["serving"]
    assert serving["runtime"] in ("keras", "float32", "float16", "int8")
    for kind in ("float32", "float16", "int8"):
        assert (study / "models" / f"model_{kind}.tflite").is_file()
        check = serving["runtimes"][kind]
        assert check["passed"] == (check["max_abs_diff"] <= 0.02 and check["label_agreement"] >= 0.99)
        assert metrics[f"serving_{kind}_passed"] in (0, 1)


@contextlib.contextmanager
def _serving(command, cwd, env, log_path, port):
    """`maskdet serve` started as a user would: its base URL once /ping answers, and
    its process; stopped with the workers it started (if it has not stopped already).
    Its log is shown if it never gets ready."""
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(base, server, 180)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{log_path.read_text()[-3000:]}")
        yield base, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
            server.wait(timeout=30)


def test_served_model_answers_real_requests(study, tracking, tmp_path):
    """`maskdet serve` (MLflow's scoring server for models:/maskdet@champion, with
    limits), as `make serve` runs it, on a loopback port."""
    from maskdet import LABELS
    from maskdet.io import assets

    port = free_port()
    server_tmp = tmp_path / "server-tmp"  # where MLflow alone would leave a copy of the model
    server_tmp.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "TMPDIR": str(server_tmp)}
    command = [str(BIN / "maskdet"), "serve", "--port", str(port), "--max-request-mb", "2", "--max-in-flight", "8",
               "--max-images", "12", "--max-megapixels", "12", "--body-timeout-s", "3"]  # fmt: skip
    with _serving(command, study, env, tmp_path / "server.log", port) as (base, server):
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        group = assets.extract(assets.FACE_API_PHOTOS[0]).read_bytes()
        records = [
            {"image": base64.b64encode(group).decode(), "name": "group.jpg"},
            {"image": base64.b64encode(group[:4000]).decode(), "name": "truncated.jpg"},
            {"image": "this is not base64!", "name": "junk"},
        ]
        before = _counters(base)
        answer = requests.post(f"{base}/invocations", json={"dataframe_records": records}, timeout=120)
        assert answer.status_code == 200, answer.text[:2000]
        first, truncated, junk = answer.json()["predictions"]
        _counters_moved_by(before, _counters(base), posted=1, images=3, answers=[first, truncated, junk])
        _model_info_names_the_champion(base, tracking)
        said = subprocess.run([str(BIN / "maskdet"), "monitor", base], capture_output=True, text=True, timeout=60)
        assert said.returncode == 0 and said.stdout.startswith("3 faces in the window"), said.stdout + said.stderr
        assert first["image"] == "group.jpg" and first["error"] is None
        assert (first["width"], first["height"]) == (1920, 1280) and len(first["faces"]) == 3
        for face in first["faces"]:
            assert face["label"] in LABELS and set(face["probs"]) == set(LABELS) and len(face["box"]) == 4
        assert truncated["error"].startswith("truncated") and truncated["faces"] == []
        assert "truncated.jpg" in truncated["error"] and "<bytes>" not in truncated["error"]  # named as sent
        assert junk["error"].startswith("not_base64")
        _concurrent_clients_get_the_answers_of_one_client(base, group)
        _cli_served_model_and_evaluation_agree_on_each_crop(base, study, env)
        _a_frame_request_is_searched_as_the_webcam_searches(base, study, group)
        _limits_answer_413_and_503_and_the_server_goes_on(base, port, group)
        _slow_clients_hold_no_slot(base, port, group)
        _sigterm_during_work_answers_the_request_then_exits(base, server, group)
    assert list(server_tmp.rglob("MLmodel")) == []  # the server loaded its kept copy (model_cache)


def _sigterm_during_work_answers_the_request_then_exits(base, server, group):
    """One SIGTERM (a service manager stopping the server) while a request is being
    worked on: that request still gets its answer, and the server exits on its own."""
    from concurrent.futures import ThreadPoolExecutor

    record = {"image": base64.b64encode(group).decode()}  # no name: answered as "image N"; 10 MP of 12
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            requests.post, f"{base}/invocations", json={"dataframe_records": [record] * 4}, timeout=120
        )
        time.sleep(1.0)  # the request is in the model by now
        server.send_signal(signal.SIGTERM)
        answer = pending.result()
    assert answer.status_code == 200, answer.text[:500]
    assert [p["image"] for p in answer.json()["predictions"]] == [f"image {i}" for i in range(4)]
    assert server.wait(timeout=60) is not None


def _a_frame_request_is_searched_as_the_webcam_searches(base, study, group):
    """`"params": {"frame": true}`: the fast frame setting of the webcam and video
    (320x240, faces of 20 px and up), the same answer as the Predictor's own with
    photo=False; without it, the still-photo setting."""
    from maskdet.io.images import encode_jpeg, letterbox, load_rgb
    from maskdet.params import load_params
    from maskdet.predict.predictor import Predictor

    frame = encode_jpeg(letterbox(load_rgb(group), 640, 480)[0])
    record = {"image": base64.b64encode(frame).decode(), "name": "frame.jpg"}
    local = Predictor(study / "models", load_params(study / "params.yaml").predict)
    for params, photo in (({"frame": True}, False), ({}, True)):
        said = requests.post(f"{base}/invocations", json={"dataframe_records": [record], "params": params}, timeout=120)
        assert said.status_code == 200, said.text[:500]
        served = said.json()["predictions"][0]["faces"]
        expected = local.predict(frame, name="frame.jpg", photo=photo).to_dict()["faces"]
        assert [f["box"] for f in served] == [f["box"] for f in expected] and len(served) == 3, (params, served)


def _cli_served_model_and_evaluation_agree_on_each_crop(base, study, env):
    """One preprocessing path (#15): the same test crops through `maskdet predict
    --crops`, the served champion (`"params": {"crops": true}`) and the
    evaluation (reports/tables/test_predictions.csv, whose numbers every test
    figure comes from) give the same probabilities within 1e-4 (the CLI and the
    server round to 4 decimals)."""
    import numpy as np
    import pandas as pd

    from maskdet import LABELS

    table = pd.read_csv(study / "reports" / "tables" / "test_predictions.csv")
    assert len(table) == read_metrics(study / "reports" / "metrics.json")["test_n"]
    sample = table.groupby("label").head(4).reset_index(drop=True)
    files = [study / "data" / "processed" / p for p in sample["path"]]
    evaluation = sample[[f"p_{k}" for k in LABELS]].to_numpy()
    answers = _maskdet_predict(study, env, "--crops", "--model", "models", "--format", "jsonl", *map(str, files))
    cli = np.array([[json.loads(line)["faces"][0]["probs"][k] for k in LABELS] for line in answers.splitlines()])
    records = [{"image": base64.b64encode(f.read_bytes()).decode(), "name": f.name} for f in files]
    answer = requests.post(
        f"{base}/invocations", json={"dataframe_records": records, "params": {"crops": True}}, timeout=120
    )
    assert answer.status_code == 200, answer.text[:2000]
    served = np.array([[a["faces"][0]["probs"][k] for k in LABELS] for a in answer.json()["predictions"]])
    np.testing.assert_allclose(cli, evaluation, atol=1e-4)
    np.testing.assert_allclose(served, evaluation, atol=1e-4)
    assert list(sample["predicted"]) == [LABELS[i] for i in served.argmax(axis=1)]


def _limits_answer_413_and_503_and_the_server_goes_on(base, port, group):
    """Past --max-request-mb (2 here) a request is refused with 413, by its
    Content-Length or as it streams in; past --max-images (12) or --max-megapixels
    (12: five 2.5-MP photos) with 413 before any decoding; past --max-in-flight (8)
    requests at once, with 503. Then the server still answers."""
    from concurrent.futures import ThreadPoolExecutor

    big = {"dataframe_records": [{"image": "A" * (3 * 2**20), "name": "big"}]}
    said = requests.post(f"{base}/invocations", json=big, timeout=60)
    assert said.status_code == 413 and "larger than 2 MB" in said.json()["message"]
    chunks = (b"x" * 2**18 for _ in range(12))  # no Content-Length: counted as it arrives
    said = requests.post(f"{base}/invocations", data=chunks, headers={"content-type": "application/json"}, timeout=60)
    assert said.status_code == 413
    tiny = base64.b64encode(_png(8, 8)).decode()
    many = {"inputs": {"image": [tiny] * 13}}
    said = requests.post(f"{base}/invocations", json=many, timeout=60)
    assert said.status_code == 413 and "13 images in one request" in said.json()["message"]
    record = {"image": base64.b64encode(group).decode(), "name": "group.jpg"}
    said = requests.post(f"{base}/invocations", json={"dataframe_records": [record] * 5}, timeout=60)
    assert said.status_code == 413 and "megapixels" in said.json()["message"]
    refused = _counters(base)
    assert {k[1]: v for k, v in refused.items() if k[0] == "maskdet_requests_refused_total"} == {
        (("reason", "too_large"),): 2,
        (("reason", "too_many_images"),): 1,
        (("reason", "too_many_pixels"),): 1,
    }
    # Twelve clients at once, each with four photos: eight are answered, the others told to come back;
    # /metrics answers all the while.
    with ThreadPoolExecutor(13) as pool:
        pending = [
            pool.submit(requests.post, f"{base}/invocations", json={"dataframe_records": [record] * 4}, timeout=120)
            for _ in range(12)
        ]
        time.sleep(1.0)
        scraped = requests.get(f"{base}/metrics", timeout=10)
        statuses = [p.result() for p in pending]
    assert scraped.status_code == 200 and "maskdet_requests_in_flight" in scraped.text
    assert {s.status_code for s in statuses} == {200, 503}, [s.text[:200] for s in statuses]
    busy_count = sum(s.status_code == 503 for s in statuses)
    assert _counters(base)[("maskdet_requests_refused_total", (("reason", "busy"),))] == busy_count
    busy = next(s for s in statuses if s.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["message"]
    said = requests.post(f"{base}/invocations", json={"dataframe_records": [record]}, timeout=60)
    assert said.status_code == 200 and len(said.json()["predictions"][0]["faces"]) == 3


def _counters(base: str) -> dict:
    """The server's /metrics as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    said = requests.get(f"{base}/metrics", timeout=30)
    assert said.status_code == 200 and said.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(said.text)
        for sample in family.samples
    }


def _counters_moved_by(before: dict, after: dict, posted: int, images: int, answers: list) -> None:
    """/metrics after some requests: each counter moved by exactly what they asked and got."""
    from collections import Counter

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("maskdet_requests_total", route="/invocations", status="200") == posted
    assert moved("maskdet_request_duration_seconds_count", route="/invocations") == posted
    assert moved("maskdet_images_total") == images
    faces = Counter(face["label"] for answer in answers for face in answer["faces"])
    for label in LABELS:
        assert moved("maskdet_faces_total", label=label) == faces[label], label
    errors = Counter(answer["error"].split(":")[0] for answer in answers if answer["error"])
    for reason, count in errors.items():
        assert moved("maskdet_image_errors_total", reason=reason) == count, reason
    assert after[("maskdet_model_load_seconds", ())] > 0


def _model_info_names_the_champion(base: str, tracking: str) -> None:
    """/model-info names the registry version that models:/maskdet@champion resolved to."""
    import mlflow

    champion = mlflow.MlflowClient(tracking_uri=tracking).get_model_version_by_alias("maskdet", "champion")
    info = requests.get(f"{base}/model-info", timeout=10).json()
    assert info["registry"]["name"] == "maskdet" and info["registry"]["version"] == champion.version
    assert "champion" in info["registry"]["aliases"] and info["model"] == "models:/maskdet@champion"
    assert info["served_run_id"] == champion.run_id
    assert info["training"]["mlflow_run_id"] == champion.tags["train_run_id"]
    assert len(info["training"]["params_sha256"]) == 64 and info["detector"]["name"] == "centerface"
    assert info["incorrect_share"] == 0.03 and set(info["class_prior"]) == set(LABELS)


def _png(width: int, height: int) -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))[1].tobytes()


def _read_answer(conn) -> str:
    """An HTTP answer read off a raw socket: the head, then its Content-Length of body."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next((h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0))
    while len(body) < length and (chunk := conn.recv(4096)):
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def _slow_clients_hold_no_slot(base, port, group):
    """Eight clients that send their headers and then a byte now and then (slowloris)
    take no slot: a normal request is answered at once, and each slow one gets 408
    when --body-timeout-s (3 here) runs out."""
    import socket

    held = []
    for _ in range(8):
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        conn.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        held.append(conn)
    try:
        record = {"image": base64.b64encode(group).decode(), "name": "group.jpg"}
        said = requests.post(f"{base}/invocations", json={"dataframe_records": [record]}, timeout=60)
        assert said.status_code == 200 and len(said.json()["predictions"][0]["faces"]) == 3
        for conn in held:
            conn.sendall(b" ")  # one more byte: still far from the 100 it promised
        answers = [_read_answer(conn) for conn in held]
        assert all(a.startswith("HTTP/1.1 408") and "MASKDET_BODY_TIMEOUT_S" in a for a in answers), answers[0][:300]
        assert _counters(base)[("maskdet_requests_refused_total", (("reason", "body_timeout"),))] == 8
    finally:
        for conn in held:
            conn.close()
    assert requests.get(f"{base}/ping", timeout=5).status_code == 200  # health checks are never refused


def _concurrent_clients_get_the_answers_of_one_client(base, group):
    """The scoring server calls the model from several threads; the interpreters
    must not mix two requests (answers with another image's faces, or errors)."""
    from concurrent.futures import ThreadPoolExecutor

    from maskdet.io import assets

    images = {"group.jpg": group, "portrait.jpg": assets.extract(assets.PORTRAIT_PHOTOS[0]).read_bytes()}

    def ask(name):
        record = {"image": base64.b64encode(images[name]).decode(), "name": name}
        answer = requests.post(f"{base}/invocations", json={"dataframe_records": [record]}, timeout=120)
        return answer.status_code, answer.json()["predictions"][0] if answer.status_code == 200 else answer.text

    alone = {name: ask(name)[1] for name in images}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, list(images) * 8))
    for status, answer in answers:
        assert status == 200, answer[:500]
        expected = alone[answer["image"]]
        assert [f["box"] for f in answer["faces"]] == [f["box"] for f in expected["faces"]]
        assert [f["label"] for f in answer["faces"]] == [f["label"] for f in expected["faces"]]


def _maskdet_predict(study, env, *args) -> str:
    """`maskdet predict ARGS -q` in the study as a user runs it; its standard output."""
    done = subprocess.run(
        [str(BIN / "maskdet"), "predict", *args, "-q"], cwd=study, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_cli_takes_the_registered_model_uri(study, tracking):
    from maskdet.io import assets

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MASKDET_ROOT": str(study)}
    photo = str(assets.extract(assets.FACE_API_PHOTOS[0]))
    answer = _maskdet_predict(study, env, photo, "--model", "models:/maskdet@champion", "--format", "jsonl")
    assert len(json.loads(answer)["faces"]) == 3


def test_the_serving_image_packages_serve_the_champion_without_tensorflow(study, tracking, tmp_path):
    """The Dockerfile's slim `serve` target installs requirements-serve.lock
    alone. The same packages in a venv of their own: no TensorFlow, Keras, DVC
    or JupyterLab to import, the dashboard module imports, and `python -m
    maskdet serve` answers models:/maskdet@champion as the full environment's
    CLI does."""
    from maskdet.io import assets

    venv = tmp_path / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(BIN / "uv"), "pip", "install", "--python", str(python), "--require-hashes", "-q", "-r",
         str(ROOT / "requirements-serve.lock")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {
        **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        "PYTHONPATH": str(ROOT),
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "MLFLOW_TRACKING_URI": tracking,
    }
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u, maskdet.app.dashboard; "
         "print([m for m in ('tensorflow', 'keras', 'dvc', 'jupyterlab', 'pytest') if u.find_spec(m)])"],
        cwd=study, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr[-3000:]

    photo = assets.extract(assets.FACE_API_PHOTOS[0])
    full = subprocess.run(
        [str(BIN / "maskdet"), "predict", str(photo), "--model", "models:/maskdet@champion", "--format", "jsonl", "-q"],
        cwd=study, env={**os.environ, "MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"]},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert full.returncode == 0, full.stderr[-2000:]
    port = free_port()
    command = [str(python), "-m", "maskdet", "serve", "--port", str(port), "--workers", "2"]
    with _serving(command, study, env, tmp_path / "s.log", port) as (base, _):
        record = {"image": base64.b64encode(photo.read_bytes()).decode(), "name": photo.name}
        before = _counters(base)
        answers = [
            requests.post(f"{base}/invocations", json={"dataframe_records": [record]}, timeout=120) for _ in range(4)
        ]
        assert all(a.status_code == 200 for a in answers), answers[0].text[:2000]
        served = answers[0].json()["predictions"][0]["faces"]
        expected = json.loads(full.stdout)["faces"]
        assert len(served) == 3
        assert [(f["label"], f["box"]) for f in served] == [(f["label"], f["box"]) for f in expected]
        # two workers, one count: prometheus-client's multi-process mode adds up both workers' files
        predictions = [a.json()["predictions"][0] for a in answers]
        _counters_moved_by(before, _counters(base), posted=4, images=4, answers=predictions)


def test_a_tie_moves_the_champion_to_the_newer_model_and_a_worse_one_does_not(study, tracking):
    import mlflow

    from maskdet.study.registry import move_champion

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking)
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("maskdet", "champion")
    same_model = f"models:/maskdet/{champion.version}"  # a new version of the champion's model
    made = []
    try:
        f1 = float(champion.tags["test_f1_macro"])
        made.append(newer := client.create_model_version("maskdet", same_model, champion.run_id).version)
        assert move_champion(newer, f1)
        assert client.get_model_version_by_alias("maskdet", "champion").version == newer
        made.append(worse := client.create_model_version("maskdet", same_model, champion.run_id).version)
        assert not move_champion(worse, f1 - 0.01)
        assert client.get_model_version_by_alias("maskdet", "champion").version == newer
    finally:  # the study's registry as it was, for the tests after this one
        client.set_registered_model_alias("maskdet", "champion", champion.version)
        for version in made:
            client.delete_model_version("maskdet", version)
        mlflow.set_tracking_uri(previous)


def test_the_dashboard_model_card_names_the_champion(study, tracking, monkeypatch):
    """The card's registry line shows the alias (MLflow's search leaves aliases
    out), and its metrics are those its own evaluation logged."""
    from maskdet.app.logic import evaluation_figure, model_record

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    train_run = json.loads((study / "models" / "metadata.json").read_text())["mlflow_run_id"]
    assert "alias champion" in model_record(train_run).line
    record = model_record(train_run)
    written = read_metrics(study / "reports" / "metrics.json")
    assert round(record.metrics["test_f1_macro"], 6) == written["test_f1_macro"]
    assert "test_roc_auc_ovr_macro" in record.metrics
    assert evaluation_figure(record)[:4] == b"\x89PNG"


def test_a_params_typo_stops_the_pipeline_in_one_line_and_costs_no_output(study, tracking):
    """check_params runs first whenever params.yaml changes: a misspelled key,
    an unknown section or a missing data folder stop `dvc repro` with one line
    naming it, before any stage removes its outputs; fixed, nothing re-runs."""
    params = study / "params.yaml"
    good = params.read_text()
    kept = {
        p: p.read_bytes() for p in (study / "models" / "metadata.json", study / "data" / "processed" / "manifest.csv")
    }

    def edited(change):
        raw = yaml.safe_load(good)
        change(raw)
        return yaml.safe_dump(raw, sort_keys=False)

    typos = {
        "unknown key 'train.epoch'": lambda raw: raw["train"].update(epoch=5),
        "unknown key 'trian'": lambda raw: raw.update(trian={"epochs": 1}),
        "data.path = 'data/raw/nowhere' is not allowed": lambda raw: raw["data"].update(
            source="folders", path="data/raw/nowhere"
        ),
    }
    try:
        for message, change in typos.items():
            params.write_text(edited(change))
            done = run(["dvc", "repro"], study, tracking_uri=tracking, timeout=300)
            said = done.stdout + done.stderr
            assert done.returncode != 0 and message in said, said[-2000:]
            assert "Running stage 'check_params'" in said and "Running stage 'sample'" not in said
            assert all(path.read_bytes() == data for path, data in kept.items()), message
    finally:
        params.write_text(good)
    again = run(["dvc", "repro"], study, tracking_uri=tracking, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    ran = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'check_params':"], again.stdout


@pytest.mark.scale
def test_two_queued_experiments_run_at_once_and_each_lands_in_mlflow_under_its_name(study, tracking):
    """A parallel sweep as DVC runs it: `dvc exp run --queue -S ...` twice, then
    `dvc queue start -j 2`. Both write to the tracking server at once; each
    pipeline run carries its own DVC name and its own parameters (no lost or
    crossed runs)."""
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"]):
        assert run(cmd, study).returncode == 0
    # Evaluation parameters only, and the pipeline up to the evaluate stage: each
    # experiment re-runs evaluate and takes the trained model from the cache
    # (training again, or the report, proves nothing more about runs at once).
    sweep = {"sweep-a": 4, "sweep-b": 6}
    for name, worst in sweep.items():
        settings = ["-S", "evaluate.leave_one_style_out=false", "-S", f"evaluate.worst_mistakes={worst}"]
        queued = run(["dvc", "exp", "run", "--queue", "-n", name, *settings, "evaluate"], study, tracking_uri=tracking)
        assert queued.returncode == 0, queued.stderr[-2000:]
    # The queue's workers outlive this command: in a session of their own, so that
    # nothing they signal when they stop reaches pytest's process group.
    # Its output goes to a file: an idle worker that stays up would hold a captured pipe open.
    log = study.parent / "queue-start.log"
    with log.open("w") as output:
        started = run(
            ["dvc", "queue", "start", "-j", "2"], study, tracking_uri=tracking, start_new_session=True, output=output
        )
    assert started.returncode == 0, log.read_text()[-2000:]
    deadline = time.time() + 900
    while True:  # the workers run in the background and stop when the queue is empty
        status = run(["dvc", "queue", "status"], study).stdout
        if not any(state in status for state in ("Queued", "Running")):
            break
        assert time.time() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2, status + run(["dvc", "queue", "logs", "sweep-a"], study).stdout[-3000:]
    run(["dvc", "queue", "stop"], study)  # an idle worker would outlive the tests
    client = _client(tracking)
    experiment = client.get_experiment_by_name("maskdet").experiment_id
    for name, worst in sweep.items():
        (parent,) = client.search_runs([experiment], filter_string=f"attributes.run_name = '{name}'")
        stages = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert {r.data.tags["maskdet.stage"] for r in stages} == {"evaluate"}, name
        (evaluate,) = [r for r in stages if r.data.tags["maskdet.stage"] == "evaluate"]
        assert evaluate.data.params["evaluate.worst_mistakes"] == str(worst)
        assert "test_f1_macro" in evaluate.data.metrics and "test_f1_macro" in parent.data.metrics


@pytest.mark.scale
def test_data_and_model_push_to_a_webdav_remote_and_a_clone_pulls_them(study, tmp_path):
    """A second remote kind besides the local folder and Google Drive: WebDAV,
    served by a real server (rclone, from the system packages) with a user and
    password kept in .dvc/config.local, one transfer at a time. The study pushes
    data/processed and models/; a fresh clone pulls them back byte for byte."""
    require_system("rclone (a WebDAV server)", bool(shutil.which("rclone")), "`make system` installs it")
    port = free_port()
    (tmp_path / "store" / "maskdet").mkdir(parents=True)  # the remote's folder exists on the server
    server = subprocess.Popen(
        ["rclone", "serve", "webdav", str(tmp_path / "store"), "--addr", f"127.0.0.1:{port}",
         "--user", "team", "--pass", "s3cret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"webdav://127.0.0.1:{port}/maskdet"

    def dvc(cwd, *args):
        done = run(["dvc", *args], cwd, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    try:
        deadline = time.time() + 30
        while True:  # until rclone listens
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/", auth=("team", "s3cret"), timeout=2).ok:
                    break
            assert time.time() < deadline and server.poll() is None, "rclone serve webdav did not start"
            time.sleep(0.2)
        dvc(study, "remote", "add", "-f", "team", url)  # the URL in .dvc/config, committed
        # rclone answers two folder creations at the same moment with 423 Locked:
        # one transfer at a time, as docs/data.md says for this server.
        dvc(study, "remote", "modify", "team", "jobs", "1")
        dvc(study, "remote", "modify", "--local", "team", "user", "team")  # secrets in config.local only
        dvc(study, "remote", "modify", "--local", "team", "password", "s3cret")
        dvc(study, "push", "-r", "team", "data", "train")
        run(["git", "add", "-A"], study)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "remote"], study)
        clone = tmp_path / "clone"
        assert run(["git", "clone", "-q", str(study), str(clone)], tmp_path).returncode == 0
        assert not (clone / "models").exists() and "s3cret" not in (clone / ".dvc" / "config").read_text()
        dvc(clone, "remote", "modify", "--local", "team", "user", "team")
        dvc(clone, "remote", "modify", "--local", "team", "password", "s3cret")
        dvc(clone, "pull", "-r", "team", "data", "train")
    finally:
        server.terminate()
        server.wait(timeout=30)
    for folder in ("data/processed", "models"):
        files = {p.relative_to(study): p.read_bytes() for p in (study / folder).rglob("*") if p.is_file()}
        pulled = {p.relative_to(clone): p.read_bytes() for p in (clone / folder).rglob("*") if p.is_file()}
        assert files and pulled == files, folder


def test_bench_serve_measures_a_real_server_and_checks_every_answer(study, tracking, tmp_path):
    """`make bench-serve` end to end, small: it measures; it asserts nothing about speed."""
    out = tmp_path / "serve.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    args = ["--workers", "1", "--clients", "1,2", "--requests", "4", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    (config,) = results["configs"]
    assert [r["clients"] for r in config["rows"]] == [1, 2]
    assert all(r["correct"] == r["requests"] == 4 and r["statuses"] == [200] for r in config["rows"])
    assert config["peak_rss_mb"] and all(m > 50 for m in config["peak_rss_mb"])
    assert len(config["idle_rss_mb"]) == len(config["peak_rss_mb"])  # what each worker holds once idle
    cost = results["metrics_cost"]  # with and without /metrics, interleaved
    assert cost["requests"] == 4 and cost["p50_ms_with"] > 0 and cost["p50_ms_without"] > 0
    assert "cost" in done.stdout and "--no-metrics" in done.stdout
    assert "| 1 | 2 |" in done.stdout
