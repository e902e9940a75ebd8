"""What a paper needs from one run of the study: a Methods paragraph written
from the settings, the prepared data and the model's metadata, and the
headline results as LaTeX and Markdown tables whose numbers are those of
``reports/metrics.json`` (rounded to three decimals, never recomputed)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from maskdet import LABELS
from maskdet.study.metrics import wilson_interval
from maskdet.study.model import has_frozen_base

DECIMALS = 3

# (section, row label, metrics.json key, key of the count it is a share of: a 95 % Wilson interval is given).
# A key with `<key>_ci95_low` / `_high` in the metrics also gets the bootstrap interval over people.
RESULT_ROWS = [
    ("Test crops", "crops", "test_n", None),
    ("Test crops", "accuracy", "test_accuracy", "test_n"),
    ("Test crops", "balanced accuracy", "test_balanced_accuracy", None),
    ("Test crops", "macro-F1", "test_f1_macro", None),
    ("Test crops", "ROC-AUC (one-vs-rest, macro)", "test_roc_auc_ovr_macro", None),
    ("Test crops", "expected calibration error", "test_ece", None),
    *[
        row
        for label in LABELS
        for row in (
            ("Test crops", f"{label}: precision", f"test_precision_{label}", None),
            ("Test crops", f"{label}: recall", f"test_recall_{label}", f"test_support_{label}"),
            ("Test crops", f"{label}: F1", f"test_f1_{label}", None),
        )
    ],
    ("Test scenes (detector + classifier)", "faces", "scene_faces", None),
    ("Test scenes (detector + classifier)", "recall, IoU 0.5", "scene_recall", "scene_faces"),
    ("Test scenes (detector + classifier)", "recall of masked faces", "scene_recall_masked", "scene_masked_faces"),
    ("Test scenes (detector + classifier)", "precision", "scene_precision", None),
    ("Test scenes (detector + classifier)", "mAP@0.5", "scene_map50", None),
    ("Leave one mask style out", "macro-F1, style unseen (mean)", "loso_f1_macro_mean", None),
    ("Leave one mask style out", "macro-F1, style seen (mean)", "loso_in_style_f1_macro_mean", None),
]
COUNTS = {"test_n", "scene_faces"}


def _number(key: str, value: float) -> str:
    return str(int(round(value))) if key in COUNTS else f"{value:.{DECIMALS}f}"


def results_table(metrics: dict) -> pd.DataFrame:
    """One row per headline number present in ``metrics`` (a run without
    scenes or leave-one-style-out simply has fewer rows)."""
    rows = []
    for section, label, key, count in RESULT_ROWS:
        value = metrics.get(key)
        if not isinstance(value, (int, float)):
            continue
        interval = ""
        n = metrics.get(count) if count else None
        if isinstance(n, (int, float)) and n > 0:
            low, high = wilson_interval(round(value * n), int(n))
            interval = f"{low:.{DECIMALS}f}-{high:.{DECIMALS}f}"
        low, high = metrics.get(f"{key}_ci95_low"), metrics.get(f"{key}_ci95_high")
        people = f"{low:.{DECIMALS}f}-{high:.{DECIMALS}f}" if low is not None and high is not None else ""
        rows.append(
            {
                "section": section,
                "metric": label,
                "value": _number(key, value),
                "ci95": interval,
                "ci95_people": people,
                "key": key,
            }
        )
    return pd.DataFrame(rows, columns=["section", "metric", "value", "ci95", "ci95_people", "key"])


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def to_latex(table: pd.DataFrame, caption: str, label: str = "tab:maskdet-results", units: str = "people") -> str:
    """A booktabs table (``\\usepackage{booktabs}``), one block per section;
    ``units`` names what the bootstrap column resamples (people, photo groups)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        rf"Metric & Value & 95\,\% CI (crops) & 95\,\% CI ({units}) \\",
    ]
    for section, rows in table.groupby("section", sort=False):
        lines += [r"\midrule", rf"\multicolumn{{4}}{{l}}{{\textit{{{_latex_escape(section)}}}}} \\"]
        lines += [
            rf"{_latex_escape(r.metric)} & {r.value} & {r.ci95.replace('-', '--')} & "
            rf"{r.ci95_people.replace('-', '--')} \\"
            for r in rows.itertuples()
        ]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def to_markdown(table: pd.DataFrame, caption: str | None, units: str = "people") -> str:
    """The table in Markdown, under its caption in bold (none: the table alone,
    for a report that numbers its captions itself); ``units`` as in ``to_latex``."""
    lines = [
        *([f"**{caption}**", ""] if caption else []),
        f"| | metric | value | 95 % CI (crops) | 95 % CI ({units}) |",
        "|---|---|---:|---:|---:|",
    ]
    for section, rows in table.groupby("section", sort=False):
        for i, r in enumerate(rows.itertuples()):
            lines.append(
                f"| {section if i == 0 else ''} | {r.metric} | {r.value} | {r.ci95.replace('-', '–')} "
                f"| {r.ci95_people.replace('-', '–')} |"
            )
    return "\n".join(lines) + "\n"


def has_people(manifest: pd.DataFrame) -> bool:
    """Whether every crop names its person (the built-in set does; VOC scenes and class folders do not)."""
    return "person" in manifest and bool(len(manifest)) and manifest["person"].fillna("").astype(str).ne("").all()


def _counts(manifest: pd.DataFrame) -> str:
    people = has_people(manifest)
    parts = []
    for split in ("train", "val", "test"):
        rows = manifest[manifest["split"] == split]
        by_class = ", ".join(f"{(rows['label'] == label).sum()} {label}" for label in LABELS)
        if people:
            whose = f" of {rows['person'].nunique()} people"
        elif "photo" in rows and rows["photo"].fillna("").astype(str).ne("").any():
            whose = f" from {rows['photo'].nunique()} photos in {rows['group'].nunique()} groups"
        else:
            whose = f" in {rows['group'].nunique()} groups" if "group" in rows else ""
        parts.append(f"{split} {len(rows)} crops{whose} ({by_class})")
    return "; ".join(parts)


def _augmentation(augment) -> str:
    a = augment
    parts = []
    if a.flip:
        parts.append("horizontal flips")
    if a.rotation:
        parts.append(f"rotation up to {a.rotation:g} degrees")
    if a.zoom_in or a.zoom_out:
        parts.append(
            f"zoom from {1 - a.zoom_in:g} to {1 + a.zoom_out:g} times the side "
            "(incorrectly worn masks zoomed in keep the chin)"
        )
    if a.translation:
        parts.append(f"shifts up to {a.translation:.0%} of the side")
    if a.brightness or a.contrast:
        parts.append(f"brightness and contrast jitter ({a.brightness:g}, {a.contrast:g})")
    if a.colour_cast:
        parts.append(f"colour casts (each channel's gain within 1 ± {a.colour_cast:g})")
    for share, what in ((a.grayscale, "grey"), (a.blur, "blurred"), (a.jpeg, "re-encoded as JPEG at quality 20-90")):
        if share:
            parts.append(f"{share:.0%} of crops {what}")
    if a.flat_band:
        parts.append(f"{a.flat_band:.0%} of crops with a flat-coloured lower part")
    return ", ".join(parts) if parts else "none"


DATA_SOURCES = {
    "sample": (
        "the project's built-in data set: masks (surgical, cloth and KN95, worn correctly, under the nose or on "
        "the chin) rendered from face-mesh landmarks onto real face photos shipped in pinned registry packages "
        "(face-api demo photos, MIT; US government portraits from the face_recognition tests and the NASA "
        "astronaut photograph from scikit-image, public domain)"
    ),
    "voc": "Pascal VOC scenes (face boxes with class labels), cropped around each face",
    "folders": "face crops in one folder per class",
}


def _kept_weights(average: int, metadata: dict) -> str:
    """Which epochs' weights make the model, in the Methods paragraph's words."""
    epochs = metadata.get("kept_epochs") or ([metadata["best_epoch"]] if metadata.get("best_epoch") else [])
    if average == 1 or len(epochs) == 1:
        return (
            "the weights of the epoch with the lowest validation loss"
            + (f" (epoch {epochs[0]})" if epochs else "")
            + " were kept"
        )
    count = len(epochs) or average  # a training shorter than train.average_epochs averaged every epoch it had
    listed = f" (epochs {', '.join(map(str, epochs))})" if epochs else ""
    return f"the weights of the {count} epochs with the lowest validation losses{listed} were averaged"


def _commit(metadata: dict) -> str:
    """ " at commit `abc1234`", and whether files had changed since (they are listed in
    the model's metadata.json and the reports' provenance line)."""
    commit = metadata.get("git_commit")
    if not commit or commit == "unknown":
        return ""
    clean = metadata.get("git_tree", "clean") == "clean"
    return f" at commit `{commit[:7]}`" + ("" if clean else " with changes not yet committed")


def methods_paragraph(
    params, manifest: pd.DataFrame, data_report: dict, metadata: dict, versions: dict, measured: str | None = None
) -> str:
    """The Methods paragraph of one run, in Markdown, from what produced it; ``measured``
    is the date of the evaluation (today by default)."""
    d, m, t = params.data, params.model, params.train
    groups = len(data_report.get("near_duplicate_groups", []))
    backbone = (
        "MobileNetV2 pretrained on ImageNet, with a new softmax head over the three classes"
        if m.backbone == "mobilenetv2"
        else "a small convolutional network trained from scratch"
    )
    schedule = (
        f"The head was trained for up to {t.epochs} epochs with the base frozen (Adam, learning rate "
        f"{t.learning_rate:g}, {'cosine decay' if t.lr_schedule == 'cosine' else 'constant'})"
    )
    if has_frozen_base(m) and t.fine_tune_epochs:
        schedule += (
            f", then the top {t.fine_tune_layers} layers of the base were fine-tuned for up to "
            f"{t.fine_tune_epochs} epochs at {t.fine_tune_learning_rate:g} (batch normalisation frozen)"
        )
    stopping = (
        f"; training stopped after {t.early_stopping_patience} epochs without a lower validation loss"
        if t.early_stopping_patience
        else ""
    )
    seconds = metadata.get("train_seconds")
    software = ", ".join(f"{k} {v}" for k, v in versions.items())
    units = "people" if has_people(manifest) else "photo groups"
    return (
        "**Methods.** "
        f"Data: {DATA_SOURCES.get(d.source, d.source)}"
        + (
            f"; beside it, in training and validation only, {DATA_SOURCES['sample']}"
            if d.add_sample and d.source != "sample"
            else ""
        )
        + f". After validation and de-duplication "
        f"({data_report.get('items_read', len(manifest))} items read, {len(manifest)} kept), the crops were split "
        f"{d.split.train:.0%} / {d.split.val:.0%} / {d.split.test:.0%} (seed {d.seed}) so that no person, source "
        f"photo or near-duplicate group (perceptual hash within {d.near_duplicate_distance} bits; {groups} groups) "
        f"spans two splits: {_counts(manifest)}. "
        f"Model: {backbone}, input {m.input_size} x {m.input_size} pixels, dropout {m.dropout:g}. "
        f"{schedule}, batch size {t.batch_size}"
        + (", classes weighted by inverse frequency" if t.class_weights else "")
        + f"{stopping}; {_kept_weights(t.average_epochs, metadata)} (seed {t.seed}, TensorFlow op determinism on). "
        f"Augmentation of the training crops: {_augmentation(t.augment)}. "
        + (
            f"Training took {seconds / 60:.1f} min on {metadata.get('hardware', 'a CPU')}{_commit(metadata)}. "
            if seconds
            else ""
        )
        + f"The figures were measured on {measured or date.today().isoformat()}. "
        + f"Software: {software}. "
        + (
            f"The predictor answers for a share of {params.predict.incorrect_share:g} of faces with a mask worn "
            "incorrectly: it moves the classifier's probabilities from the classes' shares in training to that "
            "prior by Bayes' rule (Saerens et al., 2002) before it decides. "
            if params.predict.incorrect_share is not None
            else ""
        )
        + f"Results are on the test split only ({units} unseen in training and validation), each crop read and "
        "classified as the released predictor does it; intervals are 95 % Wilson score intervals over crops "
        f"and, for the headline numbers, 95 % bootstrap intervals over {units} (whole {units} resampled, 2000 "
        "times).\n"
    )
