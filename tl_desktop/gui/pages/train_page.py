"""Step 3 — Train: Start / Stop, progress with ETA, live curves, the best so far, a readable log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
)

from tl_desktop.engine.training.callbacks import format_seconds
from tl_desktop.engine.training.events import (
    BatchEnded,
    CacheProgress,
    CheckpointSaved,
    EpochEnded,
    EpochStarted,
    Event,
    FitEnded,
    FitStarted,
    Message,
    PhaseStarted,
)
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import PathPicker, heading, hint, human_count
from tl_desktop.gui.widgets.live_plots import LivePlots
from tl_desktop.gui.widgets.settings_form import DEVICE_TEXT
from tl_desktop.gui.worker import Worker, fit_in_context

if TYPE_CHECKING:
    from tl_desktop.engine.training.trainer import FitResult

PHASE_TEXT = {"head": "training only the new head", "finetune": "fine-tuning the unfrozen blocks"}
STATUS_TEXT = {"completed": "Training finished.", "stopped": "Training stopped.",
               "failed": "Training failed."}


def stage_text(e: CacheProgress) -> str:
    """What a cache stage does, in plain words."""
    images = "training" if e.split == "train" else "validation"
    if e.stage == "decoding":
        return f"reading the {images} images"
    if e.stage == "features":
        return f"summarising the {images} images for the new head"
    if e.stage == "activations":
        return f"running the frozen layers on the {images} images"
    return e.describe()


def outcome_text(e: FitEnded) -> str:
    """What happened in a finished run and what to do next, for the plan line."""
    best = (f"the best model (epoch {e.best_epoch}, {100 * e.best_val_accuracy:.1f}% validation accuracy) "
            if e.model_path and e.best_epoch is not None and e.best_val_accuracy is not None
            else "the best model ")
    if e.status == "completed":
        return (f"Finished: {e.epochs_completed} epoch(s) in {format_seconds(e.seconds)}; {best}is saved. "
                "Next: check it on the Results page, or change the settings and train again.")
    if e.status == "stopped" and e.model_path:
        return (f"Stopped after {e.epochs_completed} epoch(s); {best}is kept. Next: check it on the Results "
                "page, or start a new training run.")
    if e.status == "stopped":
        return ("Stopped before the first epoch finished, so no model was saved. Next: start training again "
                "and let at least one epoch finish.")
    return (f"Failed: {e.error or 'unknown error'}. Next: change the settings on the Model page or the images "
            "on the Data page, then start again.")


def default_runs_folder() -> str:
    """Documents/tl-desktop runs (or the home folder when there is no Documents folder)."""
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return str(Path(docs or Path.home()) / "tl-desktop runs")


class TrainPage(Page):
    """Runs the trainer on a worker thread and shows its events."""

    step = Step.TRAIN
    title = "Train"
    step_hint = "watch it learn"
    hint = "Start training and watch it learn."
    run_finished = Signal(str)

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.worker: Worker | None = None
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.start_button.setToolTip("Start training (Ctrl+Enter)")
        self.start_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("Stop after the current step; the best model so far is kept")
        self.stop_button.clicked.connect(self.stop_training)
        self.out_dir = PathPicker("Folder for training runs", button_text="Change…")
        self.out_dir.set_path(str(session.recall("folders/runs", default_runs_folder())))
        self.plan = QLabel()
        self.plan.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("Not started")
        self.progress.setTextVisible(True)
        self.best = QLabel("Best so far: —")
        self.best.setStyleSheet("font-weight: bold;")
        self.plots = LivePlots()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setAccessibleName("Training log")
        self.log.setMaximumBlockCount(5000)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(QLabel("Save runs in:"))
        buttons.addWidget(self.out_dir, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.log)
        splitter.setSizes([380, 160])
        layout = QVBoxLayout(self)
        layout.addWidget(heading("3. Train"))
        layout.addWidget(hint("Training runs in the background: the window stays usable, and Stop keeps "
                              "the best model found so far."))
        layout.addLayout(buttons)
        layout.addWidget(self.plan)
        layout.addWidget(self.progress)
        layout.addWidget(self.best)
        layout.addWidget(splitter, 1)
        self.status_of_run = ""
        self.outcome = ""
        self._fit_started_at = 0.0
        self._epochs_total = 1
        self._stopping = False
        self._cache_stage: tuple[str, str] = ("", "")
        for changed in (session.config_changed, session.scan_changed, session.catalogue_changed):
            changed.connect(lambda: self._describe_plan())

    def on_shown(self) -> None:
        self.session.want_catalogue()  # to name the model, and to know whether its weights must be downloaded
        self._describe_plan()

    def _describe_plan(self, starting: bool = False) -> None:
        """The plan line: what the next (or, when ``starting``, this) run does, after the last outcome."""
        if self.session.training:
            return
        scan, cfg, catalogue = self.session.scan, self.session.config, self.session.catalogue
        if scan is None:
            self.plan.setText("First choose an image folder on the Data page.")
            return
        blocks = cfg.model.trainable_blocks
        what = ("only the new head" if blocks == 0 else "all blocks" if blocks == "all"
                else "the last block and the new head" if blocks == 1
                else f"the last {blocks} blocks and the new head")
        model = catalogue.title(cfg.model.backbone) if catalogue is not None else cfg.model.backbone
        device = DEVICE_TEXT.get(cfg.train.device, cfg.train.device)
        plan = (f"{model}, training {what}, {cfg.train.epochs} epochs on {len(scan.split.train)} images "
                f"({len(scan.split.classes)} classes), device: {device}.")
        if starting:
            self.plan.setText(f"Training: {plan}")
        else:
            self.plan.setText(f"{self.outcome}\nNext run: {plan}" if self.outcome else f"Ready: {plan}")

    # ----- start / stop -------------------------------------------------------------------------
    def start_training(self) -> None:
        """Check the inputs, then start the trainer on a worker thread."""
        from tl_desktop.config import ConfigError

        if self.session.training:
            return
        if self.session.scan is None:
            self.show_error("There are no images to train on yet.",
                            "Go to the Data page, choose a folder of images and wait for the scan to finish.")
            self.go_to_step.emit(Step.DATA)
            return
        out_dir = self.out_dir.path() or default_runs_folder()
        self.session.remember("folders/runs", out_dir)
        cfg = self.session.config.replace(out_dir=out_dir)
        try:
            cfg.validate()
        except ConfigError as exc:
            self.show_error(f"A training setting is not valid: {exc}", "Change it on the Model page.")
            return
        catalogue = self.session.catalogue
        if catalogue is not None and catalogue.needs_download(cfg.model) and not dialogs.ask_yes_no(
                self, "Download weights", f"The pretrained weights for {cfg.model.backbone} are not on this "
                "computer. Download them now and train?", "Or use “Load weights from file…” on the Model page.",
                yes_text="Download and train"):
            return
        self.session.set_config(cfg)
        self.session.save_config()
        self._reset_view()
        scan = self.session.scan
        self.worker = self.run_task(lambda ctx: fit_in_context(cfg, scan, ctx), "train",
                                    on_event=self.on_event, on_success=self._fit_returned,
                                    on_done=self._worker_done,
                                    error_title="Training could not run.",
                                    error_hint="Check the settings and the image folder, then start again.")
        if self.worker is None:  # the window is closing
            return
        self.session.set_training(True)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.emit("Training… you can keep using the window.")

    def stop_training(self) -> None:
        """Ask the trainer to stop at its next step (sets the stop token from this thread)."""
        if self.worker is not None and self.worker.running:
            self.worker.stop()
            self._stopping = True
            self.stop_button.setEnabled(False)
            self.progress.setFormat("Stopping…")
            self._log("Stop requested: finishing the current step and keeping the best model.")

    def _reset_view(self) -> None:
        self.plots.reset()
        self.log.clear()
        self.best.setText("Best so far: —")
        self._set_bar(0, "Preparing…")
        self.status_of_run = ""
        self.outcome = ""
        self._stopping = False
        self._cache_stage = ("", "")
        self._describe_plan(starting=True)

    # ----- events -------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Show one trainer event (GUI thread)."""
        if isinstance(event, BatchEnded):
            self.plots.add_batch(event.epoch, event.step, event.steps, event.loss, event.accuracy)
            self._show_progress(event.epoch - 1 + event.step / max(1, event.steps),
                                f"Epoch {event.epoch} of {self._epochs_total} — step {event.step} of {event.steps}")
        elif isinstance(event, EpochEnded):
            self._epoch_ended(event)
        elif isinstance(event, EpochStarted):
            self._show_progress(event.epoch - 1, f"Epoch {event.epoch} of {event.total_epochs}")
        elif isinstance(event, CacheProgress):
            self._cache_progress(event)
        elif isinstance(event, FitStarted):
            self._fit_started(event)
        elif isinstance(event, PhaseStarted):
            if event.phase == "finetune" and event.first_epoch > 1:
                self.plots.mark_finetune(event.first_epoch)
            self._log(f"Epochs {event.first_epoch}–{event.last_epoch}: {PHASE_TEXT.get(event.phase, event.phase)}, "
                      f"{human_count(event.trainable_params)} of {human_count(event.total_params)} parameters "
                      f"train (learning rate {event.lr:g}).")
        elif isinstance(event, Message):
            self._log(("Warning: " if event.level == "warning" else "") + event.text)
        elif isinstance(event, CheckpointSaved):
            self.best.setToolTip(f"Saved in {event.path}")
        elif isinstance(event, FitEnded):
            self._fit_ended(event)

    def _fit_started(self, event: FitStarted) -> None:
        self._epochs_total = max(1, event.total_epochs)
        self._fit_started_at = time.monotonic()
        self._log(f"Training on {event.device}: {event.num_train} training and {event.num_val} validation "
                  f"images, {len(event.classes)} classes. Run folder: {event.run_dir}")

    def _set_bar(self, value: int | None, text: str) -> None:
        """Show ``value`` of 1000 (None: busy, size unknown); while stopping the text says so."""
        if value is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(value)
        self.progress.setFormat("Stopping…" if self._stopping else text)

    def _cache_progress(self, e: CacheProgress) -> None:
        """Preparing data before the first epoch: one stage at a time, determinate when its size is known."""
        words = stage_text(e)
        if (e.stage, e.split) != self._cache_stage:
            self._cache_stage = (e.stage, e.split)
            self._log(f"Preparing: {words}" + (" (done once, then reused)" if e.stage != "weights" else "")
                      + ".")
        if e.total <= 0:
            amount = f" — {e.done / 1e6:.1f} MB" if e.stage == "weights" else ""
            self._set_bar(None, f"Preparing: {words}{amount}…")
        elif e.stage == "weights":
            self._set_bar(int(1000 * e.done / e.total),
                          f"Preparing: {words} — {e.done / 1e6:.1f} of {e.total / 1e6:.1f} MB")
        else:
            self._set_bar(int(1000 * min(e.done, e.total) / e.total), f"Preparing: {words} — {e.done} of {e.total}")

    def _show_progress(self, epochs_done: float, text: str) -> None:
        share = epochs_done / self._epochs_total
        elapsed = time.monotonic() - self._fit_started_at
        if share > 0.02 and elapsed > 2:
            text += f" — about {format_seconds(elapsed * (1 - share) / share)} left"
        self._set_bar(int(1000 * share), text)

    def _epoch_ended(self, e: EpochEnded) -> None:
        self.plots.add_epoch(e.epoch, e.train_loss, e.val_loss, e.train_accuracy, e.val_accuracy, e.is_best)
        best = " — best so far" if e.is_best else ""
        self._log(f"Epoch {e.epoch}/{e.total_epochs}: training accuracy {100 * e.train_accuracy:.1f}% "
                  f"(loss {e.train_loss:.3f}), validation accuracy {100 * e.val_accuracy:.1f}% "
                  f"(loss {e.val_loss:.3f}){best}. {e.seconds:.0f} s.")
        if e.is_best:
            self.best.setText(f"Best so far: {100 * e.val_accuracy:.1f}% validation accuracy (epoch {e.epoch})")
        self._set_bar(int(1000 * e.epoch / max(1, e.total_epochs)),
                      f"Epoch {e.epoch} of {e.total_epochs} done — about {format_seconds(e.eta_seconds)} left")

    def _fit_ended(self, e: FitEnded) -> None:
        self.status_of_run = e.status
        self.plots.flush()
        done = f"{e.epochs_completed} epoch(s) in {format_seconds(e.seconds)}"
        self._stopping = False
        self._set_bar(1000 if e.status == "completed" else self.progress.value() if self.progress.maximum() else 0,
                      f"{STATUS_TEXT.get(e.status, e.status)} {done}")
        self.outcome = outcome_text(e)
        self._log(f"{STATUS_TEXT.get(e.status, e.status)} {done}.")
        if e.model_path:
            self._log(f"Best model (epoch {e.best_epoch}) saved as {e.model_path}")
        elif e.status == "stopped":
            self._log("No epoch finished, so no model was saved.")
        if e.status == "failed":
            self.show_error(f"Training failed: {e.error}",
                            "Check the message, change the settings or the images, and start again.",
                            e.error_details or "")

    def _fit_returned(self, result: FitResult) -> None:
        self.session.set_run(Path(result.run_dir) if result.model_path else None, result)

    def _worker_done(self) -> None:
        self.session.set_training(False)
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        status = self.status_of_run or "failed"
        if not self.outcome:
            self.outcome = ("Training failed before it could start. Next: read the message, change the settings "
                            "or the images, and start again.")
        self._describe_plan()
        self.status.emit(STATUS_TEXT.get(status, status))
        self.run_finished.emit(status)

    def _log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
