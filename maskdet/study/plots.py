"""Figures of the study. Each function returns a figure; nothing is shown or saved here."""

from __future__ import annotations

import matplotlib.pyplot as plt  # without a display, matplotlib picks its Agg backend itself
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn import metrics as skm

from maskdet import LABELS

PALETTE = {"with_mask": "#2e8b57", "without_mask": "#c0392b", "mask_weared_incorrect": "#e67e22"}
SPLIT_ORDER = ["train", "val", "test"]


def class_balance(frame: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.countplot(
        data=frame,
        x="split",
        hue="label",
        order=[s for s in SPLIT_ORDER if s in set(frame["split"])],
        hue_order=list(LABELS),
        palette=PALETTE,
        ax=ax,
    )
    for container in ax.containers:
        ax.bar_label(container, fontsize=8)
    ax.set_title("Crops per class and split")
    fig.tight_layout()
    return fig


def class_balance_interactive(frame: pd.DataFrame):
    import plotly.express as px

    counts = frame.groupby(["split", "label"]).size().reset_index(name="crops")
    return px.bar(
        counts,
        x="split",
        y="crops",
        color="label",
        barmode="group",
        color_discrete_map=PALETTE,
        category_orders={"split": SPLIT_ORDER, "label": list(LABELS)},
        text="crops",
        title="Crops per class and split",
    )


def size_distribution(frame: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    sns.histplot(data=frame, x="width", hue="label", palette=PALETTE, element="step", ax=axes[0])
    axes[0].set_title("Crop width (pixels)")
    aspect = frame.assign(aspect=frame["width"] / frame["height"])
    sns.histplot(data=aspect, x="aspect", hue="label", palette=PALETTE, element="step", ax=axes[1])
    axes[1].set_title("Aspect ratio (width / height)")
    fig.tight_layout()
    return fig


def image_grid(files: list, titles: list[str], columns: int = 6, size: float = 1.8, colours=None):
    rows = max(1, int(np.ceil(len(files) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * (size + 0.3)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (file, title) in enumerate(zip(files, titles)):
        ax = axes.flat[i]
        ax.imshow(file if isinstance(file, np.ndarray) else Image.open(file).convert("RGB"))
        ax.set_title(title, fontsize=7, color=(colours[i] if colours else "black"))
    fig.tight_layout()
    return fig


def sample_grid(frame: pd.DataFrame, per_class: int = 6, seed: int = 0):
    picks = [
        frame[frame["label"] == label].sample(min(per_class, (frame["label"] == label).sum()), random_state=seed)
        for label in LABELS
    ]
    chosen = pd.concat(picks)
    titles = [f"{r.label}\n{r.style}" for r in chosen.itertuples()]
    return image_grid(list(chosen["file"]), titles, columns=per_class)


def confusion(y_true, y_pred, normalize: bool):
    cm = skm.confusion_matrix(y_true, y_pred, labels=range(len(LABELS)), normalize="true" if normalize else None)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    sns.heatmap(
        cm,
        annot=True,
        fmt=".2f" if normalize else "d",
        cmap="Blues",
        cbar=False,
        xticklabels=LABELS,
        yticklabels=LABELS,
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else " (counts)"))
    fig.tight_layout()
    return fig


def curves(y_true, probs, kind: str):
    """One-vs-rest ROC (kind='roc') or precision-recall (kind='pr') curves per class."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for k, label in enumerate(LABELS):
        positive = np.asarray(y_true) == k
        if positive.all() or not positive.any():
            continue
        if kind == "roc":
            x, y, _ = skm.roc_curve(positive, probs[:, k])
            area = skm.auc(x, y)
        else:
            y, x, _ = skm.precision_recall_curve(positive, probs[:, k])
            area = skm.average_precision_score(positive, probs[:, k])
        ax.plot(x, y, color=PALETTE[label], label=f"{label} ({area:.3f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one vs rest")
    else:
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, one vs rest")
    ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
    fig.tight_layout()
    return fig


def reliability(bins: list[dict]):
    frame = pd.DataFrame(bins).dropna()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    centres = (frame["lower"] + frame["upper"]) / 2
    ax.bar(
        centres,
        frame["accuracy"],
        width=frame["upper"] - frame["lower"],
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    ax.plot(frame["confidence"], frame["accuracy"], "o-", color="black", ms=3, label="confidence vs accuracy")
    ax.set(
        xlabel="confidence (top probability)",
        ylabel="accuracy",
        title="Reliability diagram",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def confidence_histograms(y_true, probs):
    frame = pd.DataFrame(
        {
            "true": [LABELS[k] for k in y_true],
            "confidence": probs.max(axis=1),
            "correct": probs.argmax(axis=1) == np.asarray(y_true),
        }
    )
    grid = sns.displot(
        data=frame,
        x="confidence",
        hue="correct",
        col="true",
        col_order=list(LABELS),
        bins=20,
        binrange=(0, 1),
        height=3,
        aspect=1.1,
        multiple="stack",
        palette={True: "#2e8b57", False: "#c0392b"},
    )
    grid.figure.suptitle("Confidence by true class", y=1.04)
    return grid.figure


def history(frame: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(frame["epoch"], frame[metric], "o-", label="train")
        ax.plot(frame["epoch"], frame[f"val_{metric}"], "o-", label="val")
        if (frame["phase"] == "fine_tune").any():
            ax.axvline(frame.loc[frame["phase"] == "fine_tune", "epoch"].min() - 0.5, ls=":", color="grey")
        # kept_epochs' rule, not imported: the study's training module would join the eda stage's deps
        kept = frame[frame["kept"] if "kept" in frame else frame["best"]]
        label = "best epoch" if len(kept) == 1 else "epochs averaged"
        ax.scatter(kept["epoch"], kept[f"val_{metric}"], s=120, facecolors="none", edgecolors="red", label=label)
        ax.set(xlabel="epoch", title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 2.5
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, by: str, metric: str = "f1_macro", title: str | None = None):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.barplot(data=table, x=by, y=metric, color="#4c72b0", ax=ax)
    ax.bar_label(ax.containers[0], fmt="%.3f", fontsize=8)
    ax.set(ylim=(0, 1.05), title=title or f"{metric} by {by}")
    fig.tight_layout()
    return fig


def confusion_counts(table: pd.DataFrame, title: str):
    """A confusion table (true class by answer, counts) as a heatmap with each row's share."""
    shares = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    notes = np.array(
        [[f"{n}\n{s:.0%}" for n, s in zip(row_n, row_s)] for row_n, row_s in zip(table.to_numpy(), shares.to_numpy())]
    )
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * table.shape[1], 1.2 + 0.9 * table.shape[0]))
    sns.heatmap(
        shares,
        annot=notes,
        fmt="",
        cmap="Blues",
        vmin=0,
        vmax=1,
        cbar=False,
        ax=ax,
        xticklabels=[str(c) for c in table.columns],
        yticklabels=[str(i) for i in table.index],
    )
    ax.set_xlabel("answer")
    ax.set_ylabel("true class")
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def scene_pr_curves(curves: dict[str, tuple], title: str):
    """Precision against recall per class on scenes: ``curves[label] = (recall, precision, ap)``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label, (recall, precision, ap) in curves.items():
        ax.plot(recall, precision, label=f"{label} (AP {ap:.2f})", color=PALETTE.get(label))
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def recall_by_size(scores: dict, title: str):
    """Bars of detection recall per face-width bin (``recall_<bin>`` and ``faces_<bin>`` in ``scores``)."""
    bins = [k.removeprefix("recall_") for k in scores if k.startswith("recall_") and f"faces_{k[7:]}" in scores]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bars = ax.bar(bins, [scores[f"recall_{b}"] for b in bins], color="#4c72b0")
    ax.bar_label(bars, labels=[f"{scores[f'recall_{b}']:.2f}\n{scores[f'faces_{b}']} faces" for b in bins], fontsize=7)
    ax.set(ylim=(0, 1.25), xlabel="face width (pixels)", ylabel="faces found", title=title)
    fig.tight_layout()
    return fig
