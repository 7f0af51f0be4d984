"""Seeded percentile-bootstrap 95% intervals for the headline and per-class metrics.

Each resample draws n images with replacement. Instead of materialising the resampled sets we draw
the multiplicity of every image (a multinomial draw, which is the same distribution) and compute
confusion matrices and AUCs as weighted sums, so 1000 resamples of a few thousand images take well
under a second. Metrics undefined in a resample (a class that was not drawn has no recall) are left
out of that metric's percentile.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from tl_desktop.engine.evaluation.metrics import Interval

_CHUNK = 200
LEVEL = 0.95


def resample_weights(n: int, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n) arrays of how often each image appears in each resample."""
    rng = np.random.default_rng(seed)
    pvals = np.full(n, 1.0 / n)
    done = 0
    while done < n_bootstrap:
        size = min(_CHUNK, n_bootstrap - done)
        yield rng.multinomial(n, pvals, size=size).astype(np.float64)
        done += size


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


def bootstrap_intervals(labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray, classes: list[str],
                        positive_index: int | None, n_bootstrap: int, seed: int
                        ) -> tuple[dict[str, Interval], dict[str, dict[str, Interval]]]:
    """Headline intervals and per-class intervals (precision, recall, specificity, F1, AUC)."""
    k = len(classes)
    collected: dict[str, list[np.ndarray]] = {}
    for weights in resample_weights(labels.size, n_bootstrap, seed):
        stats = _chunk_statistics(_weighted_confusions(weights, labels, predicted, k), positive_index)
        stats["auc"] = np.stack([_weighted_auc(weights, probs[:, c], labels == c) for c in range(k)], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stats["macro_auc"] = np.nanmean(stats["auc"], axis=1)
        for key, value in stats.items():
            collected.setdefault(key, []).append(value)
    merged = {key: np.concatenate(parts) for key, parts in collected.items()}
    headline = {key: interval(merged[key]) for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")}
    if positive_index is not None:
        headline.update({key: interval(merged[key]) for key in ("sensitivity", "ppv", "npv")})
        headline["specificity"] = interval(merged["specificity_binary"])
    per_class = {
        name: {key: interval(merged[key][:, c]) for key in ("precision", "recall", "specificity", "f1", "auc")}
        for c, name in enumerate(classes)
    }
    return headline, per_class
