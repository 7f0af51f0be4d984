"""Evaluation results on disk and as text: one folder per evaluation, readable back for the report.

A folder holds ``metrics.json`` (metrics, where the images came from, unreadable files),
``per_class.csv``, ``confusion_matrix.csv`` and ``predictions.csv`` (every probability, so the
evaluation can be reloaded without running the model again). Where a run keeps them is the run
folder's business (:class:`~tl_desktop.engine.training.runfolder.RunFolder`); the report includes them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from tl_desktop.engine.evaluation.evaluate import (
    EvaluationError,
    Predictions,
    per_class_csv,
    predictions_csv,
)
from tl_desktop.engine.evaluation.metrics import Metrics
from tl_desktop.fileio import atomic_write_text


def confusion_csv(result: Metrics) -> str:
    """The confusion matrix as CSV: one row per true class, one column per predicted class."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *result.classes])
    for name, row in zip(result.classes, result.confusion.tolist()):
        writer.writerow([name, *row])
    return out.getvalue()


def save_evaluation(out_dir: str | Path, predictions: Predictions, result: Metrics,
                    source: dict[str, Any]) -> list[Path]:
    """Write metrics.json, per_class.csv, confusion_matrix.csv and predictions.csv; return the paths."""
    folder = Path(out_dir)
    payload = {"source": source, "metrics": result.to_dict(),
               "unreadable": [{"path": p, "reason": r} for p, r in predictions.failures]}
    files = {
        "metrics.json": json.dumps(payload, indent=2),
        "per_class.csv": per_class_csv(result),
        "confusion_matrix.csv": confusion_csv(result),
        "predictions.csv": predictions_csv(predictions),
    }
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    return [folder / name for name in files]


def load_evaluation(folder: str | Path) -> tuple[Predictions, dict[str, Any]]:
    """Predictions and the metrics.json payload of a saved evaluation."""
    folder = Path(folder)
    try:
        payload = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        with open(folder / "predictions.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read the saved evaluation in {folder}: {exc}") from exc
    classes = list(payload["metrics"]["classes"])
    if not rows or rows[0][4:] != classes:
        raise EvaluationError(f"{folder / 'predictions.csv'} does not match the classes in its metrics.json")
    body = rows[1:]
    predictions = Predictions(
        paths=[r[0] for r in body], labels=[classes.index(r[1]) for r in body],
        probs=np.array([[float(v) for v in r[4:]] for r in body]).reshape(len(body), len(classes)),
        classes=classes, failures=[(u["path"], u["reason"]) for u in payload.get("unreadable", [])])
    return predictions, payload


def fmt(value: float | None, percent: bool = True) -> str:
    """A metric for people: a percentage with one decimal, or 'undefined'."""
    if value is None:
        return "undefined"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def fmt_ci(result: Metrics, key: str, value: float | None, percent: bool = True) -> str:
    """A headline value with its 95% interval when one was computed."""
    text = fmt(value, percent)
    ci = result.intervals.get(key)
    if value is not None and ci is not None and ci.low is not None:
        text += f" (95% CI {fmt(ci.low, percent)}–{fmt(ci.high, percent)})"
    return text


HEADLINE_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "macro_auc": "Macro AUC (one-vs-rest)",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV (precision)",
    "npv": "NPV",
}


def summary_lines(result: Metrics) -> list[str]:
    """The metrics as readable text lines (the CLI prints them)."""
    lines = [f"{result.num_samples} images, {len(result.classes)} classes"]
    if result.binary is not None:
        lines.append(f"Positive class: {result.binary.positive_class}, decision threshold "
                     f"{result.binary.threshold:.2f}")
    for key, value in result.headline().items():
        lines.append(f"  {HEADLINE_LABELS[key]:<24} {fmt_ci(result, key, value, key != 'macro_auc')}")
    lines.append(f"  {'Calibration error (ECE)':<24} {fmt(result.ece, percent=False)}")
    width = max([len(c) for c in result.classes] + [5])
    lines.append(f"  {'class':<{width}}  {'support':>7}  {'precision':>9}  {'recall':>9}  {'specif.':>9}  "
                 f"{'F1':>9}  {'AUC':>9}")
    for row in result.per_class:
        cells = [fmt(row.precision), fmt(row.recall), fmt(row.specificity), fmt(row.f1), fmt(row.auc, False)]
        lines.append(f"  {row.name:<{width}}  {row.support:>7}  " + "  ".join(f"{c:>9}" for c in cells))
    if result.absent_classes:
        lines.append("No images of: " + ", ".join(result.absent_classes)
                     + " (their recall is undefined; averages leave them out)")
    never = [r.name for r in result.per_class if r.support > 0 and r.predicted == 0]
    if never:
        lines.append("Never predicted: " + ", ".join(never) + " (precision undefined, counted as 0 in averages)")
    return lines
