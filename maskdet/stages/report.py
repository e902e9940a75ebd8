"""The report stage: the executed notebooks as self-contained HTML, once each
is fit to hand in (no standard-error output, no path of the machine that ran it)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from maskdet.errors import MaskdetError
from maskdet.io.atomic import atomic_path
from maskdet.params import Params
from maskdet.paths import project_root
from maskdet.study.tracking import stage_run


class ReportError(MaskdetError):
    """An executed notebook that is not fit for a report."""


def check_fit_to_hand_in(notebook, name: str, machine_paths: list[str]) -> None:
    """One line naming the notebook and the cell: standard-error output (a
    library's warning or log, to fix at its cause or filter in maskdet/quiet.py),
    or a path of this machine (the project's, the home folder, the environment)."""
    import json

    for number, cell in enumerate(notebook.cells, 1):
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr":
                first = next((line for line in output.get("text", "").splitlines() if line.strip()), "")
                raise ReportError(f"{name} cell {number}: standard-error output in the report: {first[:160]!r}")
            text = json.dumps(output)
            for path in machine_paths:
                if path in text:
                    raise ReportError(f"{name} cell {number}: a path of this machine ({path}) in the report")


def run_report(params: Params, root: Path | None = None) -> list[Path]:
    """Executed notebooks -> self-contained HTML without code (reports/html), attached to MLflow."""
    import nbformat
    from nbconvert import HTMLExporter

    root = root or project_root()
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True
    )
    import sys

    found = {str(root.resolve()), str(Path.home()), sys.prefix}
    machine_paths = sorted((p for p in found if len(p) > 4), key=len, reverse=True)  # never "/" alone
    out = root / "reports" / "html"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        written = []
        for nb_path in sorted((root / "reports" / "notebooks").glob("*.ipynb")):
            notebook = nbformat.read(nb_path, as_version=4)
            check_fit_to_hand_in(notebook, nb_path.relative_to(root).as_posix(), machine_paths)
            body, _ = exporter.from_notebook_node(notebook)
            (tmp / f"{nb_path.stem}.html").write_text(body)
            written.append(out / f"{nb_path.stem}.html")
    with stage_run("report", params.model_dump(), root):
        mlflow.log_artifacts(str(out), "reports")
        parent = mlflow.get_parent_run(mlflow.active_run().info.run_id)
        client = mlflow.MlflowClient()
        for path in written:
            client.log_artifact(parent.info.run_id, str(path), "reports")
    return written
