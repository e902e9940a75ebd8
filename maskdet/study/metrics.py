"""Classification metrics from true labels and predicted probabilities.

scikit-learn does the standard ones; calibration (ECE, reliability bins) and
the multi-class Brier score are computed here, as the literature defines them.
A metric that is undefined for the data (a class absent from the test split)
is NaN, never a made-up number.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from maskdet import LABELS


def brier_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class Brier score: mean over items of the squared distance to the one-hot truth."""
    onehot = np.eye(probs.shape[1])[y_true]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float]:
    """The 95 % Wilson score interval of a share (``successes`` of ``n``): with 300
    photos a class, 0.957 is anything from 0.93 to 0.97, and a goal inside that
    interval is neither met nor missed by the data. [0, 1] when ``n`` is 0."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> list[dict]:
    """Per confidence bin (equal width on the top probability): count, mean confidence, accuracy."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        out.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(mask.sum()),
                "confidence": float(conf[mask].mean()) if mask.any() else float("nan"),
                "accuracy": float(correct[mask].mean()) if mask.any() else float("nan"),
            }
        )
    return out


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Sum over bins of |accuracy - confidence| weighted by the bin's share of items."""
    n = len(y_true)
    return float(
        sum(
            b["count"] / n * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(y_true, probs, bins)
            if b["count"]
        )
    )


def _per_class_auc(y_true, probs, k, curve):
    positive = y_true == k
    if positive.all() or not positive.any():
        return float("nan")
    if curve == "roc":
        return float(skm.roc_auc_score(positive, probs[:, k]))
    return float(skm.average_precision_score(positive, probs[:, k]))


# Names in reports/metrics.json and MLflow: the evaluation writes each
# classification metric with the split it was measured on in front (TEST) and
# each scene metric (maskdet.study.scenes.scene_metrics) with SCENE in front.
TEST = "test_"
SCENE = "scene_"
# What the dashboard's model card shows; a test checks that an evaluation writes each.
HEADLINE_METRICS = (
    *(TEST + k for k in ("accuracy", "f1_macro", "balanced_accuracy", "mcc", "roc_auc_ovr_macro", "ece")),
    SCENE + "map50",
    SCENE + "recall_masked",
    "loso_f1_macro_mean",  # with evaluate.leave_one_style_out
)


def _clipped(probs: np.ndarray, floor: float = 1e-7) -> np.ndarray:
    """Probabilities of at least ``floor`` (a confident mistake costs at most
    -log(1e-7) in the log loss), still summing to one."""
    clipped = np.clip(probs, floor, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def group_scores(y_true, probs) -> dict[str, float]:
    """Accuracy and the recall of each class a group (a mask style, a person)
    holds; NaN for the classes it does not hold. No F1 or macro average: a
    group of bare faces alone has no mask class to score, and a macro-F1 over
    all three classes counted the two empty ones as zero (style `none`: F1
    0.33 at 97.5 % accuracy)."""
    probs = np.asarray(probs)
    scores = confusion_scores(np.asarray(y_true), probs.argmax(axis=1), probs.shape[1])
    return {k: float(v) for k, v in scores.items() if k != "f1_macro"}


def classification_metrics(y_true, probs, labels=LABELS, bins: int = 10) -> dict[str, float]:
    """Every scalar metric of the evaluation, flat, named for MLflow and DVC."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=float)
    # A float32 softmax sums to one within 1e-7, outside scikit-learn's float64
    # tolerance: renormalised here, the log loss and AUCs see true probabilities.
    probs = probs / probs.sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    ks = list(range(len(labels)))
    conf = probs.max(axis=1)
    correct = y_pred == y_true
    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "mcc": skm.matthews_corrcoef(y_true, y_pred),
        "cohen_kappa": skm.cohen_kappa_score(y_true, y_pred, labels=ks),
        "log_loss": skm.log_loss(y_true, _clipped(probs), labels=ks),
        "brier": brier_score(y_true, probs),
        "ece": expected_calibration_error(y_true, probs, bins),
        "confidence_mean": conf.mean(),
        "confidence_median": np.median(conf),
        "confidence_mean_correct": conf[correct].mean() if correct.any() else float("nan"),
        "confidence_mean_wrong": conf[~correct].mean() if (~correct).any() else float("nan"),
        "n": len(y_true),
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=ks, average=avg, zero_division=0)
        out.update({f"precision_{avg}": p, f"recall_{avg}": r, f"f1_{avg}": f})
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=ks, average=None, zero_division=0)
    roc = [_per_class_auc(y_true, probs, k, "roc") for k in ks]
    pr = [_per_class_auc(y_true, probs, k, "pr") for k in ks]
    for k, name in enumerate(labels):
        out.update(
            {
                f"precision_{name}": p[k],
                f"recall_{name}": r[k],
                f"f1_{name}": f[k],
                f"support_{name}": s[k],
                f"roc_auc_{name}": roc[k],
                f"pr_auc_{name}": pr[k],
            }
        )
    out["roc_auc_ovr_macro"] = float(np.mean(roc)) if not np.isnan(roc).any() else float("nan")
    out["pr_auc_macro"] = float(np.mean(pr)) if not np.isnan(pr).any() else float("nan")
    return {k: float(v) for k, v in out.items()}


# The metrics given an interval by resampling people (bootstrap_by_group).
BOOTSTRAPPED = ("accuracy", "f1_macro", *(f"recall_{label}" for label in LABELS))


def confusion_scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    """BOOTSTRAPPED from labels and answers (class indices), through one
    confusion matrix in NumPy (thousands of bootstrap resamples in a second).
    F1 averaged over the classes present; a class's recall is NaN where the
    items hold none of it, the accuracy NaN when there are no items."""
    confusion = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp, truth, said = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    present = (truth + said) > 0
    f1 = np.divide(2 * tp, truth + said, out=np.zeros(k), where=present)
    total = confusion.sum()
    out = {
        "accuracy": tp.sum() / total if total else np.nan,
        "f1_macro": f1[present].mean() if present.any() else np.nan,
    }
    for j, label in enumerate(LABELS[:k]):
        out[f"recall_{label}"] = tp[j] / truth[j] if truth[j] else np.nan
    return out


def bootstrap_by_group(y_true, probs, groups, draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals of BOOTSTRAPPED, resampling whole groups (people)
    with replacement, not single crops: the 60 crops of one person are not 60
    independent trials, and resampling crops would give intervals far too
    narrow. Returns ``{metric: [low, high]}`` and ``groups`` (how many there
    were). With very few groups (the default data's test split has 4 people)
    the interval is coarse, and a model with no mistake gets [1, 1]: the
    resamples can only show errors that happened. Fewer than 2 groups: no
    interval (an empty dict but ``groups``)."""
    y_true, groups = np.asarray(y_true), np.asarray(groups)
    y_pred = np.asarray(probs).argmax(axis=1)
    k = np.asarray(probs).shape[1]
    names = np.unique(groups)
    if len(names) < 2:
        return {"groups": len(names)}
    members = [np.flatnonzero(groups == g) for g in names]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m: [] for m in BOOTSTRAPPED}
    for _ in range(draws):
        idx = np.concatenate([members[i] for i in rng.integers(len(names), size=len(names))])
        for name, value in confusion_scores(y_true[idx], y_pred[idx], k).items():
            samples[name].append(value)
    tail = (1 - level) / 2 * 100
    out: dict = {"groups": len(names)}
    for name, values in samples.items():
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        if len(values):
            out[name] = [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
    return out


# reports/metrics.json groups the evaluation's numbers by section, so that
# `dvc metrics show` and `dvc metrics diff` list them as test.accuracy,
# scene.map50, serving.float32_passed... instead of one row of 90 flat keys.
# MLflow keeps the flat names (test_accuracy): a section is the part before
# the first underscore.
SECTIONS = ("test", "scene", "serving", "loso", "detector")


def nest_metrics(flat: dict) -> dict:
    """``{"test_accuracy": 1.0, ...}`` -> ``{"test": {"accuracy": 1.0}, ...}``."""
    nested: dict = {}
    for key, value in flat.items():
        section, _, name = key.partition("_")
        if section in SECTIONS and name:
            nested.setdefault(section, {})[name] = value
        else:
            nested[key] = value
    return nested


def flat_metrics(nested: dict) -> dict:
    """The inverse of ``nest_metrics``: the flat names MLflow uses."""
    flat = {}
    for key, value in nested.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}_{name}": v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


def read_metrics(path) -> dict:
    """reports/metrics.json under the flat names (``test_accuracy``)."""
    import json
    from pathlib import Path

    return flat_metrics(json.loads(Path(path).read_text()))
