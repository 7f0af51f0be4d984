"""What the pages share: the current configuration, scan, run and loaded model, with change signals.

Pages read from the session and write their part of the configuration back; they never talk to
each other directly. Every heavy object (scan result, fit result) is produced by a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from tl_desktop.config import RunConfig


class Session(QObject):
    """Shared state of the window."""

    scan_changed = Signal()
    run_changed = Signal()
    evaluation_changed = Signal()
    training_state_changed = Signal(bool)

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.config = RunConfig()
        self.scan: Any = None
        self.run_dir: Path | None = None
        self.fit_result: Any = None
        self.evaluations: dict[str, tuple[Any, Any]] = {}
        self.training = False

    def set_scan(self, scan: Any) -> None:
        """A new dataset scan replaces the old one."""
        self.scan = scan
        self.scan_changed.emit()

    def set_run(self, run_dir: Path | None, fit_result: Any = None) -> None:
        """A finished (or loaded) run becomes the current one; its old evaluations are dropped."""
        self.run_dir = run_dir
        self.fit_result = fit_result
        self.evaluations = {}
        self.run_changed.emit()

    def set_evaluation(self, split: str, predictions: Any, metrics: Any) -> None:
        """Store the evaluation of the current run on one split."""
        self.evaluations[split] = (predictions, metrics)
        self.evaluation_changed.emit()

    def set_training(self, running: bool) -> None:
        self.training = running
        self.training_state_changed.emit(running)

    def model_path(self) -> Path | None:
        """The current run's exported model file, when it exists."""
        if self.run_dir is None:
            return None
        path = self.run_dir / "model.tlmodel"
        return path if path.exists() else None

    def remember(self, key: str, value: Any) -> None:
        self.settings.setValue(key, value)

    def recall(self, key: str, default: Any = None) -> Any:
        value = self.settings.value(key, default)
        return default if value is None else value
