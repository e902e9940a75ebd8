"""MLflow settings shared by notebooks, the CLI and tests.

The store lives at the project root: ``sqlite:///<root>/mlflow.db`` with
artifacts in ``<root>/mlartifacts``. The URI must be absolute: MLflow 3.7+
otherwise creates a new database in whatever folder a kernel starts in, and
``dvc exp run --temp`` runs in a copy of the project that would lose the run.
``MLFLOW_TRACKING_URI`` overrides.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskdet.paths import project_root

EXPERIMENT = "maskdet"


def tracking_uri(root: Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or project_root()).resolve() / 'mlflow.db'}"


def artifact_location(root: Path | None = None) -> str:
    return ((root or project_root()).resolve() / "mlartifacts").as_uri()


def configure(experiment: str = EXPERIMENT, root: Path | None = None) -> str:
    """Point MLflow at the project's store and make ``experiment`` the active one;
    returns the experiment id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    found = mlflow.get_experiment_by_name(experiment)
    experiment_id = (found.experiment_id if found is not None
                     else mlflow.create_experiment(experiment, artifact_location=artifact_location(root)))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def run_name(default: str | None = None) -> str | None:
    """The run name: DVC's experiment name when DVC sets one."""
    return os.environ.get("DVC_EXP_NAME") or default
