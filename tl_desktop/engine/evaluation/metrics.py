"""Classification metrics from labels and probabilities (numpy only).

Conventions, chosen so nothing crashes and nothing undefined is passed off as a number:

- The confusion matrix has true classes in rows and predicted classes in columns.
- A value that is undefined (a class with no samples has no recall; a class never predicted has no
  precision) is ``None`` — never NaN, never silently 0.
- Macro and weighted averages run over the classes that have samples in this evaluation set. For
  such a class an undefined precision (the model never predicts it) counts as 0, because never
  predicting a class that exists is a failure, not a missing value. Classes without samples are left
  out and listed in ``Metrics.absent_classes``.
- For two classes a ``positive_class`` and ``threshold`` turn probabilities into decisions
  (positive when its probability >= threshold); every metric, the confusion matrix included, then
  uses those decisions. Otherwise the most probable class is the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINARY_METRICS = ("sensitivity", "specificity", "ppv", "npv")
# Below this many images of a class its per-class numbers are shown but marked as too few to judge:
# even a perfect 9 of 9 has a 95% Wilson interval reaching down to 70%.
MIN_IMAGES_TO_JUDGE = 10


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes in rows and predicted classes in columns."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def decide(probs: np.ndarray, positive_index: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Predicted class per row: argmax, or for two classes positive when p(positive) >= threshold."""
    probs = np.asarray(probs)
    if threshold is None or positive_index is None:
        return probs.argmax(axis=1)
    negative_index = 1 - positive_index
    return np.where(probs[:, positive_index] >= threshold, positive_index, negative_index)


@dataclass
class ClassMetrics:
    """One row of the per-class table."""

    name: str
    support: int
    predicted: int
    precision: float | None
    recall: float | None
    specificity: float | None
    f1: float | None
    auc: float | None = None

    @property
    def too_few_images(self) -> bool:
        """Some images, but fewer than :data:`MIN_IMAGES_TO_JUDGE`."""
        return 0 < self.support < MIN_IMAGES_TO_JUDGE


def per_class_from_confusion(cm: np.ndarray, classes: list[str]) -> list[ClassMetrics]:
    """Precision, recall (sensitivity), specificity and F1 for each class (one-vs-rest)."""
    total = int(cm.sum())
    rows = []
    for k, name in enumerate(classes):
        tp = int(cm[k, k])
        support = int(cm[k, :].sum())
        predicted = int(cm[:, k].sum())
        fp, fn = predicted - tp, support - tp
        tn = total - tp - fp - fn
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        rows.append(ClassMetrics(name=name, support=support, predicted=predicted, precision=precision,
                                 recall=recall, specificity=_ratio(tn, tn + fp), f1=_f1(precision, recall)))
    return rows


def averages(rows: list[ClassMetrics]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Macro and support-weighted averages over the classes that have samples."""
    present = [r for r in rows if r.support > 0]
    macro: dict[str, float | None] = {}
    weighted: dict[str, float | None] = {}
    total = sum(r.support for r in present)
    for key in ("precision", "recall", "specificity", "f1"):
        values = [(getattr(r, key), r.support) for r in present]
        # A class that exists but is never predicted has no precision/F1: it scores 0 (see module doc).
        values = [(0.0 if v is None and key in ("precision", "f1") else v, s) for v, s in values]
        defined = [(v, s) for v, s in values if v is not None]
        macro[key] = float(np.mean([v for v, _ in defined])) if defined else None
        weight = sum(s for _, s in defined)
        weighted[key] = float(sum(v * s for v, s in defined) / weight) if defined and total else None
    return macro, weighted


def accuracy_from_confusion(cm: np.ndarray) -> float | None:
    """Fraction of correct decisions; None for an empty set."""
    return _ratio(np.trace(cm), cm.sum())


def balanced_accuracy_from_confusion(cm: np.ndarray) -> float | None:
    """Mean recall over the classes that have samples."""
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return None
    return float(np.mean(np.diag(cm)[present] / support[present]))


def roc_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds (descending), one point per distinct score."""
    scores = np.asarray(scores, dtype=float)
    positives = np.asarray(positives, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1] if scores.size else np.array([], int)
    tps = np.cumsum(positives)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    n_pos, n_neg = positives.sum(), (~positives).sum()
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.zeros(tps.size + 1)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.zeros(fps.size + 1)
    return fpr, tpr, np.r_[np.inf, scores[last_of_tie]]


def auc_score(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both kinds of sample."""
    scores = np.asarray(scores, dtype=float)
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


@dataclass
class BinaryMetrics:
    """Two-class results at a chosen positive class and threshold."""

    positive_class: str
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None


def binary_metrics(cm: np.ndarray, classes: list[str], positive_index: int, threshold: float) -> BinaryMetrics:
    """Sensitivity, specificity, PPV and NPV from a 2x2 confusion matrix."""
    neg = 1 - positive_index
    tp, fn = int(cm[positive_index, positive_index]), int(cm[positive_index, neg])
    fp, tn = int(cm[neg, positive_index]), int(cm[neg, neg])
    return BinaryMetrics(positive_class=classes[positive_index], threshold=float(threshold), tp=tp, fp=fp,
                         tn=tn, fn=fn, sensitivity=_ratio(tp, tp + fn), specificity=_ratio(tn, tn + fp),
                         ppv=_ratio(tp, tp + fp), npv=_ratio(tn, tn + fn))


@dataclass
class Interval:
    """A 95% interval of one metric, with the method that produced it.

    ``low``/``high`` are None when no interval could be given: the metric is undefined (``value``
    None too) or the method cannot estimate one here (``note`` says why, e.g. every bootstrap
    resample gave the same value). Bounds, when given, always hold ``value``. ``groups`` is the number
    of groups (patients, fields) a method for clustered images accounted for; None when images were
    taken as independent.
    """

    low: float | None
    high: float | None
    level: float = 0.95
    value: float | None = None
    method: str = "bootstrap_percentile"
    note: str | None = None
    groups: int | None = None

    @property
    def estimable(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        found = {"value": self.value, "low": self.low, "high": self.high, "method": self.method,
                 "level": self.level, "note": self.note}
        return found if self.groups is None else {**found, "groups": self.groups}

    @classmethod
    def from_dict(cls, data: dict[str, Any], value: float | None = None) -> "Interval":
        """Read ``to_dict``'s form, or the older ``{"low", "high", "level"}`` (all percentile bootstrap)."""
        return cls(low=data.get("low"), high=data.get("high"), level=float(data.get("level", 0.95)),
                   value=data.get("value", value), method=str(data.get("method", "bootstrap_percentile")),
                   note=data.get("note"), groups=data.get("groups"))


@dataclass
class RocCurve:
    """One-vs-rest ROC of one class."""

    name: str
    fpr: list[float]
    tpr: list[float]
    auc: float | None


@dataclass
class Metrics:
    """Everything computed for one set of predictions; ``to_dict`` is JSON-safe."""

    classes: list[str]
    num_samples: int
    confusion: np.ndarray
    accuracy: float | None
    balanced_accuracy: float | None
    per_class: list[ClassMetrics]
    macro: dict[str, float | None]
    weighted: dict[str, float | None]
    absent_classes: list[str]
    roc: list[RocCurve]
    macro_auc: float | None
    log_loss: float | None
    ece: float | None
    reliability: dict[str, list[float]]
    binary: BinaryMetrics | None = None
    intervals: dict[str, Interval] = field(default_factory=dict)
    class_intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    n_bootstrap: int = 0
    seed: int = 0
    groups: int | None = None  # groups the intervals resampled or weighted; None: images taken as independent

    @property
    def macro_f1(self) -> float | None:
        return self.macro.get("f1")

    def headline(self) -> dict[str, float | None]:
        """The few numbers shown first, each with an interval in ``intervals`` when bootstrapped."""
        values = {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                  "macro_f1": self.macro_f1, "macro_auc": self.macro_auc}
        if self.binary is not None:
            values.update({k: getattr(self.binary, k) for k in BINARY_METRICS})
        return values

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "confusion_matrix": self.confusion.tolist(),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro": dict(self.macro),
            "weighted": dict(self.weighted),
            "macro_auc": self.macro_auc,
            "log_loss": self.log_loss,
            "ece": self.ece,
            "absent_classes": list(self.absent_classes),
            "per_class": [{**vars(r), "too_few_images_to_judge": r.too_few_images} for r in self.per_class],
            "roc": [vars(r).copy() for r in self.roc],
            "reliability": self.reliability,
            "binary": vars(self.binary).copy() if self.binary else None,
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
            "class_intervals": {c: {k: v.to_dict() for k, v in d.items()}
                                for c, d in self.class_intervals.items()},
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "groups": self.groups,
        }
