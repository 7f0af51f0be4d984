"""The cross-validation dialog behind the Data page's "Cross-validate…" button.

It runs :func:`~tl_desktop.engine.workflows.cross_validation.run_cross_validation` with the window's
settings and scanned images on a worker thread, shows fold i of k with the epoch and the time left,
fills the fold table as folds end, and offers the report. Stop ends the current fold cleanly; the
finished folds are kept, and "Resume" (or "Resume a saved one…" for a CV folder from an earlier session,
like `tl-desktop cv --resume`) goes on with the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.training.events import EpochEnded, FitStarted
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import hint
from tl_desktop.gui.worker import QtRelay, TaskContext

if TYPE_CHECKING:
    from tl_desktop.config import RunConfig
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.workflows.cross_validation import CVResult

COLUMNS = ("Fold", "Held-out images", "Accuracy", "Balanced accuracy", "Macro AUC")


class CrossValidationDialog(QDialog):
    """Choose k, run the folds in the background, watch them, read the fold table, open the report."""

    def __init__(self, parent: QWidget | None, config: RunConfig, scan: ScanResult) -> None:
        super().__init__(parent)
        self.config, self.scan = config, scan
        self.tasks = Tasks(self)
        self.result: CVResult | None = None
        self.fold = (0, 0)
        self.fold_seconds: list[float] = []
        self.started_at = 0.0
        self.setWindowTitle("Cross-validation")
        self.resize(720, 520)
        self.folds = QSpinBox()
        self.folds.setRange(2, 20)
        self.folds.setValue(5)
        self.folds.setAccessibleName("Number of folds")
        self.final_model = QCheckBox("Then train the final model on every image outside the test part")
        close = self._make_buttons()
        self.status = QLabel("Each fold's model trains on the other folds and is tested on its own fold, which "
                             "it never sees. Images of one group stay in one fold.")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        choose = QHBoxLayout()
        choose.addWidget(QLabel("Folds:"))
        choose.addWidget(self.folds)
        choose.addWidget(self.final_model, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.open_button, self.start_button, self.stop_button, self.resume_button,
                       self.report_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(choose)
        layout.addWidget(hint(f"Settings of the Model page ({config.model.backbone}, trainable blocks "
                              f"{config.model.trainable_blocks}, {config.train.epochs} epochs); the test part "
                              f"({len(scan.split.test)} images) is kept out of every fold."))
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self.finished.connect(lambda _result: self.tasks.stop())

    def _make_buttons(self) -> QPushButton:
        """Start, Stop, Resume, Resume a saved one…, the report button; returns Close."""
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(lambda: self.tasks.stop("cross-validation"))
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Go on with this cross-validation: finished folds are kept, an interrupted "
                                      "fold goes on from its last finished epoch")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(lambda: self.resume(self.result.folder.path if self.result else None))
        self.open_button = QPushButton("Resume a saved one…")
        self.open_button.setToolTip("Choose the folder of a stopped or interrupted cross-validation to go on with it")
        self.open_button.clicked.connect(self.choose_and_resume)
        self.report_button = QPushButton("Create and open report")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(self.create_report)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        return close

    def start(self) -> None:
        """Run every fold on a worker thread."""
        config, scan, folds, final = self.config, self.scan, self.folds.value(), self.final_model.isChecked()

        def work(ctx: TaskContext) -> CVResult:
            from tl_desktop.engine.workflows.cross_validation import (
                run_cross_validation,
            )

            relay = QtRelay(ctx)
            return run_cross_validation(config, scan, folds, lambda index: [relay], ctx.emit, ctx.stop,
                                        final_model=final)

        self._launch(work)

    def choose_and_resume(self) -> None:
        """Pick a cross-validation folder from disk and go on with it."""
        from tl_desktop.engine.workflows.cv_folder import CVFolder

        chosen = QFileDialog.getExistingDirectory(self, "Choose a cross-validation folder", self.config.out_dir)
        if not chosen:
            return
        if not CVFolder(chosen).is_cv():
            dialogs.show_error(self, f"{chosen} is not a cross-validation folder.",
                               "Choose the folder a cross-validation created (it holds cv.json and fold-1, "
                               "fold-2, …).")
            return
        self.resume(chosen)

    def resume(self, folder: str | Path | None) -> None:
        """Go on with the cross-validation in ``folder``: finished folds are kept and shown again, an
        interrupted fold resumes from its last finished epoch, the others start."""
        if folder is None:
            return

        def work(ctx: TaskContext) -> CVResult:
            from tl_desktop.engine.workflows.cross_validation import (
                resume_cross_validation,
            )

            relay = QtRelay(ctx)
            return resume_cross_validation(folder, lambda index: [relay], ctx.emit, ctx.stop)

        self._say(f"Going on with {Path(folder).name}…")
        self._launch(work)

    def _launch(self, work: Any) -> None:
        """Run ``work`` (a whole or resumed cross-validation) on the worker thread, the buttons following."""

        def connect(worker: Any) -> None:
            worker.event.connect(self.on_event)
            worker.succeeded.connect(self._done)
            worker.failed.connect(self._failed)
            worker.finished.connect(self._finished)

        self.table.setRowCount(0)
        self.fold_seconds = []
        self.result = None
        for button in (self.start_button, self.open_button, self.resume_button, self.report_button, self.folds):
            button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.started_at = time.monotonic()
        self.tasks.start(work, "cross-validation", connect)

    def on_event(self, event: Any) -> None:
        """Fold and epoch events from the worker: progress, time left, the fold table."""
        from tl_desktop.engine.workflows.cross_validation import FoldEnded, FoldStarted

        if isinstance(event, FoldStarted):
            self.fold = (event.index, event.total)
            self.bar.setRange(0, 100 * event.total)
            self.bar.setValue(100 * (event.index - 1))
            self._say(f"Fold {event.index} of {event.total}: training on {event.train} images, "
                      f"held out {event.held_out}.")
        elif isinstance(event, FitStarted):
            self._say(f"Fold {self.fold[0]} of {self.fold[1]}: preparing (the first fold computes the "
                      "frozen features for all folds).")
        elif isinstance(event, EpochEnded) and self.fold[1]:
            index, total = self.fold
            done = index - 1 + event.epoch / max(1, event.total_epochs)
            self.bar.setValue(int(100 * done))
            self._say(f"Fold {index} of {total}: epoch {event.epoch} of {event.total_epochs}. "
                      f"{_time_left(self.fold_seconds, total - done)}")
        elif isinstance(event, FoldEnded) and event.status == "completed":
            now = time.monotonic()
            if event.trained_now:  # not a fold a resumed cross-validation kept from before
                self.fold_seconds.append(now - self.started_at)
            self.started_at = now
            self._add_row(event.index, event.held_out, event.figures)

    def _add_row(self, index: int, held_out: int, figures: dict[str, float | None]) -> None:
        from tl_desktop.engine.evaluation.formatting import fmt, is_percent

        row = self.table.rowCount()
        self.table.insertRow(row)
        cells = [str(index), str(held_out),
                 *(fmt(figures.get(n), is_percent(n)) for n in ("accuracy", "balanced_accuracy", "macro_auc"))]
        for column, text in enumerate(cells):
            self.table.setItem(row, column, QTableWidgetItem(text))

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _done(self, result: CVResult) -> None:
        from tl_desktop.engine.evaluation.folds import AcrossFolds, summary_text

        self.result = result
        summary = result.summary or {}
        lines = [summary_text(n, AcrossFolds.from_dict(raw)) for n, raw in summary.get("across_folds", {}).items()
                 if not n.startswith("recall:")]
        oof = summary.get("out_of_fold") or {}
        if oof.get("accuracy") is not None:
            lines.append(f"Pooled out-of-fold accuracy {100 * oof['accuracy']:.1f}% on {oof['num_samples']} images "
                         "(the figure to quote; see the report for its interval).")
        self.summary.setText("\n".join(lines))
        state = {"completed": "All folds finished.", "stopped": "Stopped; the finished folds are kept."}
        self._say(f"{state.get(result.status, 'A fold failed: ' + str(result.error))} Saved in {result.folder.path}.")
        self.bar.setValue(self.bar.maximum() if result.status == "completed" else self.bar.value())
        self.report_button.setEnabled(bool(summary.get("folds_done")))
        self.resume_button.setEnabled(result.status != "completed")

    def _failed(self, message: str, details: str) -> None:
        self._say(f"The cross-validation could not run: {message}")
        dialogs.show_error(self, f"The cross-validation could not run.\n\n{message}",
                           "Check the data and the settings, then start again.", details)

    def _finished(self) -> None:
        self.stop_button.setEnabled(False)
        for widget in (self.start_button, self.open_button, self.folds):
            widget.setEnabled(True)

    def create_report(self) -> None:
        """Write the CV report in the background and open it."""
        if self.result is None:
            return
        folder = self.result.folder.path

        def write(_ctx: TaskContext) -> Path:
            from tl_desktop.report.cv_report import build_cv_report

            return build_cv_report(folder).html

        def connect(worker: Any) -> None:
            worker.succeeded.connect(lambda html: QDesktopServices.openUrl(QUrl.fromLocalFile(str(html))))
            worker.failed.connect(lambda message, details: dialogs.show_error(
                self, f"Could not write the report.\n\n{message}", "Check that the folder can be written.", details))

        self._say("Writing the report…")
        self.tasks.start(write, "cv-report", connect)


def _time_left(fold_seconds: list[float], folds_left: float) -> str:
    """ "About 3 min left", from the quickest finished fold (the first one also computed the shared
    frozen features, so it is the slowest); nothing before a fold has finished."""
    if not fold_seconds:
        return "Time left is shown once the first fold (which prepares the features for all) is done."
    left = min(fold_seconds) * folds_left
    return f"About {left / 60:.0f} min left." if left >= 90 else f"About {left:.0f} s left."
