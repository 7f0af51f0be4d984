"""What a cross-validation writes: each fold's held-out evaluation, the fold table, the summary across
folds and the pooled out-of-fold predictions with their metrics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tl_desktop.engine.evaluation.evaluate import (
    EvaluationError,
    Predictions,
    compute_metrics,
    evaluate_run,
    interval_groups,
    run_split,
)
from tl_desktop.engine.evaluation.files import load_evaluation, save_evaluation
from tl_desktop.engine.evaluation.folds import (
    FOLD_HEADLINES,
    INTERVAL_NOTE,
    fold_figures,
    summarize_folds,
)
from tl_desktop.fileio import atomic_write_text

if TYPE_CHECKING:
    from tl_desktop.config import RunConfig
    from tl_desktop.engine.runtime.stop import StopToken
    from tl_desktop.engine.training.runfolder import RunFolder
    from tl_desktop.engine.workflows.cv_folder import CVFolder, CVPlan

HELD_OUT = "test"  # a fold run keeps its held-out fold as its test part


def evaluate_fold(run: RunFolder, config: RunConfig, stop: StopToken | None = None) -> Predictions:
    """Predict a finished fold's held-out part with its model and save it as the run's test evaluation."""
    predictions, result = evaluate_run(run.path, HELD_OUT, stop=stop, seed=config.train.seed)
    source = {"kind": "split", "split": HELD_OUT, "run": str(run.path.resolve()), "cross_validation": True}
    save_evaluation(run.split_evaluation_dir(HELD_OUT), predictions, result, source)
    return predictions


def fold_predictions(run: RunFolder) -> Predictions | None:
    """The saved held-out predictions of a finished fold (with the groups its split gave each image),
    or None if it has none yet."""
    folder = run.split_evaluation_dir(HELD_OUT)
    if not run.is_complete() or not (folder / "metrics.json").is_file():
        return None
    try:
        predictions, _ = load_evaluation(folder)
        predictions.groups = interval_groups(predictions.paths, getattr(run_split(run), HELD_OUT))
    except EvaluationError:
        return None
    return predictions


def pooled(done: Mapping[int, Predictions]) -> tuple[Predictions, list[int]] | None:
    """Every out-of-fold prediction in one set, and the fold of each; grouped when any fold's images are."""
    if not done:
        return None
    ordered = [done[index] for index in sorted(done)]
    folds = [index for index in sorted(done) for _ in range(len(done[index]))]
    paths = [p for pred in ordered for p in pred.paths]
    # Folds hold whole groups, so a fold without groups adds images that are each a group of their own.
    groups = None if all(pred.groups is None for pred in ordered) else \
        [g for pred in ordered for g in (pred.groups or [f"image:{p}" for p in pred.paths])]
    joined = Predictions(paths=paths, labels=np.concatenate([pred.labels for pred in ordered]),
                         probs=np.concatenate([pred.probs for pred in ordered]), classes=list(ordered[0].classes),
                         failures=[f for pred in ordered for f in pred.failures], groups=groups)
    return joined, folds


def write_results(folder: CVFolder, plan: CVPlan, done: Mapping[int, Predictions]) -> dict[str, Any]:
    """Write summary.json, folds.csv and oof_predictions.csv for the folds in ``done``; return the summary."""
    seed = plan.config.train.seed
    rows = []
    for index in sorted(done):
        result = compute_metrics(done[index], n_bootstrap=0)
        split = plan.folds[index - 1]
        rows.append({"fold": index, "train": len(split.train), "val": len(split.val), "held_out": len(done[index]),
                     "figures": fold_figures(result)})
    summary: dict[str, Any] = {
        "folds_planned": len(plan.folds), "folds_done": len(rows), "folds": rows,
        "across_folds": {name: found.to_dict() for name, found in summarize_folds([r["figures"] for r in rows]).items()},
        "interval_note": INTERVAL_NOTE, "test_images_held_out": len(plan.data.test),
        "final_model": str(folder.final.model_file) if folder.final.is_complete() else None,
    }
    joined = pooled(done)
    if joined is not None:
        summary["out_of_fold"] = compute_metrics(joined[0], seed=seed).to_dict()
        atomic_write_text(folder.oof_file, _oof_csv(*joined))
    atomic_write_text(folder.summary_file, json.dumps(summary, indent=1))
    atomic_write_text(folder.folds_table, _folds_csv(rows))
    return summary


def _folds_csv(rows: list[dict[str, Any]]) -> str:
    names = list(FOLD_HEADLINES) + sorted({n for r in rows for n in r["figures"] if n not in FOLD_HEADLINES})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["fold", "train_images", "val_images", "held_out_images", *names])
    for row in rows:
        values = [row["figures"].get(n) for n in names]
        writer.writerow([row["fold"], row["train"], row["val"], row["held_out"],
                         *("" if v is None else f"{v:.6f}" for v in values)])
    return out.getvalue()


def _oof_csv(predictions: Predictions, folds: list[int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "fold", "true_class", "predicted_class", "confidence", *predictions.classes])
    predicted = predictions.predicted()
    for i, path in enumerate(predictions.paths):
        writer.writerow([path, folds[i], predictions.classes[predictions.labels[i]],
                         predictions.classes[predicted[i]], f"{predictions.probs[i].max():.6f}",
                         *(f"{p:.6f}" for p in predictions.probs[i])])
    return out.getvalue()
