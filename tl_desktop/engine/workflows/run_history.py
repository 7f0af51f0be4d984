"""Run history: every run folder under a project or runs folder, summarised from its own files.

A summary never raises for a damaged run: a folder whose files are missing or unreadable is listed with
status ``damaged`` and the reason. The user's display name and note live in the run folder's label
file; the folder itself is never renamed. Deleting moves a run folder to the system trash.
Importing this module is cheap (no torch).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.engine.training.events import EpochEnded, Event, FitEnded
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.fileio import atomic_write_text

RUN_NAME = re.compile(r"^(\d{8}-\d{6})-")
RUNS_SUBFOLDER = "runs"  # where a project keeps its runs (and train's default output folder)
RECENT_SECONDS = 600  # a run without its final event whose events file changed this recently is running
MAX_NAME_LENGTH = 120
STATUSES = ("completed", "stopped", "failed", "running", "damaged")


class RunHistoryError(Exception):
    """A folder that cannot be listed, a run that cannot be labelled or deleted; the message says which."""


class TrashUnavailable(RunHistoryError):
    """The system trash cannot take the run folder; the caller may ask before deleting it permanently."""


@dataclass(frozen=True)
class RunSummary:
    """One row of the run history."""

    path: Path
    display_name: str
    note: str
    date: datetime | None
    status: str
    reason: str
    backbone: str
    trainable_blocks: str
    epochs_completed: int | None
    epochs_planned: int | None
    seconds: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    balanced_accuracy: float | None
    macro_auc: float | None

    @property
    def folder_name(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        """The user's display name, else the folder's name."""
        return self.display_name or self.path.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (paths and dates as text)."""
        return {"name": self.name, "folder": str(self.path), "display_name": self.display_name, "note": self.note,
                "date": self.date.isoformat(timespec="seconds") if self.date else None, "status": self.status,
                "reason": self.reason, "backbone": self.backbone, "trainable_blocks": self.trainable_blocks,
                "epochs_completed": self.epochs_completed, "epochs_planned": self.epochs_planned,
                "seconds": self.seconds, "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "balanced_accuracy": self.balanced_accuracy, "macro_auc": self.macro_auc}


# ----- listing ------------------------------------------------------------------------------------
def looks_like_run(path: Path) -> bool:
    """Whether ``path`` is (or was) a run folder: it holds a run's config or events, or has a run's name."""
    folder = RunFolder(path)
    return path.is_dir() and (folder.config_file.exists() or folder.events_file.exists()
                              or RUN_NAME.match(path.name) is not None)


def run_folders(folder: str | Path) -> list[Path]:
    """The run folders directly in ``folder`` and in its ``runs`` sub-folder (a project), sorted by name."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise RunHistoryError(f"{root} does not exist")
    if not root.is_dir():
        raise RunHistoryError(f"{root} is not a folder")
    found: list[Path] = []
    for place in (root, root / RUNS_SUBFOLDER):
        try:
            children = sorted(place.iterdir()) if place.is_dir() else []
        except OSError as exc:
            raise RunHistoryError(f"cannot read {place}: {exc.strerror or exc}") from exc
        found.extend(child for child in children if looks_like_run(child))
    return found


def list_runs(folder: str | Path) -> list[RunSummary]:
    """A summary of every run folder under ``folder``, newest first."""
    return sort_runs([summarize_run(path) for path in run_folders(folder)], "date")


def summarize_run(path: str | Path) -> RunSummary:
    """What the run folder's files say about the run; missing or unreadable files make it ``damaged``."""
    run = RunFolder(path)
    display_name, note, label_problem = _read_label(run)
    problems = [label_problem] if label_problem else []
    config, config_problem = _read_config(run)
    if config_problem:
        problems.append(config_problem)
    events, events_problem = _read_events(run)
    if events_problem:
        problems.append(events_problem)
    ended = [e for e in events if isinstance(e, FitEnded)]
    end = ended[-1] if ended else None
    history = _epoch_history(events)
    status = end.status if end else _unfinished_status(run, events_problem)
    if status == "damaged" and not events_problem:
        problems.append("training ended without its final event (the program was closed or killed"
                        + ("; it can be resumed)" if run.resume_file.is_file() else ")"))
    if end and end.status == "failed" and end.error:
        problems.append(end.error)
    test, test_problem = _read_metrics(run, "test")
    val, val_problem = _read_metrics(run, "val")
    problems.extend(p for p in (test_problem, val_problem) if p)
    if (config_problem or test_problem or val_problem) and status != "running":
        status = "damaged"
    best_val = end.best_val_accuracy if end else max((e.val_accuracy for e in history), default=None)
    return RunSummary(
        path=run.path, display_name=display_name, note=note, date=run_date(run.path), status=status,
        reason="; ".join(problems),
        backbone=config.model.backbone if config else "",
        trainable_blocks=str(config.model.trainable_blocks) if config else "",
        epochs_completed=end.epochs_completed if end else (history[-1].epoch if history else None),
        epochs_planned=config.train.epochs if config else None,
        seconds=end.seconds if end else (sum(e.seconds for e in history) if history else None),
        val_accuracy=_number(val, "accuracy") if val else best_val,
        test_accuracy=_number(test, "accuracy"), balanced_accuracy=_number(test, "balanced_accuracy"),
        macro_auc=_number(test, "macro_auc"))


def _read_config(run: RunFolder) -> tuple[RunConfig | None, str]:
    if not run.config_file.is_file():
        return None, f"{run.config_file.name} is missing"
    try:
        return RunConfig.load(run.config_file), ""
    except (ConfigError, OSError, ValueError) as exc:
        return None, f"{run.config_file.name} cannot be read ({exc})"


def _read_events(run: RunFolder) -> tuple[list[Event], str]:
    if not run.events_file.is_file():
        return [], f"{run.events_file.name} is missing"
    try:
        return run.events(), ""
    except (OSError, ValueError) as exc:  # unreadable or not UTF-8; a torn line is skipped by events()
        return [], f"{run.events_file.name} cannot be read ({exc})"


def _epoch_history(events: list[Event]) -> list[EpochEnded]:
    by_epoch = {e.epoch: e for e in events if isinstance(e, EpochEnded)}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _unfinished_status(run: RunFolder, events_problem: str) -> str:
    if events_problem:
        return "damaged"
    try:
        recent = time.time() - run.events_file.stat().st_mtime < RECENT_SECONDS
    except OSError:
        return "damaged"
    return "running" if recent else "damaged"


def evaluation_metrics(run: RunFolder, split: str) -> dict[str, Any] | None:
    """The ``metrics`` of the saved evaluation of ``split``, None when there is none (or it is unreadable)."""
    return _read_metrics(run, split)[0]


def _read_metrics(run: RunFolder, split: str) -> tuple[dict[str, Any] | None, str]:
    file = run.split_evaluation_dir(split) / "metrics.json"
    if not file.is_file():
        return None, ""
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))["metrics"]
        if not isinstance(metrics, dict):
            raise TypeError("its metrics are not a table")
        return metrics, ""
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"the {split} evaluation's {file.name} cannot be read ({exc})"


def _number(metrics: dict[str, Any] | None, key: str) -> float | None:
    value = (metrics or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_date(path: Path) -> datetime | None:
    """When the run started: from its folder name (``YYYYMMDD-HHMMSS-…``), else the folder's modification time."""
    run = RunFolder(path)
    match = RUN_NAME.match(run.name)
    if match:
        try:
            return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        except ValueError:
            pass
    try:
        return datetime.fromtimestamp(run.path.stat().st_mtime)
    except OSError:
        return None


# ----- sorting and text ---------------------------------------------------------------------------
COLUMNS: dict[str, str] = {  # column key -> heading
    "name": "Name", "date": "Date", "status": "Status", "backbone": "Backbone", "blocks": "Trainable blocks",
    "epochs": "Epochs", "time": "Time", "val": "Val acc.", "test": "Test acc.", "balanced": "Balanced acc.",
    "auc": "Macro AUC",
}
_SORT_KEYS: dict[str, Callable[[RunSummary], Any]] = {
    "name": lambda r: r.name.lower(), "date": lambda r: r.date, "status": lambda r: r.status,
    "backbone": lambda r: r.backbone, "blocks": lambda r: r.trainable_blocks, "epochs": lambda r: r.epochs_completed,
    "time": lambda r: r.seconds, "val": lambda r: r.val_accuracy, "test": lambda r: r.test_accuracy,
    "balanced": lambda r: r.balanced_accuracy, "auc": lambda r: r.macro_auc,
}
DESCENDING = frozenset({"date", "val", "test", "balanced", "auc"})  # newest and best first


def sort_runs(runs: list[RunSummary], column: str) -> list[RunSummary]:
    """``runs`` sorted by ``column`` (dates newest first, metrics best first, the rest A–Z); blanks last."""
    if column not in _SORT_KEYS:
        raise RunHistoryError(f"cannot sort by {column!r}; choose one of {', '.join(COLUMNS)}")
    key = _SORT_KEYS[column]
    known = [r for r in runs if key(r) not in (None, "")]
    blank = [r for r in runs if key(r) in (None, "")]
    return sorted(known, key=key, reverse=column in DESCENDING) + blank


def cell_text(run: RunSummary, column: str) -> str:
    """The text of one table cell (empty where the run has no such value)."""
    if column == "name":
        return run.name
    if column == "date":
        return f"{run.date:%Y-%m-%d %H:%M}" if run.date else ""
    if column == "epochs":
        if run.epochs_completed is None:
            return ""
        return f"{run.epochs_completed}/{run.epochs_planned}" if run.epochs_planned else str(run.epochs_completed)
    if column == "time":
        return duration_text(run.seconds)
    if column in ("val", "test", "balanced"):
        value = {"val": run.val_accuracy, "test": run.test_accuracy, "balanced": run.balanced_accuracy}[column]
        return "" if value is None else f"{value:.1%}"
    if column == "auc":
        return "" if run.macro_auc is None else f"{run.macro_auc:.3f}"
    return {"status": run.status, "backbone": run.backbone, "blocks": run.trainable_blocks}[column]


def duration_text(seconds: float | None) -> str:
    """``seconds`` as ``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


# ----- labels and deleting ------------------------------------------------------------------------
def _read_label(run: RunFolder) -> tuple[str, str, str]:
    if not run.label_file.is_file():
        return "", "", ""
    try:
        raw = json.loads(run.label_file.read_text(encoding="utf-8"))
        return str(raw.get("name", "")), str(raw.get("note", "")), ""
    except (OSError, ValueError, AttributeError) as exc:
        return "", "", f"{run.label_file.name} cannot be read ({exc})"


def set_label(path: str | Path, *, name: str | None = None, note: str | None = None) -> RunSummary:
    """Store the run's display name and/or note (None keeps what is there; empty text clears it)."""
    run = _existing_run(path)
    old_name, old_note, _ = _read_label(run)
    if name is not None:
        name = " ".join(name.split())
        if len(name) > MAX_NAME_LENGTH:
            raise RunHistoryError(f"a run's name can be at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    label = {"name": old_name if name is None else name, "note": old_note if note is None else note.strip()}
    atomic_write_text(run.label_file, json.dumps(label, indent=1, ensure_ascii=False))
    return summarize_run(run.path)


def move_to_trash(path: str | Path) -> None:
    """Move the run folder to the system trash; raise TrashUnavailable when the trash cannot take it."""
    run = _existing_run(path)
    from send2trash import send2trash
    from send2trash.exceptions import TrashPermissionError

    try:
        send2trash(str(run.path))
    except (TrashPermissionError, OSError) as exc:
        raise TrashUnavailable(f"{run.path} could not be moved to the trash ({exc}); "
                               f"it can only be deleted permanently") from exc


def delete_permanently(path: str | Path) -> None:
    """Delete the run folder for good (after the user agreed, when the trash is unavailable)."""
    run = _existing_run(path)
    try:
        shutil.rmtree(run.path)
    except OSError as exc:
        raise RunHistoryError(f"could not delete {run.path}: {exc.strerror or exc}") from exc


def _existing_run(path: str | Path) -> RunFolder:
    folder = Path(path).expanduser()
    if not looks_like_run(folder):
        raise RunHistoryError(f"{folder} is not a run folder")
    return RunFolder(folder)
