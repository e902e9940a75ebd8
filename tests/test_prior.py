"""The class prior the Predictor answers for (predict/prior.py): Bayes' rule
from the shares a classifier was trained on to ``predict.incorrect_share``."""

import numpy as np
import pytest

from maskdet import INCORRECT, LABELS
from maskdet.errors import InputError
from maskdet.predict.prior import reweight, target_prior, training_prior
from maskdet.study.datasets import class_weights
from maskdet.study.train import loss_prior

THIRDS = np.full(3, 1 / 3)
WITH, WITHOUT = LABELS.index("with_mask"), LABELS.index("without_mask")


def _probs(with_mask, without_mask, incorrect):
    row = np.zeros(3)
    row[[WITH, WITHOUT, INCORRECT]] = with_mask, without_mask, incorrect
    return row[None, :].astype(np.float32)


def test_a_rare_incorrect_class_needs_more_evidence_and_the_other_two_keep_their_ratio():
    doubtful = _probs(0.3, 0.2, 0.5)  # half sure the mask is worn wrong
    moved = reweight(doubtful, THIRDS, 0.03)[0]
    # Bayes by hand: with and without each at 0.485 of the faces instead of a third, incorrect at 0.03.
    by_hand = doubtful[0] * np.where(np.arange(3) == INCORRECT, 0.03, 0.485) * 3
    np.testing.assert_allclose(moved, by_hand / by_hand.sum(), rtol=1e-6)
    assert LABELS[int(moved.argmax())] == "with_mask"
    assert moved[WITH] / moved[WITHOUT] == pytest.approx(0.3 / 0.2)
    assert moved.sum() == pytest.approx(1.0)
    sure = _probs(0.001, 0.001, 0.998)  # a rendered mask under the chin, as the model sees one
    assert LABELS[int(reweight(sure, THIRDS, 0.03)[0].argmax())] == "mask_weared_incorrect"


def test_the_training_share_or_none_leaves_the_probabilities_as_they_are():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=20).astype(np.float32)
    np.testing.assert_allclose(reweight(probs, THIRDS, 1 / 3), probs, rtol=1e-6)
    assert reweight(probs, THIRDS, None) is probs
    assert reweight(np.zeros((0, 3), np.float32), THIRDS, 0.03).shape == (0, 3)


def test_a_model_trained_on_the_rare_share_is_not_discounted_twice():
    """Trained without class weights on a set with 3 % incorrect masks, the
    classifier already answers for 3 %: the default share changes nothing."""
    labels = np.repeat([WITH, WITHOUT, INCORRECT], [79, 18, 3])
    trained = training_prior({"class_prior": {LABELS[k]: v for k, v in loss_prior(labels, None).items()}})
    np.testing.assert_allclose(trained[[WITH, WITHOUT, INCORRECT]], [0.79, 0.18, 0.03])
    np.testing.assert_allclose(target_prior(trained, 0.03), trained, atol=1e-12)
    probs = _probs(0.3, 0.2, 0.5)
    np.testing.assert_allclose(reweight(probs, trained, 0.03), probs, rtol=1e-6)


def test_the_loss_prior_is_a_third_each_under_balancing_weights_and_models_before_it_count_as_balanced():
    labels = np.repeat([WITH, WITHOUT, INCORRECT], [50, 30, 20])
    np.testing.assert_allclose(list(loss_prior(labels, class_weights(labels)).values()), THIRDS)
    np.testing.assert_allclose(list(loss_prior(labels, None).values()), np.bincount(labels) / 100)
    np.testing.assert_allclose(training_prior({}), THIRDS)
    with pytest.raises(InputError, match="class_prior .*no class has a share above 0"):
        training_prior({"class_prior": {"with_mask": 0.0}})
