"""Where the project lives.

Everything resolves from the project root (the folder holding dvc.yaml), never
from the current directory: JupyterLab starts kernels in notebooks/, papermill
and DVC start in the root, and both must read and write the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskdet.errors import MissingFileError

ROOT_MARKER = "dvc.yaml"
SAMPLE_DATA = "data/raw/sample"  # where `maskdet sample` writes the built-in set, from the project root
# Split files (data.split_from) live here: the data stage depends on the folder (dvc.yaml),
# so a split file that changes re-runs the stage.
SPLITS_DIR = "data/splits"
# Under data/processed: the training photos of a VOC set, written by the data
# stage, read by training to fit the detector's box correction.
TRAIN_SCENES = "scenes_train"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """Return the nearest folder at or above ``start`` that holds dvc.yaml.

    ``MASKDET_ROOT`` wins when set. Without ``start`` the search begins at the
    current directory and then, as a fallback, at this package's own folder
    (an editable install inside the project).
    """
    env = os.environ.get("MASKDET_ROOT")
    if env:
        return Path(env).resolve()
    starts = [Path(start)] if start is not None else [Path.cwd(), Path(__file__).parent]
    for begin in starts:
        for folder in [begin.resolve(), *begin.resolve().parents]:
            if (folder / ROOT_MARKER).is_file():
                return folder
    raise MissingFileError(
        f"no {ROOT_MARKER} found at or above {starts[0]}: run from inside the maskdet "
        "project or set MASKDET_ROOT to its folder"
    )


def resolve(path: str | os.PathLike, root: Path | None = None) -> Path:
    """Resolve a path from params.yaml: relative paths are taken from the root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (root or project_root()) / p


def cache_dir() -> Path:
    """Where downloaded registry packages are kept (``MASKDET_CACHE`` overrides)."""
    env = os.environ.get("MASKDET_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskdet"
    base.mkdir(parents=True, exist_ok=True)
    return base


# The MLflow store lives at the project root: sqlite:///<root>/mlflow.db, artifacts in
# <root>/mlartifacts. The URI must be absolute: MLflow 3.7+ otherwise creates a new
# database in whatever folder a kernel starts in, and `dvc exp run --temp` runs in a
# copy of the project that would lose the run. MLFLOW_TRACKING_URI overrides.


def store_root(root: Path | None = None) -> Path:
    """The folder that holds the MLflow store: the project root, or, inside a
    ``dvc exp run --temp/--queue`` copy (``<project>/.dvc/tmp/exps/<tmp>/``),
    the real project around it, so that the run is not lost with the copy."""
    root = (root or project_root()).resolve()
    parts = root.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def tracking_uri(root: Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_root(root) / 'mlflow.db'}"


def artifact_location(root: Path | None = None) -> str | None:
    """Where a new experiment keeps its artifacts: <root>/mlartifacts for the
    project's own store; None (the server decides) for a tracking server, which
    stores them behind itself (``mlflow server --serve-artifacts``), so that no
    client writes to a folder of its own machine that the others cannot read."""
    if tracking_uri(root).startswith(("http://", "https://")):
        return None
    return (store_root(root) / "mlartifacts").as_uri()
