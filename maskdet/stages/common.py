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
from maskdet.study.tracking import provenance


def notebook_params(**sections) -> Params:
    """Validate the sections a notebook received (its parameters cell, or
    papermill's injection of params.yaml) into Params."""
    return parse_params({k: v for k, v in sections.items() if v is not None}, source="notebook parameters")


def provenance_markdown(params: Params, root: Path | None = None) -> str:
    """The line every report starts with: which commit, params and data produced it."""
    prov = provenance(params.model_dump(), root or project_root())
    return (
        f"**Produced by** commit `{prov['git_commit']}`, params sha256 `{prov['params_sha256'][:16]}`, "
        f"data sha256 `{prov['data_sha256'][:16]}` (`data/processed/manifest.csv`)."
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
