"""Comparing runs: their settings side by side (differences marked), their learning curves and their
headline metrics with the intervals their saved evaluations hold (read back, never recomputed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_desktop.engine.evaluation.files import saved_intervals
from tl_desktop.engine.evaluation.formatting import is_percent, with_interval
from tl_desktop.engine.evaluation.metrics import Interval
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.workflows.run_history import (
    RunHistoryError,
    RunSummary,
    summarize_run,
)

HEADLINE_METRICS: dict[str, str] = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
                                    "macro_f1": "Macro F1", "macro_auc": "Macro AUC"}
EVALUATED_SPLITS = ("test", "val")  # the headline metrics come from the first of these a run has evaluated


@dataclass(frozen=True)
class SettingRow:
    """One setting (``section.name``) across the compared runs; ``differs`` when not all agree."""

    key: str
    values: tuple[str, ...]
    differs: bool


@dataclass(frozen=True)
class Curve:
    """A run's learning curve: one entry per epoch."""

    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]
    val_accuracy: tuple[float, ...]


@dataclass(frozen=True)
class MetricRow:
    """One headline metric across the compared runs (None where a run has no evaluation of it)."""

    key: str
    label: str
    values: tuple[float | None, ...]
    intervals: tuple[Interval | None, ...]

    def texts(self) -> tuple[str, ...]:
        """Each run's value with its saved interval, e.g. ``91.2% (95% CI 85.0–95.1%)``."""
        return tuple(with_interval(value, ci, is_percent(self.key)) if value is not None else ""
                     for value, ci in zip(self.values, self.intervals))


@dataclass(frozen=True)
class RunComparison:
    runs: tuple[RunSummary, ...]
    settings: tuple[SettingRow, ...]
    curves: tuple[Curve, ...]
    metrics_split: tuple[str, ...]  # which split each run's metrics come from ("" when none)
    metrics: tuple[MetricRow, ...]

    def differing_settings(self) -> tuple[SettingRow, ...]:
        return tuple(row for row in self.settings if row.differs)


def compare_runs(paths: list[str | Path]) -> RunComparison:
    """Compare two or more run folders."""
    if len(paths) < 2:
        raise RunHistoryError("choose at least two runs to compare")
    runs = tuple(summarize_run(path) for path in paths)
    settings = [_flat_settings(RunFolder(run.path)) for run in runs]
    keys = sorted({key for found in settings for key in found})
    rows = tuple(SettingRow(key, values := tuple(found.get(key, "") for found in settings), len(set(values)) > 1)
                 for key in keys)
    evaluations = [_headline(RunFolder(run.path)) for run in runs]
    metrics = tuple(MetricRow(key, label, tuple(values.get(key) for _, values, _ in evaluations),
                              tuple(found.get(key) for _, _, found in evaluations))
                    for key, label in HEADLINE_METRICS.items())
    return RunComparison(runs=runs, settings=rows, curves=tuple(learning_curve(run.path) for run in runs),
                         metrics_split=tuple(split for split, _, _ in evaluations), metrics=metrics)


def learning_curve(path: str | Path) -> Curve:
    """The run's per-epoch losses and accuracies from its events (empty for a run without epochs)."""
    try:
        history = RunFolder(path).epoch_history()
    except (OSError, ValueError):
        history = []
    return Curve(epochs=tuple(e.epoch for e in history), train_loss=tuple(e.train_loss for e in history),
                 val_loss=tuple(e.val_loss for e in history), train_accuracy=tuple(e.train_accuracy for e in history),
                 val_accuracy=tuple(e.val_accuracy for e in history))


def _flat_settings(run: RunFolder) -> dict[str, str]:
    """``config.json`` as ``section.name -> text`` (an unreadable config gives no settings)."""
    try:
        raw = json.loads(run.config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(_flatten(raw, "")) if isinstance(raw, dict) else {}


def _flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)]


def _headline(run: RunFolder) -> tuple[str, dict[str, float | None], dict[str, Interval]]:
    """Which split the run's headline metrics come from (its first evaluated one), their values and intervals."""
    for split in EVALUATED_SPLITS:
        file = run.split_evaluation_dir(split) / "metrics.json"
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
            found, _ = saved_intervals(payload)
            saved = payload.get("metrics", {})
            values = {"accuracy": saved.get("accuracy"), "balanced_accuracy": saved.get("balanced_accuracy"),
                      "macro_f1": (saved.get("macro") or {}).get("f1"), "macro_auc": saved.get("macro_auc")}
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        return split, values, found
    return "", {}, {}
