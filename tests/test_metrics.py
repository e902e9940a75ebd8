import numpy as np
import pytest
from sklearn import metrics as skm

from maskdet.study.metrics import brier_score, classification_metrics, expected_calibration_error, reliability_bins


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
