"""Numbered captions for the reports' figures and tables.

One numbering per notebook, with the notebook's number in front ("Figure 3.2"
is the evaluation's second figure), so the three notebooks number the same way
and the combined report (and its PDF) reads as one document whose numbers do
not depend on which notebooks ran before. As papers place them: a figure's
caption below it, a table's above it. The caption texts (what data, how many
items, what to look for) are written by each stage, from its numbers; the
notebooks only show them.
"""

from __future__ import annotations

CHAPTERS = {"eda": 1, "train": 2, "evaluate": 3}


class Captions:
    """``cap = Captions("evaluate")``; ``cap.figure(fig, "...")``, ``cap.table(frame, "...")``."""

    def __init__(self, stage: str):
        if stage not in CHAPTERS:
            raise ValueError(f"stage {stage!r}: expected one of {sorted(CHAPTERS)}")
        self.chapter = CHAPTERS[stage]
        self.figures = 0
        self.tables = 0

    def figure_label(self, caption: str) -> str:
        self.figures += 1
        return f"**Figure {self.chapter}.{self.figures}.** {caption}"

    def table_label(self, caption: str) -> str:
        self.tables += 1
        return f"**Table {self.chapter}.{self.tables}.** {caption}"

    def figure(self, figure, caption: str) -> None:
        """Show ``figure`` (a Matplotlib figure, an image) with its numbered caption below."""
        from IPython.display import Markdown, display

        display(figure, Markdown(self.figure_label(caption)))

    def table(self, table, caption: str) -> None:
        """Show ``table`` (a DataFrame, or anything IPython displays) under its numbered caption."""
        from IPython.display import Markdown, display

        display(Markdown(self.table_label(caption)), table)
