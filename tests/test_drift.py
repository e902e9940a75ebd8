"""The served model's class-share and input-drift checks (maskdet.predict.drift)
and their round trip through Prometheus text (maskdet.predict.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from maskdet import INCORRECT, LABELS
from maskdet.predict import drift

# Three classes as three Gaussian clouds in two dimensions: a classifier that
# knows the clouds computes exact posteriors under whatever prior it assumes.
MEANS = np.array([[0.0, 0.0], [2.5, 0.0], [1.2, 2.0]])
ASSUMED = np.array([0.75, 0.22, 0.03])
TRAINED_BRIGHTNESS = drift.profile(np.linspace(60, 180, 500))


def _posteriors(true_shares, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(LABELS), size=n, p=true_shares)
    x = MEANS[y] + rng.normal(size=(n, 2))
    likelihood = np.exp(-0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1))
    posterior = likelihood * ASSUMED
    return posterior / posterior.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_shares", [[0.77, 0.20, 0.03], [0.60, 0.20, 0.20], [0.30, 0.60, 0.10]])
def test_em_recovers_known_class_shares_from_posteriors_alone(true_shares):
    probs = _posteriors(true_shares, 4000, seed=1)
    estimated = drift.estimate_shares(probs, ASSUMED)
    assert np.abs(estimated - true_shares).max() < 0.02, estimated
    # the answers' own argmax shares are further off: the point of the estimate
    predicted = np.bincount(probs.argmax(1), minlength=3) / len(probs)
    assert np.abs(predicted - true_shares).max() > np.abs(estimated - true_shares).max()
    low, high = drift.share_interval(probs, ASSUMED, estimated)
    assert np.all(low <= estimated) and np.all(estimated <= high) and np.all(high - low < 0.1)


def _window(true_shares, n=2000, seed=2, width=60.0, profile=None) -> drift.FaceWindow:
    """A window of ``n`` faces ``width`` wide, as bright as the training crops of ``TRAINED_BRIGHTNESS``."""
    window = drift.FaceWindow(ASSUMED, profile)
    brightness = np.random.default_rng(seed).uniform(60, 180, n)
    for row, value in zip(_posteriors(true_shares, n, seed), brightness):
        window.add(row, width, value)
    return window


def test_the_drift_line_fires_at_20_percent_incorrect_and_stays_quiet_at_3():
    lines, drifted = drift.drift_lines(_window([0.60, 0.20, 0.20]).snapshot())
    assert drifted and lines[0].startswith("DRIFT") and "predict.incorrect_share: 0.2" in lines[0]
    lines, drifted = drift.drift_lines(_window([0.75, 0.22, 0.03]).snapshot())
    assert not drifted and lines[0].startswith("ok") and "assumes 0.030" in lines[0]


def test_too_few_faces_are_not_judged():
    lines, drifted = drift.drift_lines(_window([0.2, 0.2, 0.6], n=50).snapshot())
    assert not drifted and "50 faces" in lines[0] and "too few" in lines[0]


def test_faces_smaller_than_the_training_crops_are_input_drift():
    """Every rendered training crop is as wide as the classifier's input: faces that
    wide show no drift; street-photo faces of 20 px do."""
    trained = drift.profile([drift.face_width(224 / 1.3, 160)] * 500)
    assert trained["edges"] == [160.0] and trained["shares"] == [0.0, 1.0]
    assert drift.psi([160.0] * 300, trained) == pytest.approx(0.0, abs=1e-6)
    assert drift.psi([20.0] * 300, trained) > drift.PSI_SHIFTED
    profile = {"face_width": trained, "brightness": TRAINED_BRIGHTNESS}
    _, drifted = drift.drift_lines(_window([0.75, 0.22, 0.03], width=160.0, profile=profile).snapshot())
    assert not drifted
    lines, drifted = drift.drift_lines(_window([0.75, 0.22, 0.03], width=20.0, profile=profile).snapshot())
    assert drifted and any(line.startswith("DRIFT: face_width") for line in lines)


def test_a_sample_of_the_training_distribution_is_not_drift():
    rng = np.random.default_rng(3)
    trained = drift.profile(rng.normal(120, 20, 5000))
    assert len(trained["edges"]) == 9 and sum(trained["shares"]) == pytest.approx(1.0)
    assert drift.psi(rng.normal(120, 20, 2000), trained) < 0.05
    assert drift.psi(rng.normal(60, 20, 2000), trained) > drift.PSI_SHIFTED


def test_the_gauges_read_back_from_the_prometheus_text_as_they_were():
    """What `maskdet monitor` reads from /metrics is the window the server holds."""
    from maskdet.predict.metrics import Monitor, read_snapshot
    from maskdet.predict.predictor import Face, Prediction

    monitor = Monitor(ASSUMED, {"brightness": drift.profile(np.linspace(60, 180, 500))})
    probs = _posteriors([0.6, 0.2, 0.2], 300, seed=4)
    for i, row in enumerate(probs):
        face = Face((0, 0, 30, 30), 0.9, LABELS[int(row.argmax())], dict(zip(LABELS, row)), brightness=100.0)
        monitor.observe(Prediction(f"{i}.jpg", faces=[face]))
    monitor.observe(Prediction("bad.jpg", error="truncated: bad.jpg ends early"))
    text = monitor.exposition()[0].decode()
    assert "maskdet_images_total 301.0" in text and 'maskdet_image_errors_total{reason="truncated"} 1.0' in text
    snap, direct = read_snapshot(text), monitor.window.snapshot()
    assert snap.faces == 300
    assert snap.estimated[INCORRECT] == pytest.approx(direct.estimated[INCORRECT])
    assert snap.assumed == pytest.approx(ASSUMED)
    assert snap.psi["brightness"] == pytest.approx(direct.psi["brightness"])
    assert drift.drift_lines(snap)[1]
