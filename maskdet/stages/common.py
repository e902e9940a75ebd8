"""What every stage shares: the notebook's parameters validated, the
provenance line each report begins with, and figures and tables written to
MLflow and disk."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from maskdet.io.atomic import atomic_path
from maskdet.params import Params, parse_params
from maskdet.paths import project_root
from maskdet.quiet import quiet_libraries
from maskdet.stages.workspace import workspace
from maskdet.study.tracking import provenance

quiet_libraries()  # every stage notebook imports this module first


def notebook_params(**sections) -> Params:
    """Validate the sections a notebook received (its parameters cell, or
    papermill's injection of params.yaml) into Params."""
    return parse_params({k: v for k, v in sections.items() if v is not None}, source="notebook parameters")


# The packages whose versions can change a number in the report.
REPORTED_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "scikit-learn", "opencv-python-headless", "mlflow", "dvc")


def package_versions() -> dict[str, str]:
    """Python and the REPORTED_PACKAGES installed here (one TensorFlow build is)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            found.setdefault(name.removesuffix("-cpu"), version(name))
        except PackageNotFoundError:
            pass
    return found


def provenance_markdown(params: Params, root: Path | None = None, stage: str | None = None) -> str:
    """What every report starts with: the commit and whether the tree was clean
    (what DVC writes during the run does not count), the params and data
    digests, the DVC experiment when there is one, and the package versions;
    for ``stage`` train or evaluate, also where its outputs go (the study or a
    run folder: maskdet.stages.workspace)."""
    import os

    prov = provenance(params.model_dump(), root or project_root())
    experiment = os.environ.get("DVC_EXP_NAME")
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return (
        f"**Produced by** commit `{prov['git_commit']}` ({prov['git_tree']}), "
        f"params sha256 `{prov['params_sha256'][:16]}`, data sha256 `{prov['data_sha256'][:16]}` "
        f"(`data/processed/manifest.csv`)" + (f", DVC experiment `{experiment}`" if experiment else "") + ". "
        f"**Software**: {versions}." + (f"\n\n{workspace(stage, root).describe()}" if stage else "")
    )


def log_figures(figures: dict, folder: Path | None = None) -> None:
    """Every figure into MLflow (PNG for matplotlib, HTML for plotly) and, with a folder, onto disk."""
    for name, fig in figures.items():
        if hasattr(fig, "to_html"):  # plotly: self-contained HTML, readable offline
            html = fig.to_html(include_plotlyjs=True)
            mlflow.log_text(html, f"figures/{name}.html")
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}.html").write_text(html)
            continue
        mlflow.log_figure(fig, f"figures/{name}.png")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
