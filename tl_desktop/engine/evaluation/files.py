"""Evaluation results on disk: one folder per evaluation, readable back for the report.

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
from tl_desktop.engine.evaluation.metrics import Interval, Metrics
from tl_desktop.fileio import atomic_write_text


def confusion_csv(result: Metrics) -> str:
    """The confusion matrix as CSV: one row per true class, one column per predicted class."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *result.classes])
    for name, row in zip(result.classes, result.confusion.tolist()):
        writer.writerow([name, *row])
    return out.getvalue()


EVALUATION_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.csv", "predictions.csv")


def save_evaluation(out_dir: str | Path, predictions: Predictions, result: Metrics,
                    source: dict[str, Any]) -> list[Path]:
    """Write metrics.json, per_class.csv, confusion_matrix.csv and predictions.csv; return the paths."""
    folder = Path(out_dir)
    payload = {"source": source, "metrics": result.to_dict(),
               "unreadable": [{"path": p, "reason": r} for p, r in predictions.failures]}
    texts = (json.dumps(payload, indent=2), per_class_csv(result), confusion_csv(result),
             predictions_csv(predictions))
    files = dict(zip(EVALUATION_FILES, texts))
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


def saved_intervals(payload: dict[str, Any]) -> tuple[dict[str, Interval], dict[str, dict[str, Interval]]]:
    """The headline and per-class intervals of a metrics.json payload, as :class:`Interval` objects.

    Files written before intervals carried their value and method hold ``{"low", "high", "level"}``
    from a percentile bootstrap; they are read as such, with the value taken from the saved metrics.
    """
    saved = payload.get("metrics", {})
    values = {"accuracy": saved.get("accuracy"), "balanced_accuracy": saved.get("balanced_accuracy"),
              "macro_f1": (saved.get("macro") or {}).get("f1"), "macro_auc": saved.get("macro_auc"),
              **(saved.get("binary") or {})}
    rows = {row.get("name"): row for row in saved.get("per_class", [])}
    headline = {key: Interval.from_dict(d, values.get(key)) for key, d in (saved.get("intervals") or {}).items()}
    per_class = {name: {key: Interval.from_dict(d, rows.get(name, {}).get(key)) for key, d in found.items()}
                 for name, found in (saved.get("class_intervals") or {}).items()}
    return headline, per_class
