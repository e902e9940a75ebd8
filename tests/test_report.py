"""The report stage refuses a notebook that is not fit to hand in."""

import nbformat
import pytest

from maskdet.stages.report import ReportError, check_fit_to_hand_in


def _notebook(*outputs):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1", outputs=list(outputs))]
    return nb


def test_a_clean_notebook_passes():
    check_fit_to_hand_in(_notebook(nbformat.v4.new_output("stream", name="stdout", text="f1 0.98\n")), "n", ["/x/proj"])


def test_standard_error_output_is_named_by_notebook_and_cell():
    warning = nbformat.v4.new_output("stream", name="stderr", text="\n/x/site.py:1: UserWarning: noise\n")
    with pytest.raises(
        ReportError, match=r"^reports/notebooks/02_train.ipynb cell 2: standard-error output.*UserWarning"
    ):
        check_fit_to_hand_in(_notebook(warning), "reports/notebooks/02_train.ipynb", ["/x/proj"])


def test_a_path_of_the_machine_is_named():
    shown = nbformat.v4.new_output("execute_result", data={"text/plain": "saved to /x/proj/models"})
    with pytest.raises(ReportError, match=r"cell 2: a path of this machine \(/x/proj\)"):
        check_fit_to_hand_in(_notebook(shown), "nb", ["/x/proj"])


def test_the_combined_report_keeps_every_cell_in_order_with_unique_ids_and_a_contents_list():
    from nbconvert import HTMLExporter

    from maskdet.stages.report import TITLE, combined_notebook, with_contents

    parts = []
    for title, section in (("01 · Data", "Balance"), ("02 · Training", "History")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), nbformat.v4.new_markdown_cell(f"## {section}")]
        parts.append(nb)
    combined = combined_notebook(parts)
    assert [c.source.splitlines()[0] for c in combined.cells] == [
        f"# {TITLE}",
        "# 01 · Data",
        "## Balance",
        "# 02 · Training",
        "## History",
    ]
    assert len({c["id"] for c in combined.cells}) == len(combined.cells)
    nbformat.validate(combined)
    html, _ = HTMLExporter(exclude_input=True).from_notebook_node(combined)
    page = with_contents(html)
    nav = page.split('<nav class="maskdet-toc">', 1)[1].split("</nav>", 1)[0]
    assert [x.split("</a>")[0].split(">")[-1] for x in nav.split("<li")[1:]] == [
        "01 · Data",
        "Balance",
        "02 · Training",
        "History",
    ]
    assert page.index(TITLE) < page.index('<nav class="maskdet-toc">') < page.index('id="01-')
    assert with_contents("<p>no heading</p>") == "<p>no heading</p>"


def test_without_chromium_the_pdf_step_says_what_to_run(tmp_path, monkeypatch):
    from maskdet.stages import pdf

    monkeypatch.delenv("MASKDET_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    page = tmp_path / "report.html"
    page.write_text("<h1>x</h1>")
    with pytest.raises(pdf.NoChromiumError, match=r"`make browser` installs it"):
        pdf.print_pdf(page, tmp_path / "report.pdf")
    assert not (tmp_path / "report.pdf").exists()


def test_captions_number_figures_and_tables_apart_within_a_notebook():
    from maskdet.stages.captions import Captions

    cap = Captions("evaluate")
    assert cap.figure_label("a") == "**Figure 3.1.** a" and cap.figure_label("b") == "**Figure 3.2.** b"
    assert cap.table_label("c") == "**Table 3.1.** c"
    assert Captions("eda").figure_label("d").startswith("**Figure 1.1.**")
    with pytest.raises(ValueError, match="stage 'report'"):
        Captions("report")
