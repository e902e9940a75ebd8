"""Where a stage reads its model and writes its outputs.

Inside ``dvc repro`` (DVC sets ``DVC_STAGE`` for every stage command, and
papermill's kernel inherits it) a stage writes the study itself: ``models/``
and ``reports/``, which DVC tracks. A notebook run anywhere else (JupyterLab,
nbval, a script) writes into a fresh ``runs/<timestamp>/`` instead, with the
same layout inside, so that trying the smoke defaults never replaces the model
that the CLI, the dashboard and ``make serve`` use, nor a tracked report file.

An interactive evaluation looks at the newest interactive training's model
(and writes beside it); without one, it reads the study's ``models/`` and
writes into a fresh run folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from maskdet.paths import project_root

RUNS = "runs"


@dataclass(frozen=True)
class Workspace:
    root: Path  # the project: params.yaml, data/processed, the MLflow store
    out: Path  # where models/ (training) and reports/ are written
    models: Path  # the model folder the stage writes (train) or reads (evaluate)

    @property
    def interactive(self) -> bool:
        return self.out != self.root

    def describe(self) -> str:
        """One sentence for the top of a report."""
        if not self.interactive:
            return "Pipeline run: writes the study's `models/` and `reports/`."
        where = self.out.relative_to(self.root).as_posix()
        return (
            f"Interactive run (not inside `dvc repro`): outputs go to `{where}/`; "
            "the study's `models/` and `reports/` are left as they are."
        )


def in_pipeline() -> bool:
    return bool(os.environ.get("DVC_STAGE"))


def _new_run_folder(root: Path) -> Path:
    base = root / RUNS
    base.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"could not make a run folder under {base}")


def latest_trained_run(root: Path) -> Path | None:
    """The newest ``runs/<timestamp>/`` that holds a trained model (stamps sort by time)."""
    base = root / RUNS
    found = sorted(p for p in base.glob("*/models/model.keras")) if base.is_dir() else []
    return found[-1].parent.parent if found else None


_CHOSEN: dict[tuple[str, Path], Workspace] = {}


def workspace(stage: str, root: Path | None = None) -> Workspace:
    """The workspace of ``stage`` ("train" or "evaluate") in this process.

    Chosen once per stage and root, so that a notebook's provenance cell and
    its stage call name the same folder.
    """
    if stage not in ("train", "evaluate"):
        raise ValueError(f"stage {stage!r} writes no models/ or reports/: only train and evaluate have a workspace")
    root = (root or project_root()).resolve()
    if in_pipeline():
        return Workspace(root, root, root / "models")
    key = (stage, root)
    if key not in _CHOSEN:
        previous = latest_trained_run(root) if stage == "evaluate" else None
        if previous is not None:
            _CHOSEN[key] = Workspace(root, previous, previous / "models")
        else:
            out = _new_run_folder(root)
            _CHOSEN[key] = Workspace(root, out, out / "models" if stage == "train" else root / "models")
    return _CHOSEN[key]
