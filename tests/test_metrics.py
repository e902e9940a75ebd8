import numpy as np
import pytest
from sklearn import metrics as skm

from maskdet.study.metrics import (
    bootstrap_by_group,
    brier_score,
    classification_metrics,
    expected_calibration_error,
    group_scores,
    reliability_bins,
)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(0, 1, (300, 3))
    logits[np.arange(300), y] += 1.5  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


def test_brier_and_ece_by_hand():
    y = np.array([0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    # (0.04 + 0.01 + 0.01 + 0.36 + 0.49 + 0.01) / 2
    assert brier_score(y, probs) == pytest.approx(0.46)
    # confidences 0.8 (right) and 0.6 (wrong) in two bins: (|1 - 0.8| + |0 - 0.6|) / 2
    assert expected_calibration_error(y, probs, bins=10) == pytest.approx(0.4)
    bins = reliability_bins(y, probs, bins=10)
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 1, 0, 1, 0, 0]


def test_perfectly_calibrated_bins_give_zero_ece():
    y = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.8, 0.2, 0.0], (10, 1))
    assert expected_calibration_error(y, probs) == pytest.approx(0.0)


def test_every_metric_matches_scikit_learn(predictions):
    y, probs = predictions
    pred = probs.argmax(1)
    m = classification_metrics(y, probs)
    assert len(m) >= 30
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall_without_mask"] == pytest.approx(skm.recall_score(y, pred, average=None)[1])
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs))
    assert m["roc_auc_ovr_macro"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    assert m["pr_auc_mask_weared_incorrect"] == pytest.approx(skm.average_precision_score(y == 2, probs[:, 2]))
    assert m["support_with_mask"] == (y == 0).sum()
    assert m["confidence_mean_correct"] > m["confidence_mean_wrong"]


def test_absent_class_gives_nan_not_a_number_made_up():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.4, 0.5, 0.1]])
    m = classification_metrics(y, probs)
    assert np.isnan(m["roc_auc_mask_weared_incorrect"]) and np.isnan(m["roc_auc_ovr_macro"])
    assert m["roc_auc_with_mask"] == pytest.approx(1.0)


def _one_hot(pred, k=3):
    return np.eye(k)[np.asarray(pred)]


def test_group_scores_give_accuracy_and_recall_of_the_classes_held_never_an_f1():
    # a group of bare faces only (class 1): 39 of 40 right; no mask class to score
    y = np.ones(40, int)
    pred = np.r_[np.ones(39, int), 0]
    scores = group_scores(y, _one_hot(pred))
    assert scores["accuracy"] == pytest.approx(39 / 40) and scores["recall_without_mask"] == pytest.approx(39 / 40)
    assert np.isnan(scores["recall_with_mask"]) and np.isnan(scores["recall_mask_weared_incorrect"])
    assert not any("f1" in k for k in scores)


def test_bootstrap_over_people_resamples_whole_people():
    # four people of 60 crops, one class each of three; person d is wrong on 30 of their crops
    people = np.repeat(list("abcd"), 60)
    y = np.tile(np.repeat([0, 1, 2], 20), 4)
    pred = y.copy()
    pred[180:210] = (y[180:210] + 1) % 3
    found = bootstrap_by_group(y, _one_hot(pred), people, draws=500)
    point = classification_metrics(y, _one_hot(pred))
    assert found["groups"] == 4
    for name in ("accuracy", "f1_macro", "recall_with_mask", "recall_without_mask", "recall_mask_weared_incorrect"):
        low, high = found[name]
        assert low <= point[name] <= high, name
    low, high = found["accuracy"]
    # resampling people: a draw without person d is perfect, one with d twice or more is at 0.75 or below
    assert high == 1.0 and low <= 0.75
    # resampling single crops would give about +-0.04 around 0.875: people make it far wider
    crops = bootstrap_by_group(y, _one_hot(pred), np.arange(len(y)), draws=500)["accuracy"]
    assert crops[1] - crops[0] < 0.15 < high - low


def test_bootstrap_says_nothing_with_one_group_and_collapses_without_mistakes():
    y = np.repeat([0, 1, 2], 10)
    assert bootstrap_by_group(y, _one_hot(y), np.zeros(30)) == {"groups": 1}
    perfect = bootstrap_by_group(y, _one_hot(y), np.repeat([0, 1, 2], 10) * 0 + np.arange(30) % 3, draws=50)
    assert perfect["accuracy"] == [1.0, 1.0]
