"""The class prior the Predictor answers for.

A classifier's probabilities carry the class shares it was trained on. The
default training weights the classes to a third each, but incorrectly worn
masks are far rarer among the faces people point a camera at: 123 of the 4,072
faces of the public Kaggle face-mask set (853 photos) are
``mask_weared_incorrect``, 3 %. ``predict.incorrect_share`` names the share the
Predictor expects, and Bayes' rule moves the probabilities to it (Saerens,
Latinne and Decaestecker, "Adjusting the outputs of a classifier to new a
priori probabilities", Neural Computation 14(1), 2002): each class's
probability is multiplied by its new share over its training share, and the
row is normalised again. ``with_mask`` and ``without_mask`` keep the ratio they
were trained with and share the rest.

Why it matters here: the incorrect class is the most artificial of the three
(every example is a rendered mask pulled down), and on real photos nearly every
mistake is a call of it (docs/results/real-photos.md).
"""

from __future__ import annotations

import numpy as np

from maskdet import INCORRECT, LABELS
from maskdet.errors import InputError


def training_prior(metadata: dict) -> np.ndarray:
    """The class shares a model was trained for, in ``LABELS`` order: ``class_prior``
    in its metadata; a third each for models trained before it was recorded
    (they all weighted the classes to balance them)."""
    recorded = metadata.get("class_prior")
    if not recorded:
        return np.full(len(LABELS), 1.0 / len(LABELS))
    prior = np.array([float(recorded.get(label, 0.0)) for label in LABELS])
    if prior.sum() <= 0:
        raise InputError(f"metadata.json class_prior {recorded!r}: no class has a share above 0")
    return prior / prior.sum()


def target_prior(trained: np.ndarray, incorrect_share: float) -> np.ndarray:
    """``trained`` with the incorrect class at ``incorrect_share`` and the other two
    scaled to share the rest."""
    rest = np.delete(trained, INCORRECT)
    return np.insert(rest / rest.sum() * (1.0 - incorrect_share), INCORRECT, incorrect_share)


def reweight(probs: np.ndarray, trained: np.ndarray, incorrect_share: float | None) -> np.ndarray:
    """``probs`` (n, classes) moved from the ``trained`` prior to one with
    ``incorrect_share`` of incorrectly worn masks; ``None`` leaves them as they are."""
    if incorrect_share is None or len(probs) == 0:
        return probs
    ratio = np.divide(target_prior(trained, incorrect_share), trained, out=np.zeros_like(trained), where=trained > 0)
    moved = np.asarray(probs, np.float64) * ratio
    return (moved / np.maximum(moved.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)).astype(np.float32)
