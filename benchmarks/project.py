"""A copy of the project to run the pipeline in, apart from the working tree:
the tests' smoke studies and the benchmarks that train (``benchmarks.own_data``)
start from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path) -> Path:
    """The tracked files of this checkout (with uncommitted edits) in a new git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def tree_commit() -> str:
    """The commit of this checkout, marked when the tree has edits not committed:
    what a benchmark's results say they were measured on."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return head.strip() + (" with changes not yet committed" if changed.strip() else "")


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user's command in a copy of the project runs in: this
    venv's tools first on PATH, and nothing that points back at this checkout
    (``MASKDET_ROOT``) or at another MLflow store (``MLFLOW_TRACKING_URI``)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MASKDET_ROOT", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return {**env, **extra}
