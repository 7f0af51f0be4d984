"""Temperature scaling on top of a stored temperature: the module's promise that fitting on log(p)
and storing T0 * T is temperature scaling of the original logits."""

from __future__ import annotations

import numpy as np
import pytest

from tl_desktop.engine.evaluation import calibration


def _overconfident(n: int = 300, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.0
    logits *= 3.0  # three times too sharp: the best temperature is near 3
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), labels


@pytest.mark.parametrize("stored", [0.5, 1.0, 4.0])
def test_refitting_on_top_of_a_stored_temperature_finds_the_same_temperature(stored):
    probs, labels = _overconfident()
    best = calibration.fit_temperature(probs, labels)
    assert 2.0 < best < 4.5
    with_stored = calibration.apply_temperature(probs, stored)  # what a model with T0 = stored predicts
    assert stored * calibration.fit_temperature(with_stored, labels) == pytest.approx(best, rel=1e-3)


def test_refitting_a_separable_validation_set_keeps_the_temperature_in_range():
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    labels = np.array([0, 1, 0, 1])  # every image right: the loss keeps falling as T shrinks
    low, high = calibration.TEMPERATURE_RANGE
    first = calibration.fit_temperature(probs, labels)
    assert first == low
    second = first * calibration.fit_temperature(calibration.apply_temperature(probs, first), labels, stored=first)
    assert low <= second <= high
