"""A band that offers to resume a run that was stopped, interrupted or failed after an epoch.

Whether a run can resume, and where it stands, is read from its run folder (cheap: no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from tl_desktop.config import ConfigError
from tl_desktop.engine.training.runfolder import RunFolder

HOW_IT_ENDED = {"stopped": "was stopped", "failed": "failed", None: "was interrupted"}
BAR_STYLE = "QFrame#resumeBar { background: #fff4d6; border: 1px solid #e0c060; border-radius: 4px; }"


@dataclass(frozen=True)
class ResumePoint:
    """A run that can go on: how it ended (None: killed), and how many of its epochs it finished."""

    run_dir: Path
    status: str | None
    epochs_done: int
    epochs_total: int

    def text(self) -> str:
        """'This run was stopped after epoch 3 of 10.'"""
        how = HOW_IT_ENDED.get(self.status, "ended")
        return f"This run {how} after epoch {self.epochs_done} of {self.epochs_total}."


def resume_point_of(run_dir: Path | None) -> ResumePoint | None:
    """The run's resume point, or None when it has none (it completed, or ended before its first epoch)."""
    if run_dir is None:
        return None
    run = RunFolder(run_dir)
    if not run.is_run() or not run.resume_file.is_file():
        return None
    try:
        total = run.config().train.epochs
    except (ConfigError, OSError, ValueError):
        return None
    history = run.epoch_history()
    return ResumePoint(run.path, run.status(), history[-1].epoch if history else 0, total)


class ResumeBar(QFrame):
    """'This run was stopped after epoch 3 of 10. [Resume training]' — hidden when there is nothing to resume."""

    resume_clicked = Signal(object)  # the run folder (a Path)

    def __init__(self, what_resume_does: str) -> None:
        super().__init__()
        self.setObjectName("resumeBar")
        self.setStyleSheet(BAR_STYLE)
        self.point: ResumePoint | None = None
        self._what = what_resume_does
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton("Resume training")
        self.button.setToolTip("Go on from the last finished epoch, with the run's own settings and images")
        self.button.clicked.connect(lambda: self.point and self.resume_clicked.emit(self.point.run_dir))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()

    def show_for(self, run_dir: Path | None, allowed: bool = True) -> None:
        """Offer to resume ``run_dir`` when it has a resume point and ``allowed`` (no training runs)."""
        self.point = resume_point_of(run_dir) if allowed else None
        if self.point is None:
            self.hide()
            return
        self.label.setText(f"{self.point.text()} {self._what}")
        self.show()
