"""Seeded percentile-bootstrap 95% intervals, for the metrics that have no closed-form interval.

Each resample draws n images with replacement. Instead of materialising the resampled sets we draw
the multiplicity of every image (a multinomial draw, which is the same distribution) and compute
confusion matrices and AUCs as weighted sums, so 1000 resamples of a few thousand images take well
under a second. Metrics undefined in a resample (a class that was not drawn has no recall) are left
out of that metric's percentile.

Given group ids (say one per patient), a resample draws groups instead of images and every image
takes its group's multiplicity: images of one patient are not independent, and resampling them
one by one would make the intervals too narrow.

A percentile interval collapses to a point when every resample agrees (every image right) and is
unreliable when few resamples define the metric, so :func:`bootstrap_interval` reports those cases
as not estimable rather than printing a point; proportions and AUCs get their intervals elsewhere
(:mod:`intervals`), by methods that do not collapse.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tl_desktop.engine.evaluation.metrics import BINARY_METRICS, Interval

_CHUNK = 200
LEVEL = 0.95
PERCENTILE = "bootstrap_percentile"
CLUSTER = "cluster_bootstrap_percentile"
# A central 95% interval needs at least 1 / 0.025 = 40 values to have one in each tail.
MIN_VALID_RESAMPLES = 40
# Below this share of resamples that define the metric, leaving the others out biases the interval.
MIN_VALID_SHARE = 0.9
# The percentile bounds may miss the estimate by rounding (it is computed another way).
_TOLERANCE = 1e-9
HEADLINE_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
CLASS_KEYS = ("precision", "recall", "specificity", "f1", "auc")


def resample_weights(n: int, n_bootstrap: int, seed: int, groups: Sequence | np.ndarray | None = None
                     ) -> Iterator[np.ndarray]:
    """Yield (chunk, n) arrays of how often each image appears in each resample.

    With ``groups`` (one id per image) groups are drawn with replacement and each image appears as
    often as its group; ``groups`` with a different id for every image gives the image bootstrap.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        index, count = None, n
    else:
        index, count = cluster_numbers(groups, n)
    pvals = np.full(count, 1.0 / count) if count else np.zeros(0)
    done = 0
    while done < n_bootstrap:
        size = min(_CHUNK, n_bootstrap - done)
        drawn = rng.multinomial(count, pvals, size=size).astype(np.float64)
        yield drawn if index is None else drawn[:, index]
        done += size


def cluster_numbers(groups: Sequence | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Each image's group as a number 0..count-1 (in order of first appearance), and the count."""
    ids = np.asarray(groups)
    if ids.shape != (n,):
        raise ValueError(f"{ids.size} group ids for {n} images")
    # Numbered in order of first appearance, so one id per image gives the image bootstrap's draws.
    _, first, sorted_index = np.unique(ids, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[sorted_index.reshape(-1)], int(first.size)


def _weighted_confusions(weights: np.ndarray, labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    cell = labels * k + predicted
    onehot = np.zeros((labels.size, k * k))
    onehot[np.arange(labels.size), cell] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _weighted_auc(weights: np.ndarray, scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each weighted resample (rows of ``weights``); NaN without both kinds."""
    order = np.argsort(scores, kind="mergesort")
    s, pos = scores[order], positives[order]
    w = weights[:, order]
    w_pos, w_neg = w * pos, w * ~pos
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, s.size]))
    neg_in_group = np.add.reduceat(w_neg, starts, axis=1)
    neg_below_group = np.cumsum(neg_in_group, axis=1) - neg_in_group
    below = neg_below_group[:, group] + 0.5 * neg_in_group[:, group]
    n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w_pos * below).sum(axis=1) / (n_pos * n_neg)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _chunk_statistics(conf: np.ndarray, positive_index: int | None) -> dict[str, np.ndarray]:
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support, predicted = conf.sum(axis=2), conf.sum(axis=1)
    total = conf.sum(axis=(1, 2))
    fp, fn = predicted - tp, support - tp
    tn = total[:, None] - tp - fp - fn
    present = support > 0
    recall, precision = _safe_div(tp, support), _safe_div(tp, predicted)
    f1 = np.where(present, _safe_div(2 * tp, support + predicted), np.nan)
    stats = {
        "accuracy": _safe_div(tp.sum(axis=1), total),
        "recall": recall, "precision": precision, "specificity": _safe_div(tn, tn + fp), "f1": f1,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats["balanced_accuracy"] = np.nanmean(np.where(present, recall, np.nan), axis=1)
        stats["macro_f1"] = np.nanmean(np.where(present, np.nan_to_num(f1), np.nan), axis=1)
    if positive_index is not None:
        p, q = positive_index, 1 - positive_index
        stats["sensitivity"] = recall[:, p]
        stats["specificity_binary"] = recall[:, q]
        stats["ppv"] = precision[:, p]
        stats["npv"] = precision[:, q]
    return stats


def interval(values: np.ndarray, level: float = LEVEL) -> Interval:
    """Percentile interval of the finite values; None bounds when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(None, None, level)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(low), float(high), level)


def bootstrap_interval(values: np.ndarray, estimate: float | None, level: float = LEVEL,
                       method: str = PERCENTILE, groups: int | None = None) -> Interval:
    """The percentile interval of resampled ``values`` around ``estimate``, or not estimable with a reason;
    ``groups``: how many groups a cluster bootstrap drew from."""
    values = np.asarray(values, dtype=float)
    if estimate is None or not np.isfinite(estimate):
        return Interval(None, None, level, value=None, method=method, note="undefined", groups=groups)
    estimate = float(estimate)
    raw = interval(values, level)
    valid = int(np.isfinite(values).sum())
    note = None
    if values.size < MIN_VALID_RESAMPLES:
        note = f"{values.size} resamples are too few (a 95% interval needs at least {MIN_VALID_RESAMPLES})"
    elif valid < MIN_VALID_RESAMPLES or valid < MIN_VALID_SHARE * values.size:
        note = f"only {valid} of {values.size} resamples define it"
    elif raw.high - raw.low <= _TOLERANCE:
        note = "every resample gave the same value"
    elif not raw.low - _TOLERANCE <= estimate <= raw.high + _TOLERANCE:
        note = "the resampled values do not surround the estimate"
    if note is not None:
        return Interval(None, None, level, value=estimate, method=method, note=note, groups=groups)
    return Interval(min(raw.low, estimate), max(raw.high, estimate), level, value=estimate, method=method,
                    groups=groups)


def _statistics(weight_chunks: Iterator[np.ndarray], labels: np.ndarray, predicted: np.ndarray,
                probs: np.ndarray, k: int, positive_index: int | None, with_auc: bool) -> dict[str, np.ndarray]:
    """Every metric of every weighted set: one row per row of the weight chunks."""
    collected: dict[str, list[np.ndarray]] = {}
    for weights in weight_chunks:
        stats = _chunk_statistics(_weighted_confusions(weights, labels, predicted, k), positive_index)
        if with_auc:
            stats["auc"] = np.stack([_weighted_auc(weights, probs[:, c], labels == c) for c in range(k)], axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                stats["macro_auc"] = np.nanmean(stats["auc"], axis=1)
        for key, value in stats.items():
            collected.setdefault(key, []).append(value)
    return {key: np.concatenate(parts) for key, parts in collected.items()}


def _estimate(given: Mapping[str, Any], full: dict[str, np.ndarray], key: str, column: str,
              c: int | None) -> float | None:
    if key in given:
        value = given[key] if c is None else given[key][c]
    else:
        value = full[column][0] if c is None else full[column][0, c]
    return None if value is None or not np.isfinite(value) else float(value)


def bootstrap_intervals(labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray, classes: list[str],
                        positive_index: int | None, n_bootstrap: int, seed: int,
                        groups: Sequence | np.ndarray | None = None,
                        estimates: Mapping[str, Any] | None = None,
                        headline_keys: Sequence[str] | None = None, class_keys: Sequence[str] = CLASS_KEYS,
                        level: float = LEVEL) -> tuple[dict[str, Interval], dict[str, dict[str, Interval]]]:
    """Headline and per-class bootstrap intervals of the requested metrics.

    ``estimates`` holds the point estimates the intervals are reported around (a list per class for
    per-class keys); any that are missing are computed here from the full set. ``groups`` (one id per
    image) turns the image bootstrap into a cluster bootstrap. By default every headline metric
    (with sensitivity, specificity, PPV and NPV when a positive class is given) and every per-class one.
    """
    if headline_keys is None:
        headline_keys = HEADLINE_KEYS + (BINARY_METRICS if positive_index is not None else ())
    k = len(classes)
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    probs = np.asarray(probs, dtype=float)
    with_auc = "macro_auc" in headline_keys or "auc" in class_keys
    args = (labels, predicted, probs, k, positive_index, with_auc)
    merged = _statistics(resample_weights(labels.size, n_bootstrap, seed, groups), *args)
    full = _statistics(iter([np.ones((1, labels.size))]), *args)
    given = dict(estimates or {})
    method, count = (PERCENTILE, None) if groups is None else (CLUSTER, cluster_numbers(groups, labels.size)[1])
    # For two classes at a threshold the headline's specificity is the negative class's recall.
    headline_column = {"specificity": "specificity_binary"} if positive_index is not None else {}
    headline = {}
    for key in headline_keys:
        column = headline_column.get(key, key)
        headline[key] = bootstrap_interval(merged[column], _estimate(given, full, key, column, None), level, method,
                                           count)
    per_class = {name: {key: bootstrap_interval(merged[key][:, c], _estimate(given, full, key, key, c), level,
                                                method, count) for key in class_keys}
                 for c, name in enumerate(classes)}
    return headline, per_class
