import numpy as np
import pytest
from scipy.special import softmax

from emolive.calibration import expected_calibration_error, fit_temperature


def _overconfident(n=4000, seed=0):
    """Labels drawn from softmax(z); the model reports 3*z: calibrated at T = 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.0, (n, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(z, axis=1)])
    return 3.0 * z, labels


def test_fit_recovers_the_true_temperature_and_lowers_ece():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(softmax(logits, axis=1), labels)
    after = expected_calibration_error(softmax(logits / t, axis=1), labels)
    assert after < before / 2


def test_ece_of_perfectly_calibrated_and_wrong_predictions():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0
    assert expected_calibration_error(probs, np.array([1, 0])) == pytest.approx(1.0)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 2)), np.zeros(2, int))
