"""The report stage: the executed notebooks as self-contained HTML."""

from __future__ import annotations

from pathlib import Path

import mlflow

from maskdet.io.atomic import atomic_path
from maskdet.params import Params
from maskdet.paths import project_root
from maskdet.study.tracking import stage_run


def run_report(params: Params, root: Path | None = None) -> list[Path]:
    """Executed notebooks -> self-contained HTML without code (reports/html), attached to MLflow."""
    import nbformat
    from nbconvert import HTMLExporter

    root = root or project_root()
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True
    )
    out = root / "reports" / "html"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        written = []
        for nb_path in sorted((root / "reports" / "notebooks").glob("*.ipynb")):
            body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
            (tmp / f"{nb_path.stem}.html").write_text(body)
            written.append(out / f"{nb_path.stem}.html")
    with stage_run("report", params.model_dump(), root):
        mlflow.log_artifacts(str(out), "reports")
        parent = mlflow.get_parent_run(mlflow.active_run().info.run_id)
        client = mlflow.MlflowClient()
        for path in written:
            client.log_artifact(parent.info.run_id, str(path), "reports")
    return written
