"""Local copies of MLflow models (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
``runs:/…``), one per registry version or run, kept in the user's cache.

MLflow downloads a model from a tracking server into a new temporary folder on
every load and leaves it there: 47 MB for each dashboard kernel, server start
or CLI run. A kept copy is instead reused until the alias moves to another
version; ``rm -r ~/.cache/maskdet/models`` frees them all."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def is_model_uri(model: str | os.PathLike) -> bool:
    return str(model).startswith(("models:/", "runs:/"))


def _pinned(uri: str) -> str:
    """``uri`` with an alias resolved to its version and run: the same text for
    the same model, another when the alias moves."""
    from maskdet.predict.model_info import resolve_registry

    name, _, version = uri.removeprefix("models:/").partition("/")
    if not uri.startswith("models:/") or not ("@" in name or version):
        return uri  # a run's model or a logged model's id (models:/m-…): one model for ever
    entry = resolve_registry(uri)
    return f"models:/{entry.name}/{entry.version} {entry.run_id}"


def local_model(uri: str) -> Path:
    """A folder holding the MLflow model at ``uri`` (its MLmodel at the top),
    downloaded once per version and tracking store. Raises MLflow's own error
    when there is no model there."""
    import mlflow

    from maskdet.paths import cache_dir, tracking_uri

    store = tracking_uri()
    mlflow.set_tracking_uri(store)
    key = hashlib.sha256(f"{store}\n{_pinned(uri)}".encode()).hexdigest()[:20]
    kept = cache_dir() / "models" / key
    if (kept / "MLmodel").is_file():
        return kept
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=kept.parent))
    try:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial)))
        if not (got / "MLmodel").is_file():
            raise FileNotFoundError(f"{uri}: no MLmodel in what MLflow downloaded")
        try:
            got.rename(kept)  # whole or not at all
        except OSError:
            if not (kept / "MLmodel").is_file():  # not another process that was first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return kept
