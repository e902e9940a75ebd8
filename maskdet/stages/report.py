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


TITLE = "maskdet: face-mask detection study"


def combined_notebook(notebooks: list):
    """One notebook holding a title and every executed notebook's cells, in order."""
    import nbformat

    title = nbformat.v4.new_markdown_cell(
        f"# {TITLE}\n\nThe exploratory data analysis, the training and the evaluation of one run "
        "of the pipeline (`dvc repro`), in that order. Each part begins with what produced it."
    )
    cells = [title] + [cell for nb in notebooks for cell in nb.cells]
    combined = nbformat.v4.new_notebook(cells=cells, metadata=notebooks[0].metadata if notebooks else {})
    for number, cell in enumerate(combined.cells):
        cell["id"] = f"cell-{number}"  # ids must be unique in one notebook
    return combined


def with_contents(html: str) -> str:
    """A table of contents, from the h1 and h2 headings that nbconvert anchors,
    at the top of the page (after the title)."""
    import re

    headings = re.findall(r'<h([12]) id="([^"]+)">(.*?)<a class="anchor-link"', html)
    items = "".join(
        f'<li class="toc-h{level}"><a href="#{anchor}">{text}</a></li>' for level, anchor, text in headings[1:]
    )
    nav = (
        '<nav class="maskdet-toc"><h2>Contents</h2><ul>' + items + "</ul></nav>"
        "<style>.maskdet-toc ul{list-style:none;padding-left:0}.maskdet-toc .toc-h2{padding-left:1.5em}"
        ".maskdet-toc{margin:1em 0 2em}</style>"
    )
    first_heading_end = html.find("</h1>")
    if first_heading_end < 0:
        return html
    cut = first_heading_end + len("</h1>")
    return html[:cut] + nav + html[cut:]


def run_report(params: Params, root: Path | None = None) -> list[Path]:
    """Executed notebooks -> self-contained HTML without code (reports/html: one
    per notebook and report.html with all three and a table of contents), the
    combined report as PDF (reports/pdf/report.pdf), all attached to MLflow."""
    import nbformat
    from nbconvert import HTMLExporter

    from maskdet.stages.pdf import print_pdf

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
        written, notebooks = [], []
        for nb_path in sorted((root / "reports" / "notebooks").glob("*.ipynb")):
            notebook = nbformat.read(nb_path, as_version=4)
            check_fit_to_hand_in(notebook, nb_path.relative_to(root).as_posix(), machine_paths)
            body, _ = exporter.from_notebook_node(notebook)
            (tmp / f"{nb_path.stem}.html").write_text(body)
            written.append(out / f"{nb_path.stem}.html")
            notebooks.append(notebook)
        body, _ = exporter.from_notebook_node(combined_notebook(notebooks), resources={"metadata": {"name": TITLE}})
        (tmp / "report.html").write_text(with_contents(body))
        written.append(out / "report.html")
    pdf = root / "reports" / "pdf" / "report.pdf"
    with atomic_path(pdf) as tmp:
        print_pdf(out / "report.html", tmp)
    written.append(pdf)
    with stage_run("report", params.model_dump(), root):
        mlflow.log_artifacts(str(out), "reports")
        mlflow.log_artifact(str(pdf), "reports")
        parent = mlflow.get_parent_run(mlflow.active_run().info.run_id)
        client = mlflow.MlflowClient()
        for path in written:
            client.log_artifact(parent.info.run_id, str(path), "reports")
    return written
