"""Metrics against hand-computed cases, bootstrap intervals and temperature scaling."""

import json

import numpy as np
import pytest

from tl_desktop.engine.evaluation import calibration, metrics
from tl_desktop.engine.evaluation.evaluate import (
    EvaluationError,
    Predictions,
    compute_metrics,
    misclassified,
    most_confused,
    per_class_csv,
)

CLASSES = ["a", "b", "c", "d"]


def _one_hot_probs(predicted, k, confidence=0.7):
    probs = np.full((len(predicted), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def _hand_case():
    # c is never predicted; d has no samples.
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 0, 1]
    return Predictions([f"img{i}.png" for i in range(6)], labels, _one_hot_probs(predicted, 4), CLASSES)


def test_hand_computed_per_class_metrics():
    m = compute_metrics(_hand_case(), n_bootstrap=0)
    assert m.confusion.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    a, b, c, d = m.per_class
    assert (a.precision, a.recall, a.specificity, a.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 2 / 3))
    assert (b.precision, b.recall, b.specificity, b.f1) == pytest.approx((1 / 3, 1 / 2, 1 / 2, 0.4))
    assert c.precision is None and c.recall == 0.0 and c.specificity == 1.0 and c.f1 is None
    assert d.support == 0 and d.precision is None and d.recall is None and d.f1 is None
    assert d.specificity == 1.0
    assert m.accuracy == pytest.approx(0.5)
    assert m.balanced_accuracy == pytest.approx(7 / 18)
    assert m.absent_classes == ["d"]
    assert m.macro["precision"] == pytest.approx(1 / 3)
    assert m.macro["recall"] == pytest.approx(7 / 18)
    assert m.macro["f1"] == pytest.approx((2 / 3 + 0.4) / 3)
    assert m.weighted["recall"] == pytest.approx(0.5)
    assert m.weighted["precision"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 3) / 6)
    assert d.auc is None and m.roc[3].auc is None
    json.dumps(m.to_dict())  # JSON-safe, undefined values are null
    assert "nan" not in json.dumps(m.to_dict()).lower()


def test_undefined_values_survive_bootstrap_and_csv():
    m = compute_metrics(_hand_case(), n_bootstrap=200, seed=1)
    assert m.class_intervals["d"]["recall"].low is None
    csv_text = per_class_csv(m)
    assert csv_text.splitlines()[4].startswith("d,0,0,,")
    assert "nan" not in json.dumps(m.to_dict()).lower()


def test_empty_predictions_do_not_crash():
    m = compute_metrics(Predictions([], [], np.zeros((0, 2)), ["x", "y"]), n_bootstrap=100)
    assert m.accuracy is None and m.balanced_accuracy is None and m.ece is None and m.intervals == {}


def test_auc_matches_pairwise_definition_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.2, 0.8])
    positives = np.array([1, 1, 0, 1, 0, 0], bool)
    pairs = [(s_p > s_n) + 0.5 * (s_p == s_n) for s_p in scores[positives] for s_n in scores[~positives]]
    assert metrics.auc_score(scores, positives) == pytest.approx(np.mean(pairs))
    fpr, tpr, _ = metrics.roc_curve(scores, positives)
    assert np.trapezoid(tpr, fpr) == pytest.approx(np.mean(pairs))


def test_binary_threshold_metrics():
    classes = ["healthy", "sick"]
    p_sick = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.1])
    labels = [1, 1, 1, 0, 0, 0]
    preds = Predictions(list("abcdef"), labels, np.stack([1 - p_sick, p_sick], 1), classes)
    m = compute_metrics(preds, positive_class="sick", threshold=0.5, n_bootstrap=0)
    assert (m.binary.tp, m.binary.fn, m.binary.fp, m.binary.tn) == (2, 1, 1, 2)
    assert (m.binary.sensitivity, m.binary.specificity, m.binary.ppv, m.binary.npv) == pytest.approx((2 / 3,) * 4)
    low = compute_metrics(preds, positive_class="sick", threshold=0.3, n_bootstrap=0)
    assert low.binary.sensitivity == 1.0 and low.binary.specificity == pytest.approx(2 / 3)
    flipped = compute_metrics(preds, positive_class="healthy", threshold=0.5, n_bootstrap=0)
    assert flipped.binary.positive_class == "healthy" and flipped.binary.tp == 2
    with pytest.raises(EvaluationError, match="not one of"):
        compute_metrics(preds, positive_class="ill", threshold=0.5)
    with pytest.raises(EvaluationError, match="exactly two classes"):
        compute_metrics(_hand_case(), positive_class="a", threshold=0.5)


def _noisy_predictions(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.5
    # With a shift of 1.5 and unit noise the true posterior is softmax(1.5 * logits): calibrated.
    probs = np.exp(1.5 * logits) / np.exp(1.5 * logits).sum(1, keepdims=True)
    return Predictions([str(i) for i in range(n)], labels, probs, ["x", "y", "z"])


def test_bootstrap_intervals_contain_estimate_shrink_and_are_seeded():
    small, large = _noisy_predictions(60, 0), _noisy_predictions(2000, 0)
    widths = []
    for preds in (small, large):
        m = compute_metrics(preds, n_bootstrap=500, seed=3)
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
            ci = m.intervals[key]
            assert ci.low <= m.headline()[key] <= ci.high, key
        for row in m.per_class:
            ci = m.class_intervals[row.name]["recall"]
            assert ci.low <= row.recall <= ci.high
        widths.append(m.intervals["accuracy"].high - m.intervals["accuracy"].low)
    assert widths[1] < widths[0] / 3
    # Every interval, not just accuracy: accuracy bounds sit on a grid of k/60 and an unseeded
    # bootstrap often lands on the same ones; continuous AUC bounds never match by chance.
    again = compute_metrics(small, n_bootstrap=500, seed=3).to_dict()
    same = compute_metrics(small, n_bootstrap=500, seed=3).to_dict()
    assert (again["intervals"], again["class_intervals"]) == (same["intervals"], same["class_intervals"])
    other = compute_metrics(small, n_bootstrap=500, seed=4).to_dict()
    assert other["intervals"]["macro_auc"] != again["intervals"]["macro_auc"]
    assert other["class_intervals"] != again["class_intervals"]


def test_ece_and_reliability_hand_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 0])
    bins = calibration.reliability_bins(probs, labels, n_bins=10)
    assert bins["count"][8] == 2 and bins["accuracy"][8] == 0.5 and bins["confidence"][8] == pytest.approx(0.9)
    assert bins["count"][5] == 2 and bins["accuracy"][5] == 0.5
    assert bins["accuracy"][0] is None
    assert calibration.expected_calibration_error(probs, labels, 10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_temperature_scaling_reduces_nll_of_overconfident_model():
    preds = _noisy_predictions(800, 1)
    overconfident = calibration.apply_temperature(preds.probs, 0.25)
    t = calibration.fit_temperature(overconfident, preds.labels)
    assert t == pytest.approx(4.0, rel=0.2)
    rescaled = calibration.apply_temperature(overconfident, t)
    assert calibration.log_loss(rescaled, preds.labels) < calibration.log_loss(overconfident, preds.labels) - 0.1
    assert calibration.expected_calibration_error(rescaled, preds.labels) < \
        calibration.expected_calibration_error(overconfident, preds.labels)
    assert (rescaled.argmax(1) == overconfident.argmax(1)).all()


def test_error_analysis_orders_by_confidence():
    labels = [0, 0, 1, 1, 2]
    probs = np.array([[0.2, 0.8, 0.0], [0.4, 0.6, 0.0], [0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.3, 0.7, 0.0]])
    preds = Predictions(list("pqrst"), labels, probs, ["a", "b", "c"])
    wrong = misclassified(preds)
    assert [m.path for m in wrong] == ["r", "p", "t", "q"]
    assert [m.path for m in misclassified(preds, true_class="a", predicted_class="b")] == ["p", "q"]
    assert most_confused(preds, 2) == [("a", "b", 2), ("b", "a", 1)]


def test_temperature_of_a_useless_model_stays_bounded():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3) * 0.3, size=200)
    labels = rng.integers(0, 3, 200)
    t = calibration.fit_temperature(probs, labels)
    assert t == calibration.TEMPERATURE_RANGE[1]
    assert calibration.log_loss(calibration.apply_temperature(probs, t), labels) < calibration.log_loss(probs, labels)
