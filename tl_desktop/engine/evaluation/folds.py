"""Cross-validation figures: each fold's headline numbers and their mean, spread and interval across folds.

The interval across folds is Student's t on the k fold values (mean ± t(0.975, k−1)·sd/√k). Folds
share most of their training images, so fold results are correlated and this interval is known to
be too narrow (Bengio & Grandvalet, 2004, "No unbiased estimator of the variance of k-fold
cross-validation"); it describes how much the folds disagree, not the uncertainty of the method.
The pooled out-of-fold predictions, with their own bootstrap intervals, are the figure to quote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from tl_desktop.engine.evaluation.formatting import is_percent
from tl_desktop.engine.evaluation.metrics import Metrics

LEVEL = 0.95
FOLD_HEADLINES = ("accuracy", "balanced_accuracy", "macro_auc")
RECALL_PREFIX = "recall:"
INTERVAL_NOTE = (
    "The 95% interval across folds is Student's t on the fold values. Folds share most of their training "
    "images, so it is too narrow as a statement about the method (Bengio & Grandvalet, 2004); quote the pooled "
    "out-of-fold figures and their bootstrap intervals instead."
)


@dataclass(frozen=True)
class AcrossFolds:
    """One figure over the folds where it was defined."""

    mean: float
    sd: float | None
    low: float | None
    high: float | None
    folds: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "AcrossFolds":
        return cls(**{name: raw.get(name) for name in ("mean", "sd", "low", "high", "folds")})


def fold_figures(result: Metrics) -> dict[str, float | None]:
    """The figures compared across folds: the headlines and each class's recall."""
    figures: dict[str, float | None] = {name: getattr(result, name) for name in FOLD_HEADLINES}
    for row in result.per_class:
        figures[RECALL_PREFIX + row.name] = row.recall
    return figures


def across_folds(values: Sequence[float | None], level: float = LEVEL) -> AcrossFolds | None:
    """Mean, sample standard deviation and a t interval (clipped to [0, 1]) of the defined values."""
    defined = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not defined:
        return None
    n = len(defined)
    mean = sum(defined) / n
    if n < 2:
        return AcrossFolds(mean, None, None, None, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in defined) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return AcrossFolds(mean, sd, max(0.0, mean - half), min(1.0, mean + half), n)


def summarize_folds(per_fold: Sequence[Mapping[str, float | None]]) -> dict[str, AcrossFolds]:
    """Every figure that some fold defined, summarised across the folds (in first-seen order)."""
    names: list[str] = []
    for figures in per_fold:
        names += [name for name in figures if name not in names]
    summary = {}
    for name in names:
        found = across_folds([figures.get(name) for figures in per_fold])
        if found is not None:
            summary[name] = found
    return summary


def figure_label(name: str) -> str:
    """How a figure is named in tables: "Balanced accuracy", "Recall of 'cat'"."""
    if name.startswith(RECALL_PREFIX):
        return f"Recall of '{name[len(RECALL_PREFIX):]}'"
    return {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "macro_auc": "Macro AUC"}.get(name, name)


def summary_text(name: str, found: AcrossFolds) -> str:
    """ "Accuracy 91.2% ± 2.1 (sd), 95% CI across folds 88.6–93.8%, 5 folds"."""
    percent = is_percent(name)

    def shown(value: float) -> str:
        return f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    if found.sd is None:
        return f"{figure_label(name)} {shown(found.mean)} (1 fold)"
    spread = f"{100 * found.sd:.1f}" if percent else f"{found.sd:.3f}"
    return (f"{figure_label(name)} {shown(found.mean)} ± {spread} (sd), 95% CI across folds "
            f"{shown(found.low)}–{shown(found.high)}, {found.folds} folds")
