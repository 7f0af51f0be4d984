"""Matplotlib ``Figure`` builders shared by the window and the report (never pyplot).

The window puts a returned figure into a ``FigureCanvasQTAgg``; the report saves the same figure as PNG
(HTML) and draws it again ``into`` a sub-figure of a PDF page, so the PDF's figures stay vector. Font sizes
are relative to ``font.size`` so a figure drawn smaller or larger keeps its proportions. In the confusion-matrix figure cell (row ``i`` = true class, column ``j`` = predicted class)
is centred at data coordinates ``(x=j, y=i)``, so a click maps back with ``confusion_cell_at``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure, FigureBase

from tl_desktop.engine.training.events import EpochEnded, Event

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#d62728"
GAP_LABEL = "gap to mean confidence"
FINETUNE_LABEL = "fine-tuning →"
TICK_CHARS = 14  # class names longer than this wrap onto more lines at word boundaries
CHAR_IN = 0.075  # width of an average character at 10 pt, in inches


def _figure(figsize: tuple[float, float], into: FigureBase | None) -> FigureBase:
    return Figure(figsize=figsize, layout="constrained") if into is None else into


def finetune_label_place(x: float, left: float, right: float) -> tuple[float, str]:
    """Where the "fine-tuning →" label goes beside the line at ``x`` on an axis from ``left`` to ``right``:
    after the line in the left half, before it (ending at it, arrow pointing to it) in the right half, so it
    always stays inside the axes."""
    if x <= left + 0.5 * (right - left):
        return x + 0.01 * (right - left), "left"
    return x - 0.01 * (right - left), "right"


def wrap_words(text: str, width: int, split_words: bool = False) -> list[str]:
    """``text`` in lines of about ``width`` characters, broken at spaces, hyphens and underscores.

    A word longer than a line stays whole, unless ``split_words`` (a table cell that cannot grow): then it is
    cut into pieces that each end with a hyphen.
    """
    lines: list[str] = []
    line = ""
    for word in text.split():
        for k, part in enumerate(re.split(r"(?<=[-_])(?=.)", word)):
            joined = f"{line} {part}" if line and k == 0 else line + part
            if len(joined) <= width or not line:
                line = joined
            else:
                lines.append(line)
                line = part
    lines += [line] if line else []
    if not split_words:
        return lines
    fitted = []
    for line in lines:
        while len(line) > width:
            fitted.append(line[:width - 1] + "-")
            line = line[width - 1:]
        fitted.append(line)
    return fitted


def class_tick_label(name: str, width: int = TICK_CHARS) -> str:
    """A class name for a tick: wrapped at spaces, hyphens or underscores, never inside a word."""
    return "\n".join(wrap_words(name, width)) or name


def _epoch_rows(history: Iterable[Event | dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in history:
        raw = item.to_dict() if isinstance(item, Event) else dict(item)
        if raw.get("event", EpochEnded.kind) == EpochEnded.kind:
            rows.append(raw)
    return rows


def training_curves_figure(history: Iterable[Event | dict[str, Any]], figsize: tuple[float, float] = (8, 3.4),
                           into: FigureBase | None = None) -> FigureBase:
    """Loss and accuracy per epoch for training and validation; a dotted line marks where fine-tuning began."""
    rows = _epoch_rows(history)
    fig = _figure(figsize, into)
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
        line = min(finetune) - 0.5
        for ax in (ax_loss, ax_acc):
            ax.axvline(line, color="black", lw=1, ls=":")
        x, ha = finetune_label_place(line, *ax_loss.get_xlim())
        ax_loss.text(x, 0.98, FINETUNE_LABEL, transform=ax_loss.get_xaxis_transform(), va="top", ha=ha,
                     fontsize="small")
    if not rows:
        ax_loss.text(0.5, 0.5, "no completed epochs", ha="center", va="center", transform=ax_loss.transAxes)
    ax_acc.legend(loc="lower right", fontsize="small")
    return fig


def confusion_matrix_figure(confusion: np.ndarray, classes: Sequence[str], normalize: bool = False,
                            title: str | None = None, figsize: tuple[float, float] | None = None,
                            into: FigureBase | None = None) -> FigureBase:
    """Counts (or row-normalised fractions) with true classes in rows and predicted classes in columns."""
    cm = np.asarray(confusion, dtype=float)
    k = len(classes)
    totals = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0) if normalize else cm
    labels = [class_tick_label(c) for c in classes]
    longest = max((len(line) for label in labels for line in label.splitlines()), default=0)
    tilt = k > 3 or longest > 10  # long names overlap when level
    # Tilted column names take one or two long lines: stacked short ones would overlap their neighbours.
    columns = [class_tick_label(c, 2 * TICK_CHARS) for c in classes] if tilt else labels
    below = max((len(line) for label in columns for line in label.splitlines()), default=0)
    fig = _figure(figsize or _confusion_size(k, longest, below, tilt), into)
    ax = fig.subplots()
    # A mesh of cells, not an image: it stays vector in the PDF. Cell (i, j) is centred at (x=j, y=i).
    edges = np.arange(k + 1) - 0.5
    image = ax.pcolormesh(edges, edges, shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)  # the first class on top
    ax.set_aspect("equal")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class" if normalize else "images")
    bar.solids.set_rasterized(False)  # matplotlib rasterises a smooth colour bar unless told not to
    ax.set_xticks(range(k), labels=columns, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                  rotation_mode="anchor" if tilt else "default")
    ax.set_yticks(range(k), labels=labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("Confusion matrix\n(each row sums to 1)" if normalize else "Confusion matrix (counts)"))
    threshold = (1 if normalize else max(1.0, shown.max())) / 2
    fontsize = "medium" if k <= 8 else "small" if k <= 14 else "xx-small"
    for i in range(k):
        for j in range(k):
            if normalize:
                text = f"{shown[i, j]:.2f}" if totals[i, 0] > 0 else "–"
            else:
                text = f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if shown[i, j] > threshold else "black")
    return fig


def _confusion_size(k: int, beside: int, below: int, tilt: bool) -> tuple[float, float]:
    """Room for the cells, the colour bar and the class names (``beside`` the rows, ``below`` the columns,
    in characters of their longest line)."""
    width = 2.4 + 0.55 * k + CHAR_IN * beside
    height = 1.6 + 0.5 * k + (0.72 * CHAR_IN * below if tilt else 0.36)
    return max(4.4, width), max(3.6, height)


def confusion_cell_at(x: float | None, y: float | None, num_classes: int) -> tuple[int, int] | None:
    """(true index, predicted index) of the cell under data coordinates (x, y), or None outside."""
    if x is None or y is None:
        return None
    col, row = int(round(x)), int(round(y))
    if 0 <= row < num_classes and 0 <= col < num_classes:
        return row, col
    return None


def roc_figure(roc: Sequence[Any], figsize: tuple[float, float] = (5, 4.2),
               into: FigureBase | None = None) -> FigureBase:
    """One-vs-rest ROC curves (objects or dicts with name, fpr, tpr, auc) with the chance diagonal."""
    fig = _figure(figsize, into)
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
    ax.legend(loc="lower right", fontsize="x-small" if len(roc) > 6 else "small")
    ax.grid(alpha=0.3)
    return fig


def reliability_figure(reliability: dict[str, list], ece: float | None = None,
                       figsize: tuple[float, float] = (5, 4.6), into: FigureBase | None = None) -> FigureBase:
    """Reliability diagram: accuracy against confidence per bin, the gap between each bin's mean confidence
    and its accuracy as a hatched bar (above: over-confident, below: under-confident), with a histogram
    of confidences below."""
    fig = _figure(figsize, into)
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
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    ax_hist.bar(centres, reliability["count"], width=width * 0.9, color="grey")
    ax_hist.set_xlabel("confidence (probability of the predicted class)")
    ax_hist.set_ylabel("images")
    ax_hist.set_xlim(0, 1)
    return fig
