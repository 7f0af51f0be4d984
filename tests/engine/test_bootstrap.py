"""Bootstrap intervals: they are the level they say they are, and the seed alone decides them."""

from __future__ import annotations

import numpy as np
import pytest

from tl_desktop.engine.evaluation.bootstrap import interval, resample_weights
from tl_desktop.engine.evaluation.evaluate import Predictions, compute_metrics


def _coin_flip_predictions(n: int = 400) -> Predictions:
    """Two balanced classes, exactly half of the images right: accuracy 0.5 with a known spread."""
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    correct = np.zeros(n, bool)
    correct[rng.permutation(n)[: n // 2]] = True
    predicted = np.where(correct, labels, 1 - labels)
    confidence = 0.5 + 0.5 * rng.random(n)  # a different score for every image: AUCs vary continuously
    probs = np.empty((n, 2))
    probs[np.arange(n), predicted] = confidence
    probs[np.arange(n), 1 - predicted] = 1 - confidence
    return Predictions([f"{i}.png" for i in range(n)], labels, probs, ["a", "b"])


def test_interval_cuts_2_5_percent_from_each_tail():
    values = np.linspace(0.0, 1.0, 1001)  # percentiles of this are the percentages themselves
    ci = interval(values)
    assert ci.level == 0.95
    assert (ci.low, ci.high) == pytest.approx((0.025, 0.975))
    ci90 = interval(values, level=0.9)
    assert (ci90.low, ci90.high, ci90.level) == pytest.approx((0.05, 0.95, 0.9))


def test_interval_ignores_undefined_resamples_and_is_empty_without_any():
    values = np.r_[np.linspace(0.0, 1.0, 1001), [np.nan] * 500]
    assert (interval(values).low, interval(values).high) == pytest.approx((0.025, 0.975))
    empty = interval(np.array([np.nan, np.nan]))
    assert (empty.low, empty.high, empty.level) == (None, None, 0.95)


@pytest.mark.parametrize("key", ["accuracy", "balanced_accuracy", "macro_f1"])
def test_intervals_are_as_wide_as_a_95_percent_binomial_interval(key):
    """400 images, half right: the normal approximation says 0.5 +- 1.96 * 0.025, width 0.098
    (a 90% interval would be 0.082 wide). Accuracy gets Wilson's interval, the balanced accuracy and
    macro F1 the percentile bootstrap: both must be 95% wide."""
    result = compute_metrics(_coin_flip_predictions(), n_bootstrap=2000, seed=0)
    ci = result.intervals[key]
    assert ci.level == 0.95
    assert 0.09 < ci.high - ci.low < 0.106, (key, ci)
    assert ci.low < 0.5 < ci.high
    assert abs((ci.low + ci.high) / 2 - 0.5) < 0.01


def test_resamples_depend_on_the_seed_only():
    first = np.concatenate(list(resample_weights(50, 450, seed=7)))
    again = np.concatenate(list(resample_weights(50, 450, seed=7)))
    other = np.concatenate(list(resample_weights(50, 450, seed=8)))
    assert first.shape == (450, 50)
    assert (first.sum(axis=1) == 50).all()  # every resample draws n images
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_every_interval_is_reproduced_by_the_same_seed():
    """Compared on every headline and per-class interval: AUC bounds are continuous, so an unseeded
    bootstrap cannot match them by chance (accuracy bounds, on a grid of k/n, often would)."""
    predictions = _coin_flip_predictions(120)
    first = compute_metrics(predictions, n_bootstrap=300, seed=11).to_dict()
    again = compute_metrics(predictions, n_bootstrap=300, seed=11).to_dict()
    other = compute_metrics(predictions, n_bootstrap=300, seed=12).to_dict()
    assert first["intervals"] == again["intervals"] and first["class_intervals"] == again["class_intervals"]
    assert first["intervals"] != other["intervals"]
    assert first["seed"] == 11 and first["n_bootstrap"] == 300
