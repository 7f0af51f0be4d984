"""95% intervals for every metric, each by a method that cannot collapse to a point.

- Proportions (accuracy, per-class recall/sensitivity, precision/PPV, specificity, NPV): Wilson
  score intervals (scipy). They are right at 0 of n and n of n (15 of 15 gives 79.6%–100%) and never
  of zero width for n >= 1; a percentile bootstrap says "100% (100–100%)" there.
- AUC of one class against the rest: DeLong's variance, with the interval built on the logit scale
  so that it stays inside 0–1 (Pohar Perme & Manevski 2018 found this the reliable choice). DeLong's
  variance is zero when the classes are completely separated (AUC 1 or 0) or every score is tied,
  and undefined with fewer than two positives or negatives; there the Hanley–McNeil variance is
  inverted as a score interval — the AUC's analogue of Wilson's interval — which keeps its width.
- Balanced accuracy, F1 and the macro AUC of three or more classes: the seeded percentile bootstrap
  of :mod:`bootstrap`, reported as not estimable where it would be a point. For two classes the macro
  AUC is the AUC of either class, so it takes that class's DeLong interval.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from tl_desktop.engine.evaluation.bootstrap import bootstrap_intervals
from tl_desktop.engine.evaluation.metrics import Interval, Metrics

LEVEL = 0.95
WILSON = "wilson"
DELONG = "delong_logit"
HANLEY_MCNEIL = "hanley_mcneil_score"
_EDGE = 1e-12


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, trials: int, level: float = LEVEL) -> Interval:
    """Wilson score interval of ``successes`` out of ``trials``; undefined (None bounds) for 0 trials."""
    if trials <= 0:
        return Interval(None, None, level, value=None, method=WILSON, note="no images to count")
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    value = successes / trials
    # scipy's bounds can miss 0 or 1 by a rounding error; the estimate is always inside.
    return Interval(min(float(ci.low), value), max(float(ci.high), value), level, value=value, method=WILSON)


def _components(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive the share of negatives scored below it, and
    for each negative the share of positives scored above it (ties count half)."""
    from scipy.stats import rankdata

    x, y = scores[positives], scores[~positives]
    m, n = x.size, y.size
    ranks = rankdata(np.r_[x, y])
    v10 = (ranks[:m] - rankdata(x)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(y)) / m
    return v10, v01


def auc_interval(scores: np.ndarray, positives: np.ndarray, level: float = LEVEL) -> Interval:
    """Interval of the one-vs-rest AUC: DeLong on the logit scale, or the Hanley–McNeil score interval."""
    scores = np.asarray(scores, dtype=float)
    positives = np.asarray(positives, dtype=bool)
    m = int(positives.sum())
    n = positives.size - m
    if m == 0 or n == 0:
        return Interval(None, None, level, value=None, method=DELONG, note="needs images of the class and others")
    v10, v01 = _components(scores, positives)
    auc = float(v10.mean())
    variance = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n) if m >= 2 and n >= 2 else 0.0
    if _EDGE < auc < 1 - _EDGE and variance > 0:
        z = _z(level)
        centre = np.log(auc / (1 - auc))
        half = z * np.sqrt(variance) / (auc * (1 - auc))
        low, high = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
        return Interval(min(float(low), auc), max(float(high), auc), level, value=auc, method=DELONG)
    if m < 2 or n < 2:
        why = "fewer than two images on one side, so DeLong's variance is undefined"
    elif auc <= _EDGE or auc >= 1 - _EDGE:
        why = "the classes are completely separated, so DeLong's variance is zero"
    else:
        why = "every score is tied, so DeLong's variance is zero"
    interval = hanley_mcneil_score_interval(auc, m, n, level)
    interval.note = why
    return interval


def _hanley_mcneil_variance(theta: float, m: int, n: int) -> float:
    """Hanley & McNeil (1982): Q1 = A/(2-A) and Q2 = 2A^2/(1+A), written in factored form."""
    spread = 1 + (m - 1) * (1 - theta) / (2 - theta) + (n - 1) * theta / (1 + theta)
    return theta * (1 - theta) * spread / (m * n)


def hanley_mcneil_score_interval(auc: float, m: int, n: int, level: float = LEVEL) -> Interval:
    """Every AUC ``t`` with ``(auc - t)^2 <= z^2 * Var_HM(t)``, like Wilson's interval for a proportion.

    The variance is evaluated at each candidate ``t``, not at the estimate, so an AUC of 1 (where the
    estimated variance is 0) still gets a lower bound below 1. ``m`` positives, ``n`` negatives.
    """
    from scipy.optimize import brentq

    z2 = _z(level) ** 2

    def excess(t: float) -> float:
        # (auc - t)^2 - z^2 Var(t), divided by t(1 - t) > 0 so that the roots at 0 and 1 disappear.
        gap = (auc - t) ** 2
        spread = _hanley_mcneil_variance(t, m, n) / (t * (1 - t)) if 0 < t < 1 else \
            (1 + (n - 1) / 2 if t >= 1 else 1 + (m - 1) / 2) / (m * n)
        return (gap / (t * (1 - t)) if gap else 0.0) - z2 * spread

    low = 0.0 if auc <= _EDGE else float(brentq(excess, _EDGE, auc))
    high = 1.0 if auc >= 1 - _EDGE else float(brentq(excess, auc, 1 - _EDGE))
    return Interval(min(low, auc), max(high, auc), level, value=auc, method=HANLEY_MCNEIL)


def _class_intervals(result: Metrics, labels: np.ndarray, probs: np.ndarray, level: float
                     ) -> dict[str, dict[str, Interval]]:
    cm = result.confusion
    total = int(cm.sum())
    found = {}
    for c, row in enumerate(result.per_class):
        tp = int(cm[c, c])
        fp, fn = row.predicted - tp, row.support - tp
        tn = total - tp - fp - fn
        found[row.name] = {"precision": wilson_interval(tp, row.predicted, level),
                           "recall": wilson_interval(tp, row.support, level),
                           "specificity": wilson_interval(tn, tn + fp, level),
                           "auc": auc_interval(probs[:, c], labels == c, level)}
    return found


def _binary_intervals(result: Metrics, level: float) -> dict[str, Interval]:
    b = result.binary
    if b is None:
        return {}
    return {"sensitivity": wilson_interval(b.tp, b.tp + b.fn, level),
            "specificity": wilson_interval(b.tn, b.tn + b.fp, level),
            "ppv": wilson_interval(b.tp, b.tp + b.fp, level),
            "npv": wilson_interval(b.tn, b.tn + b.fn, level)}


def metric_intervals(result: Metrics, labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray,
                     positive_index: int | None, n_bootstrap: int, seed: int, level: float = LEVEL
                     ) -> tuple[dict[str, Interval], dict[str, dict[str, Interval]]]:
    """Headline and per-class intervals of ``result``, each by the method the module text gives."""
    classes = list(result.classes)
    per_class = _class_intervals(result, labels, probs, level)
    two_classes = len(classes) == 2
    headline_keys = ("balanced_accuracy", "macro_f1") + (() if two_classes else ("macro_auc",))
    estimates = {key: result.headline()[key] for key in headline_keys}
    estimates["f1"] = [row.f1 for row in result.per_class]
    booted, booted_classes = bootstrap_intervals(
        labels, predicted, probs, classes, positive_index, n_bootstrap, seed, estimates=estimates,
        headline_keys=headline_keys, class_keys=("f1",), level=level)
    for name, found in booted_classes.items():
        per_class[name].update(found)
    headline = {"accuracy": wilson_interval(int(np.trace(result.confusion)), result.num_samples, level), **booted}
    if two_classes:
        # With two classes both one-vs-rest AUCs rank the same pairs: the macro AUC is either of them.
        auc, value = per_class[classes[1]]["auc"], result.macro_auc
        bounds = (min(auc.low, value), max(auc.high, value)) if auc.estimable and value is not None else (None, None)
        headline["macro_auc"] = Interval(*bounds, level, value=value, method=auc.method, note=auc.note)
    headline.update(_binary_intervals(result, level))
    return {key: headline[key] for key in result.headline() if key in headline}, per_class
