"""Intervals that a clinician can defend: Wilson for proportions, DeLong (and its fallback) for AUC,
a bootstrap that says 'not estimable' instead of printing a point, and a cluster bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tl_desktop.engine.evaluation.bootstrap import (
    CLUSTER,
    PERCENTILE,
    bootstrap_interval,
    bootstrap_intervals,
    resample_weights,
)
from tl_desktop.engine.evaluation.evaluate import Predictions, compute_metrics
from tl_desktop.engine.evaluation.files import (
    load_evaluation,
    save_evaluation,
    saved_intervals,
)
from tl_desktop.engine.evaluation.intervals import (
    DELONG,
    HANLEY_MCNEIL,
    WILSON,
    _components,
    _hanley_mcneil_variance,
    auc_interval,
    wilson_interval,
)

Z = 1.959963984540054


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927), written out: the textbook formula, independent of scipy."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (15, 15, 0.7961, 1.0),      # the case: 15 of 15 correct
    (0, 15, 0.0, 0.2039),
    (10, 10, 0.7225, 1.0),
    (0, 10, 0.0, 0.2775),
    (1, 1, 0.2065, 1.0),
    (200, 400, 0.4512, 0.5488),
])
def test_wilson_interval_matches_known_values(k, n, low, high):
    ci = wilson_interval(k, n)
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=5e-5)
    assert (ci.low, ci.high) == pytest.approx(_wilson_by_hand(k, n), abs=1e-9)
    assert ci.value == k / n and ci.method == WILSON and ci.level == 0.95
    assert ci.low < ci.high  # never a point, not even at 0 of n or n of n


def test_wilson_interval_of_nothing_is_undefined():
    ci = wilson_interval(0, 0)
    assert (ci.value, ci.low, ci.high) == (None, None, None) and not ci.estimable


def test_wilson_interval_at_90_percent_is_narrower():
    wide, narrow = wilson_interval(15, 15), wilson_interval(15, 15, level=0.9)
    assert narrow.level == 0.9 and wide.low < narrow.low < 1.0


# ----- AUC ---------------------------------------------------------------------------------------

def test_delong_components_match_the_pairwise_definition():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(40), 1)  # rounded: plenty of ties
    positives = rng.random(40) < 0.4
    x, y = scores[positives], scores[~positives]
    pair = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = _components(scores, positives)
    np.testing.assert_allclose(v10, pair.mean(axis=1))
    np.testing.assert_allclose(v01, pair.mean(axis=0))
    ci = auc_interval(scores, positives)
    assert ci.method == DELONG and ci.value == pytest.approx(pair.mean())
    variance = v10.var(ddof=1) / x.size + v01.var(ddof=1) / y.size
    logit = math.log(ci.value / (1 - ci.value))
    half = Z * math.sqrt(variance) / (ci.value * (1 - ci.value))
    assert (ci.low, ci.high) == pytest.approx((1 / (1 + math.exp(half - logit)), 1 / (1 + math.exp(-logit - half))))


def test_delong_interval_covers_the_true_auc_95_percent_of_the_time():
    """Binormal scores, shift 1.19: true AUC = Phi(1.19 / sqrt 2) = 0.800."""
    rng = np.random.default_rng(0)
    true_auc, hits, runs = 0.7999, 0, 400
    for _ in range(runs):
        scores = np.r_[rng.normal(1.19, 1, 40), rng.normal(0, 1, 40)]
        ci = auc_interval(scores, np.r_[np.ones(40, bool), np.zeros(40, bool)])
        hits += ci.low <= true_auc <= ci.high
    assert 0.92 <= hits / runs <= 0.98


def test_auc_interval_of_a_perfect_separator_is_not_a_point():
    positives = np.r_[np.ones(15, bool), np.zeros(15, bool)]
    scores = np.r_[np.linspace(0.7, 0.99, 15), np.linspace(0.01, 0.3, 15)]
    ci = auc_interval(scores, positives)
    assert ci.value == 1.0 and ci.high == 1.0 and 0.8 < ci.low < 0.95
    assert ci.method == HANLEY_MCNEIL and "separated" in ci.note
    # The lower bound is where the score equation holds: (1 - t)^2 = z^2 Var_HM(t).
    assert (1 - ci.low) ** 2 == pytest.approx(Z * Z * _hanley_mcneil_variance(ci.low, 15, 15))
    worst = auc_interval(-scores, positives)  # every positive scored below every negative
    assert worst.value == 0.0 and worst.low == 0.0 and worst.high == pytest.approx(1 - ci.low)
    fewer = auc_interval(scores[10:20], positives[10:20])  # 5 against 5: wider
    assert fewer.low < ci.low


def test_auc_interval_with_every_score_tied_or_one_image_on_a_side():
    tied = auc_interval(np.full(20, 0.5), np.arange(20) < 10)
    assert tied.value == 0.5 and tied.low < 0.5 < tied.high and tied.method == HANLEY_MCNEIL
    one = auc_interval(np.array([0.9, 0.1, 0.2, 0.3]), np.array([True, False, False, False]))
    assert one.value == 1.0 and one.low < 1.0 and "fewer than two" in one.note
    none = auc_interval(np.array([0.9, 0.1]), np.array([False, False]))
    assert none.value is None and not none.estimable


# ----- bootstrap ---------------------------------------------------------------------------------

def test_bootstrap_interval_is_not_estimable_rather_than_a_point():
    same = bootstrap_interval(np.ones(1000), 1.0)
    assert not same.estimable and same.value == 1.0 and same.note == "every resample gave the same value"
    sparse = bootstrap_interval(np.r_[np.linspace(0, 1, 800), [np.nan] * 200], 0.5)
    assert not sparse.estimable and "800 of 1000" in sparse.note
    few = bootstrap_interval(np.linspace(0, 1, 30), 0.5)
    assert not few.estimable and "too few" in few.note  # 30 resamples cannot place a 2.5% tail
    outside = bootstrap_interval(np.linspace(0.6, 0.9, 1000), 0.3)
    assert not outside.estimable and "surround" in outside.note
    fine = bootstrap_interval(np.linspace(0, 1, 1001), 0.5)
    assert (fine.low, fine.high, fine.method) == (pytest.approx(0.025), pytest.approx(0.975), PERCENTILE)


def _one_group_per_class() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class a: 20 images, 10 right; class b: 20 images, all right. Balanced accuracy 0.75."""
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    predicted = labels.copy()
    predicted[:10] = 1
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    return labels, predicted, probs


def test_cluster_bootstrap_draws_whole_groups():
    labels, _, _ = _one_group_per_class()
    weights = np.concatenate(list(resample_weights(40, 300, seed=5, groups=labels)))
    assert weights.shape == (300, 40)
    for group in (0, 1):
        members = weights[:, labels == group]
        assert (members == members[:, :1]).all()  # every image of a group appears as often as its group
    assert set(np.unique(weights)) <= {0.0, 1.0, 2.0}  # two groups drawn twice with replacement
    assert (weights.sum(axis=1) == 40).all()


def test_cluster_bootstrap_with_one_group_per_class_resamples_classes():
    """Each resample holds class a twice, a and b, or b twice: balanced accuracy 0.5, 0.75 or 1.0,
    so the interval spans 0.5-1.0; resampling images instead gives a much narrower one."""
    labels, predicted, probs = _one_group_per_class()
    args = (labels, predicted, probs, ["a", "b"], None, 1000, 3)
    clustered, per_class = bootstrap_intervals(*args, groups=labels)
    ci = clustered["balanced_accuracy"]
    assert (ci.low, ci.high, ci.value, ci.method) == (0.5, 1.0, 0.75, CLUSTER)
    # Within a class every image moves together, so its recall never changes: no interval.
    assert not per_class["a"]["recall"].estimable and per_class["a"]["recall"].value == 0.5
    images, _ = bootstrap_intervals(*args)
    assert images["balanced_accuracy"].method == PERCENTILE
    assert images["balanced_accuracy"].high - images["balanced_accuracy"].low < 0.3


def test_one_group_per_image_is_the_image_bootstrap():
    labels, predicted, probs = _one_group_per_class()
    args = (labels, predicted, probs, ["a", "b"], None, 400, 9)
    images, per_image = bootstrap_intervals(*args)
    groups, per_group = bootstrap_intervals(*args, groups=[f"patient-{i}" for i in range(40)])
    assert {k: (v.low, v.high) for k, v in images.items()} == {k: (v.low, v.high) for k, v in groups.items()}
    assert per_image["b"]["f1"].low == per_group["b"]["f1"].low


def test_group_ids_must_match_the_images():
    with pytest.raises(ValueError, match="3 group ids for 4 images"):
        next(resample_weights(4, 10, seed=0, groups=[1, 2, 3]))


# ----- compute_metrics ---------------------------------------------------------------------------

def _perfect(n_a: int = 15, n_b: int = 15) -> Predictions:
    labels = np.r_[np.zeros(n_a, int), np.ones(n_b, int)]
    sure = np.r_[np.linspace(0.7, 0.99, n_a), np.linspace(0.7, 0.99, n_b)]
    probs = np.where(labels[:, None] == np.arange(2), sure[:, None], 1 - sure[:, None])
    return Predictions([f"{i}.png" for i in range(labels.size)], labels, probs, ["a", "b"])


def test_fifteen_of_fifteen_gets_a_wilson_interval_not_a_point():
    m = compute_metrics(_perfect(), n_bootstrap=500, seed=0)
    recall = m.class_intervals["a"]["recall"]
    assert (recall.low, recall.high, recall.value, recall.method) == (pytest.approx(0.7961, abs=5e-5), 1.0, 1.0,
                                                                       WILSON)
    accuracy = m.intervals["accuracy"]
    assert accuracy.method == WILSON and accuracy.low == pytest.approx(_wilson_by_hand(30, 30)[0])
    auc = m.class_intervals["a"]["auc"]
    assert auc.method == HANLEY_MCNEIL and auc.low < 1.0 == auc.high
    assert m.intervals["macro_auc"].low == auc.low  # two classes: the macro AUC is either class's AUC
    balanced = m.intervals["balanced_accuracy"]  # bootstrap: every resample is perfect
    assert balanced.value == 1.0 and not balanced.estimable and balanced.method == PERCENTILE


def test_binary_intervals_are_wilson_of_the_right_counts():
    m = compute_metrics(_perfect(12, 20), positive_class="b", threshold=0.9, n_bootstrap=200)
    b = m.binary
    for key, (k, n) in {"sensitivity": (b.tp, b.tp + b.fn), "specificity": (b.tn, b.tn + b.fp),
                        "ppv": (b.tp, b.tp + b.fp), "npv": (b.tn, b.tn + b.fn)}.items():
        ci = m.intervals[key]
        assert ci.method == WILSON and ci.value == getattr(b, key), key
        assert (ci.low, ci.high) == pytest.approx(_wilson_by_hand(k, n)), key


def test_every_interval_holds_its_estimate_and_says_how_it_was_made():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 90)
    logits = rng.normal(size=(90, 3))
    logits[np.arange(90), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = compute_metrics(Predictions([str(i) for i in range(90)], labels, probs, ["x", "y", "z"]), n_bootstrap=300)
    everything = list(m.intervals.items()) + [(f"{c}.{k}", ci) for c, d in m.class_intervals.items()
                                              for k, ci in d.items()]
    assert len(everything) == 4 + 3 * 5
    for name, ci in everything:
        assert ci.method in (WILSON, DELONG, HANLEY_MCNEIL, PERCENTILE), name
        assert ci.estimable, (name, ci)
        assert ci.low <= ci.value <= ci.high and ci.low < ci.high, (name, ci)
    assert m.intervals["macro_auc"].method == PERCENTILE  # three classes: bootstrapped
    assert m.class_intervals["x"]["auc"].method == DELONG


# ----- metrics.json ------------------------------------------------------------------------------

def test_metrics_json_records_value_bounds_and_method(tmp_path):
    predictions = _perfect(7, 15)
    m = compute_metrics(predictions, n_bootstrap=200)
    save_evaluation(tmp_path, predictions, m, {"kind": "split", "split": "val"})
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    for d in [*saved["intervals"].values(), *(v for c in saved["class_intervals"].values() for v in c.values())]:
        assert {"value", "low", "high", "method"} <= set(d)
    assert saved["intervals"]["accuracy"]["method"] == "wilson"
    assert saved["intervals"]["balanced_accuracy"] == {"value": 1.0, "low": None, "high": None,
                                                       "method": "bootstrap_percentile", "level": 0.95,
                                                       "note": "every resample gave the same value"}
    assert [r["too_few_images_to_judge"] for r in saved["per_class"]] == [True, False]
    header = (tmp_path / "per_class.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "recall_ci_method" in header and header[-1] == "too_few_images_to_judge"
    _, payload = load_evaluation(tmp_path)
    headline, per_class = saved_intervals(payload)
    assert headline["accuracy"] == m.intervals["accuracy"]
    assert per_class["a"]["recall"] == m.class_intervals["a"]["recall"]


def test_metrics_json_of_an_earlier_version_is_still_read(tmp_path):
    """Earlier files: intervals as {"low", "high", "level"}, all from a percentile bootstrap."""
    predictions = _perfect()
    m = compute_metrics(predictions, n_bootstrap=0)
    save_evaluation(tmp_path, predictions, m, {"kind": "external", "folder": "/data/site-b"})
    payload = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    payload["metrics"]["intervals"] = {"accuracy": {"low": 1.0, "high": 1.0, "level": 0.95}}
    payload["metrics"]["class_intervals"] = {"a": {"recall": {"low": 1.0, "high": 1.0, "level": 0.95}}}
    for row in payload["metrics"]["per_class"]:
        del row["too_few_images_to_judge"]
    (tmp_path / "metrics.json").write_text(json.dumps(payload), encoding="utf-8")
    again, loaded = load_evaluation(tmp_path)
    assert again.classes == ["a", "b"] and len(again) == 30
    headline, per_class = saved_intervals(loaded)
    assert headline["accuracy"].method == "bootstrap_percentile" and headline["accuracy"].value == 1.0
    assert per_class["a"]["recall"].value == 1.0 and per_class["a"]["recall"].low == 1.0
    recomputed = compute_metrics(again, n_bootstrap=100)  # what the report does with it
    assert recomputed.class_intervals["a"]["recall"].low == pytest.approx(0.7961, abs=5e-5)
