"""Where a scene evaluation's mAP is lost: the same answers scored again with
one part of them made right at a time.

The mAP of detect-then-classify mixes two kinds of mistake: false faces the
detector found, and found faces given the wrong class. Which one holds a
study back decides what is worth changing, and a single mAP cannot say.
Re-scoring the Predictor's own rows (``scenes.scene_metrics``' rows at IoU
0.5) answers it without another pass over the photos:

- ``no_false_faces``: every detection that matched no face removed;
- ``classes_right_<W>px``: the found faces at least ``W`` px wide given
  their true class (probability 1), the smaller ones left as answered: how
  much a classifier could gain where a face has pixels to read;
- ``classes_right``: every found face given its true class;
- ``ceiling``: both; what the detector's recall allows at best.

``maskdet evaluate`` on a VOC set prints it and writes it beside its answers
(``scene_headroom.csv``). Apart from ``scenes``, which the training stage
reads for the box correction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.io.atomic import atomic_path
from maskdet.study.scenes import Scene, average_precision, class_candidates

# Under this width the classifier reads a face grown from a few dozen pixels,
# and each retraining guesses its own way there (docs/experiment-log.md, "Real
# incorrect masks and lookalikes"); half of the Kaggle set's faces are under 23 px.
READABLE_WIDTH = 16


def class_positives(scenes: list[Scene]) -> dict[str, int]:
    """How many faces of each class the scenes hold that must be found (not difficult)."""
    return {label: sum(o.label == label and not o.difficult for s in scenes for o in s.objects) for label in LABELS}


def _true_width(rows: pd.DataFrame) -> pd.Series:
    """The annotated width of the face each row matched (NaN for a false detection)."""
    corners = rows["true_box"].fillna("").str.split(expand=True)
    if corners.shape[1] < 4:
        return pd.Series(np.nan, index=rows.index)
    return pd.to_numeric(corners[2], errors="coerce") - pd.to_numeric(corners[0], errors="coerce")


def _with_true_classes(rows: pd.DataFrame, which: pd.Series) -> pd.DataFrame:
    """``rows`` with the faces of ``which`` given probability 1 for their true class."""
    out = rows.copy()
    for label in LABELS:
        out.loc[which, f"p_{label}"] = (rows.loc[which, "true_label"] == label).astype(float)
    return out


def _scores(rows: pd.DataFrame, positives: dict[str, int]) -> dict[str, float]:
    aps = {f"ap50_{label}": average_precision(*class_candidates(rows, label), positives[label]) for label in LABELS}
    finite = [a for a in aps.values() if np.isfinite(a)]
    return {"map50": float(np.mean(finite)) if finite else float("nan"), **aps}


def scene_headroom(scenes: list[Scene], rows: pd.DataFrame, readable_width: int = READABLE_WIDTH) -> pd.DataFrame:
    """mAP@0.5 and AP per class of ``rows`` (the answers on ``scenes``) as
    answered and with each part made right: one row per case of the module
    (``case``, its key; ``made right``, in words)."""
    positives = class_positives(scenes)
    hits = rows["true_label"].notna()
    readable = hits & (_true_width(rows) >= readable_width)
    all_right = _with_true_classes(rows, hits)
    variants = [
        ("as_answered", "as answered", rows),
        ("no_false_faces", "false detections removed", rows[hits]),
        (
            f"classes_right_{readable_width}px",
            f"found faces of {readable_width} px and wider given their true class",
            _with_true_classes(rows, readable),
        ),
        ("classes_right", "every found face given its true class", all_right),
        ("ceiling", "both: every found face right, no false detection", all_right[hits]),
    ]
    return pd.DataFrame(
        [{"case": case, "made right": said, **_scores(part, positives)} for case, said, part in variants]
    )


def headroom_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Each case's mAP@0.5 under ``headroom_<case>_map50`` (the case as answered is ``map50`` itself)."""
    return {f"headroom_{r.case}_map50": float(r.map50) for r in table.itertuples() if r.case != "as_answered"}


def headroom_line(table: pd.DataFrame) -> str:
    """One line for a terminal: the mAP@0.5 of each case."""
    return "scenes, mAP@0.5 with one part made right: " + "; ".join(
        f"{said} {value:.3f}" for said, value in zip(table["made right"], table["map50"])
    )


def write_headroom(table: pd.DataFrame, path: Path) -> Path:
    """``table`` as a CSV at ``path``, written whole (temp, then rename)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
