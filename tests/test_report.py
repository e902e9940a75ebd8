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
