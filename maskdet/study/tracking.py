"""MLflow settings shared by notebooks, the CLI and tests: the experiment,
nested stage runs and provenance. Where the store lives: ``maskdet.paths``.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskdet.paths import artifact_location, project_root, tracking_uri

EXPERIMENT = "maskdet"
# Opens the experiment on its runs table (MLflow 3 shows GenAI traces first otherwise).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
STAGE_SOURCES = {
    "eda": "notebooks/01_eda.ipynb",
    "train": "notebooks/02_train.ipynb",
    "evaluate": "notebooks/03_evaluate.ipynb",
    "report": "maskdet report",
}


def configure(experiment: str = EXPERIMENT, root: Path | None = None) -> str:
    """Point MLflow at the project's store and make ``experiment`` the active one;
    returns the experiment id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    found = mlflow.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found is not None
        else mlflow.create_experiment(experiment, artifact_location=artifact_location(root))
    )
    if found is None or found.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        mlflow.MlflowClient().set_experiment_tag(experiment_id, *EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def run_name(default: str | None = None) -> str | None:
    """The run name: DVC's experiment name when DVC sets one."""
    return os.environ.get("DVC_EXP_NAME") or default


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """{'train': {'epochs': 3}} -> {'train.epochs': '3'}: MLflow params are flat strings."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


def git_commit(root: Path | None = None) -> str:
    """The commit of the working tree ("unknown" outside git or before the first commit)."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root or project_root(), capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip()


def dvc_written(root: Path | None = None) -> set[str]:
    """What DVC itself rewrites during a run: dvc.lock and every stage output."""
    import yaml

    dvc_yaml = (root or project_root()) / "dvc.yaml"
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}) if dvc_yaml.is_file() else {}
    written = {"dvc.lock"}
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            written |= {next(iter(o)) if isinstance(o, dict) else o for o in stage.get(key) or []}
    return written


def tree_state(root: Path | None = None) -> str:
    """ "clean", or "modified: " and the tracked files changed since the commit.
    What DVC writes during the run (dvc.lock, stage outputs) does not count: a
    clean `dvc repro` reads "clean" all the way through."""
    import subprocess

    root = root or project_root()
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    written = dvc_written(root)
    changed = sorted(
        path
        for line in status.stdout.splitlines()
        if (path := line[3:].split(" -> ")[-1].strip('"'))
        and not any(path == w or path.startswith(w.rstrip("/") + "/") for w in written)
    )
    return "clean" if not changed else "modified: " + ", ".join(changed)


def data_hash(root: Path | None = None) -> str:
    """sha256 of data/processed/manifest.csv, which lists the sha256 of every crop."""
    import hashlib

    manifest = (root or project_root()) / "data" / "processed" / "manifest.csv"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else "none"


def dvc_data_md5(root: Path | None = None) -> str:
    """DVC's hash of data/processed as dvc.lock records it ("none" before the first run)."""
    import yaml

    lock = (root or project_root()) / "dvc.lock"
    if not lock.is_file():
        return "none"
    stage = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get("data", {})
    return next((o.get("md5", "none") for o in stage.get("outs", []) if o.get("path") == "data/processed"), "none")


def hardware() -> str:
    """The machine in a few words, for the Methods paragraph: CPU model and cores
    (the project installs tensorflow-cpu, so training never uses a GPU)."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({os.cpu_count()} cores, CPU only)"


def provenance(params: dict, root: Path | None = None) -> dict[str, str]:
    """What produced a result: commit, params digest, data digests (manifest and dvc.lock)."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return {
        "git_commit": git_commit(root),
        "git_tree": tree_state(root),
        "params_sha256": digest,
        "data_sha256": data_hash(root),
        "dvc_data_md5": dvc_data_md5(root),
    }


def start_stage_run(stage: str, params: dict, root: Path | None = None, workspace=None):
    """Start the MLflow run of one pipeline stage, nested under the run of this
    pipeline execution (same commit, params and data, or same DVC experiment).

    EDA, training and evaluation of one execution are thus found together: one
    parent run, one child per stage. Returns the active child run; end it with
    ``mlflow.end_run()`` twice (child, then parent) or use ``stage_run``. An
    interactive run (a ``workspace`` outside the project root:
    maskdet.stages.workspace) has its own parent, named after its run folder.
    """
    import mlflow

    configure(root=root)
    prov = provenance(params, root)
    interactive = workspace is not None and workspace.interactive
    output = workspace.out.relative_to(workspace.root).as_posix() if interactive else "."
    # A name the runs table shows whole (about 15 characters): the commit and
    # "p" + the params digest; the full key is in the tags.
    short = (
        f"interactive-{workspace.out.name}" if interactive else f"{prov['git_commit'][:7]}-p{prov['params_sha256'][:4]}"
    )
    key = (
        os.environ.get("DVC_EXP_NAME")
        or (short if interactive else None)
        or f"{prov['git_commit'][:12]}-{prov['params_sha256'][:8]}-{prov['data_sha256'][:8]}"
    )
    found = mlflow.search_runs(filter_string=f"tags.`maskdet.pipeline` = '{key}'", max_results=1, output_format="list")
    if found:
        mlflow.start_run(run_id=found[0].info.run_id)
    else:
        tags = {"maskdet.pipeline": key, "mlflow.source.name": "notebooks" if interactive else "dvc repro", **prov}
        mlflow.start_run(run_name=run_name(short), tags=tags)
        mlflow.log_params(flatten(params))
    child = mlflow.start_run(
        run_name=stage,
        nested=True,
        tags={
            "maskdet.stage": stage,
            "maskdet.pipeline_key": key,
            "maskdet.output": output,
            # what ran, instead of "ipykernel_launcher.py"
            "mlflow.source.name": STAGE_SOURCES.get(stage, stage),
            **prov,
        },
    )
    mlflow.log_params(flatten(params))
    return child


class stage_run:
    """``with stage_run("train", params):`` runs the body inside the stage's nested MLflow run."""

    def __init__(self, stage: str, params: dict, root: Path | None = None, workspace=None):
        self.stage, self.params, self.root, self.workspace = stage, params, root, workspace

    def __enter__(self):
        return start_stage_run(self.stage, self.params, self.root, self.workspace)

    def __exit__(self, exc_type, *_):
        import mlflow

        status = "FAILED" if exc_type else "FINISHED"
        mlflow.end_run(status)  # the stage
        mlflow.end_run(status)  # the pipeline execution
        return False
