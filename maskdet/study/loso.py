"""Evaluation on the test split: predictions, metrics, breakdowns, and the
leave-one-mask-style-out score (docs/architecture.md, section 4): train without one mask
style, test on that style. On rendered data that number, not the in-style one,
says whether the model learned "is the nose covered" or "what our renderer draws".
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from maskdet import LABELS
from maskdet.params import Params
from maskdet.study.datasets import load_crops
from maskdet.study.export import inference_function
from maskdet.study.metrics import classification_metrics, group_scores

MASKED = ("with_mask", "mask_weared_incorrect")


@functools.lru_cache(maxsize=8)
def _inference(model):
    """One traced inference function per model (any batch size): model.predict
    traced a new graph for every model and every last-batch size, and TensorFlow
    warned about the retracing in the report."""
    return inference_function(model)


def predict_probs(model, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """A Keras model's probabilities on crops (read as the Predictor reads them: ``load_crops``)."""
    parts = [np.asarray(_inference(model)(crops[i : i + batch_size])) for i in range(0, len(crops), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)), np.float32)


def breakdown(frame: pd.DataFrame, probs: np.ndarray, by: str) -> pd.DataFrame:
    """Accuracy and the recall of each class held, per value of ``by`` (e.g.
    mask style, person): ``group_scores``."""
    rows = []
    for value, part in frame.groupby(by):
        idx = frame.index.get_indexer(part.index)
        rows.append({by: value, "n": len(part), **group_scores(part["y"].to_numpy(), probs[idx])})
    return pd.DataFrame(rows)


def worst_mistakes(frame: pd.DataFrame, probs: np.ndarray, k: int) -> pd.DataFrame:
    """The ``k`` wrong predictions made with the highest confidence."""
    pred = probs.argmax(axis=1)
    wrong = frame.assign(predicted=[LABELS[i] for i in pred], confidence=probs.max(axis=1))[
        pred != frame["y"].to_numpy()
    ]
    return wrong.sort_values("confidence", ascending=False).head(k)


def styles_to_hold_out(frame: pd.DataFrame) -> list[str]:
    """Mask styles seen on masked crops in every split (nothing to hold out on other data)."""
    masked = frame[frame["label"].isin(MASKED) & ~frame["style"].isin(["none", "unknown", ""])]
    per_split = [set(masked.loc[masked["split"] == s, "style"]) for s in ("train", "val", "test")]
    return sorted(set.intersection(*per_split)) if all(per_split) else []


def style_subset(frame: pd.DataFrame, style: str, keep: bool) -> pd.DataFrame:
    """Bare faces plus the masked crops of ``style`` (keep=True) or of every other style."""
    masked = frame["label"].isin(MASKED)
    of_style = frame["style"] == style
    return frame[~masked | (of_style if keep else ~of_style)]


def _child_run(name: str):
    """Each training its own run nested under the evaluation's, when one is
    active: their per-epoch curves would otherwise draw over each other."""
    import contextlib

    import mlflow

    if mlflow.active_run() is None:
        return contextlib.nullcontext()
    return mlflow.start_run(run_name=name, nested=True, tags={"maskdet.stage": "evaluate.loso"})


def leave_one_style_out(frame: pd.DataFrame, params: Params, main_model, main_size: int) -> pd.DataFrame:
    """Per held-out style: macro-F1 on that style's test crops (with the bare faces)
    of a model trained without the style, beside a control trained the same way
    (same epochs, no fine-tuning) on every style, and beside the main model.
    The first two differ only in whether the style was seen."""
    from maskdet.study.train import frozen_features, train_classifier

    size = params.evaluate.loso_input_size
    cfg = params.model_copy(
        update={
            "model": params.model.model_copy(update={"input_size": size}),
            # Frozen base only, a fresh augmented copy per epoch as before, but the copies'
            # features computed once for all the trainings (study/train.py).
            "train": params.train.model_copy(
                update={
                    "epochs": params.evaluate.loso_epochs,
                    "fine_tune_epochs": 0,
                    "frozen_copies": params.evaluate.loso_epochs,
                }
            ),
        }
    )
    styles = styles_to_hold_out(frame)
    if not styles:
        return pd.DataFrame()
    train_all, val_all = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    # One set of frozen-base features for all the trainings: they differ only in the rows they see.
    features = frozen_features(train_all, val_all, cfg)
    with _child_run("loso-control (every style)"):
        control = train_classifier(train_all, val_all, cfg, features=features).model
    rows = []
    for style in styles:
        train, val = style_subset(train_all, style, keep=False), style_subset(val_all, style, keep=False)
        subset = features and features.subset(train_all.index.isin(train.index), val_all.index.isin(val.index))
        with _child_run(f"loso-without-{style}"):
            held_out = train_classifier(train, val, cfg, features=subset).model
        test = style_subset(frame[frame["split"] == "test"], style, keep=True)
        y = test["y"].to_numpy()
        crops = {s: load_crops(test["file"], s) for s in {size, main_size}}  # read once for the three models
        scores = {
            name: classification_metrics(y, predict_probs(model, crops[s]))
            for name, model, s in (("unseen", held_out, size), ("seen", control, size), ("main", main_model, main_size))
        }
        rows.append(
            {
                "style": style,
                "test_crops": len(test),
                **{f"f1_macro_style_{k}": v["f1_macro"] for k, v in scores.items()},
                **{f"accuracy_style_{k}": v["accuracy"] for k, v in scores.items()},
            }
        )
    return pd.DataFrame(rows)


def curve_tables(y_true: np.ndarray, probs: np.ndarray) -> dict[str, pd.DataFrame]:
    """ROC and PR points per class, and the per-item confusion table, for DVC plots."""
    from sklearn import metrics as skm

    tables = {}
    for k, label in enumerate(LABELS):
        positive = y_true == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, probs[:, k])
        precision, recall, _ = skm.precision_recall_curve(positive, probs[:, k])
        tables[f"roc/{label}"] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
        tables[f"pr/{label}"] = pd.DataFrame({"recall": recall, "precision": precision})
    tables["confusion"] = pd.DataFrame(
        {"actual": [LABELS[i] for i in y_true], "predicted": [LABELS[i] for i in probs.argmax(axis=1)]}
    )
    return tables
