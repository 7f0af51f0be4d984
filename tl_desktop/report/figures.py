"""Matplotlib ``Figure`` builders shared by the window and the report (never pyplot).

The window puts a returned figure into a ``FigureCanvasQTAgg``; the report saves the same figure to
PNG/PDF. In the confusion-matrix figure cell (row ``i`` = true class, column ``j`` = predicted class)
is centred at data coordinates ``(x=j, y=i)``, so a click maps back with ``confusion_cell_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tl_desktop.engine.training.events import EpochEnded, Event

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#d62728"
GAP_LABEL = "gap to mean confidence"


def _epoch_rows(history: Iterable[Event | dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in history:
        raw = item.to_dict() if isinstance(item, Event) else dict(item)
        if raw.get("event", EpochEnded.kind) == EpochEnded.kind:
            rows.append(raw)
    return rows


def training_curves_figure(history: Iterable[Event | dict[str, Any]], figsize: tuple[float, float] = (8, 3.4)) -> Figure:
    """Loss and accuracy per epoch for training and validation; a dotted line marks where fine-tuning began."""
    rows = _epoch_rows(history)
    fig = Figure(figsize=figsize, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for ax, key, title in ((ax_loss, "loss", "Loss (lower is better)"),
                           (ax_acc, "accuracy", "Accuracy (higher is better)")):
        ax.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", color=TRAIN_COLOUR, label="training", ms=3)
        ax.plot(epochs, [r[f"val_{key}"] for r in rows], "s-", color=VAL_COLOUR, label="validation", ms=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if epochs:
            ax.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.set_ylim(-0.02, 1.02)
    best = [r for r in rows if r.get("is_best")]
    if best:
        ax_acc.axvline(best[-1]["epoch"], color="grey", lw=1, ls="--", label=f"best (epoch {best[-1]['epoch']})")
    finetune = [r["epoch"] for r in rows if r.get("phase") == "finetune"]
    if finetune and len(finetune) < len(rows):
        for ax in (ax_loss, ax_acc):
            ax.axvline(min(finetune) - 0.5, color="black", lw=1, ls=":")
        ax_loss.text(min(finetune) - 0.4, 0.98, "fine-tuning →", transform=ax_loss.get_xaxis_transform(),
                     va="top", fontsize=8)
    if not rows:
        ax_loss.text(0.5, 0.5, "no completed epochs", ha="center", va="center", transform=ax_loss.transAxes)
    ax_acc.legend(loc="lower right", fontsize=8)
    return fig


def confusion_matrix_figure(confusion: np.ndarray, classes: Sequence[str], normalize: bool = False,
                            title: str | None = None, figsize: tuple[float, float] | None = None) -> Figure:
    """Counts (or row-normalised fractions) with true classes in rows and predicted classes in columns."""
    cm = np.asarray(confusion, dtype=float)
    k = len(classes)
    totals = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0) if normalize else cm
    size = figsize or (max(4.0, 1.6 + 0.55 * k), max(3.4, 1.2 + 0.5 * k))
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if normalize else "images")
    tilt = k > 3 or max((len(c) for c in classes), default=0) > 10  # long names overlap when level
    ax.set_xticks(range(k), labels=list(classes), rotation=45 if tilt else 0, ha="right" if tilt else "center")
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("Confusion matrix (each row sums to 1)" if normalize else "Confusion matrix (counts)"))
    threshold = (1 if normalize else max(1.0, shown.max())) / 2
    fontsize = 10 if k <= 8 else 8 if k <= 14 else 6
    for i in range(k):
        for j in range(k):
            if normalize:
                text = f"{shown[i, j]:.2f}" if totals[i, 0] > 0 else "–"
            else:
                text = f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if shown[i, j] > threshold else "black")
    return fig


def confusion_cell_at(x: float | None, y: float | None, num_classes: int) -> tuple[int, int] | None:
    """(true index, predicted index) of the cell under data coordinates (x, y), or None outside."""
    if x is None or y is None:
        return None
    col, row = int(round(x)), int(round(y))
    if 0 <= row < num_classes and 0 <= col < num_classes:
        return row, col
    return None


def roc_figure(roc: Sequence[Any], figsize: tuple[float, float] = (5, 4.2)) -> Figure:
    """One-vs-rest ROC curves (objects or dicts with name, fpr, tpr, auc) with the chance diagonal."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC 0.50)")
    for curve in roc:
        c = curve if isinstance(curve, dict) else vars(curve)
        auc = "undefined" if c["auc"] is None else f"{c['auc']:.3f}"
        if c["auc"] is None:
            continue
        ax.plot(c["fpr"], c["tpr"], lw=1.5, label=f"{c['name']} (AUC {auc})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (1 − specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.set_title("ROC curves, each class against the rest")
    ax.legend(loc="lower right", fontsize=7 if len(roc) > 6 else 8)
    ax.grid(alpha=0.3)
    return fig


def reliability_figure(reliability: dict[str, list], ece: float | None = None,
                       figsize: tuple[float, float] = (5, 4.6)) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, the gap between each bin's mean confidence
    and its accuracy as a hatched bar (above: over-confident, below: under-confident), with a histogram
    of confidences below."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax, ax_hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    lower, upper = np.array(reliability["lower"]), np.array(reliability["upper"])
    centres, width = (lower + upper) / 2, upper - lower
    filled = [i for i, c in enumerate(reliability["count"]) if c]
    acc = [reliability["accuracy"][i] for i in filled]
    conf = [reliability["confidence"][i] for i in filled]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.bar(centres[filled], acc, width=width[filled] * 0.9, color=TRAIN_COLOUR, alpha=0.8, edgecolor=TRAIN_COLOUR,
           label="accuracy in bin")
    # Narrower than the accuracy bars, so a gap hanging down into one (under-confident) leaves its top in view.
    ax.bar(centres[filled], np.subtract(conf, acc), bottom=acc, width=width[filled] * 0.45, color=VAL_COLOUR,
           alpha=0.55, edgecolor=VAL_COLOUR, hatch="//", label=GAP_LABEL)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    title = "Calibration: are confident predictions right?"
    ax.set_title(title if ece is None else f"{title}\nexpected calibration error (ECE) = {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax_hist.bar(centres, reliability["count"], width=width * 0.9, color="grey")
    ax_hist.set_xlabel("confidence (probability of the predicted class)")
    ax_hist.set_ylabel("images")
    ax_hist.set_xlim(0, 1)
    return fig
