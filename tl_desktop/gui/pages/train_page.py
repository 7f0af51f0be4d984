"""Step 3 — Train: Start / Stop, progress with ETA, live curves, the best so far, a readable log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
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

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.engine.training.callbacks import format_seconds
from tl_desktop.engine.training.errors import describe_error
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
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.pages.follow_run import RunsElsewhere
from tl_desktop.gui.pages.train_helpers import (
    PHASE_TEXT,
    STATUS_TEXT,
    cache_bar,
    check_for_training,
    default_runs_folder,
    epochs_text,
    outcome_text,
    refusal_hint,
    stage_text,
)
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import PathPicker, heading, hint, human_count
from tl_desktop.gui.widgets.live_plots import LivePlots
from tl_desktop.gui.widgets.resume_bar import ResumeBar
from tl_desktop.gui.widgets.settings_form import DEVICE_TEXT
from tl_desktop.gui.worker import Worker, fit_in_context

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.training.checks import TrainingPlan
    from tl_desktop.engine.training.trainer import FitResult

START_TEXT = "Start training"


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
        self.start_button = QPushButton(START_TEXT)
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
        self.resume_bar = ResumeBar("Resume goes on from there with the run's own settings and images.")
        self.resume_bar.resume_clicked.connect(self.resume_training)
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
        self.elsewhere = RunsElsewhere(self)  # follow a run written elsewhere; prepare one for a server
        layout.addWidget(self.elsewhere)
        layout.addWidget(self.resume_bar)
        layout.addWidget(self.plan)
        layout.addWidget(self.progress)
        layout.addWidget(self.best)
        layout.addWidget(splitter, 1)
        self.status_of_run = ""
        self.outcome = ""
        self._fit_started_at = 0.0
        self._epochs_total = 1
        self._epochs_before = 0  # epochs a resumed run had finished before this session (for the ETA)
        self._stopping = False
        self._cache_stage: tuple[str, str] = ("", "")
        for changed in (session.config_changed, session.scan_changed, session.catalogue_changed):
            changed.connect(lambda: self._describe_plan())
        for changed in (session.run_changed, session.training_state_changed):
            changed.connect(lambda *_: self._offer_resume())
        session.resume_requested.connect(self.resume_training)

    def on_shown(self) -> None:
        self.session.want_catalogue()  # to name the model, and to know whether its weights must be downloaded
        self._describe_plan()
        self._offer_resume()

    def _offer_resume(self) -> None:
        """Show "Resume training" when the current run has a resume point and nothing runs."""
        self.resume_bar.show_for(self.session.run_dir, allowed=not self.session.training
                                 and not self.busy("check"))

    def _describe_plan(self, starting: bool = False) -> None:
        """The plan line: what the next (or, when ``starting``, this) run does, after the last outcome."""
        if self.session.training:
            return
        scan, cfg, catalogue = self.session.scan, self.session.config, self.session.catalogue
        if scan is None:  # (a resumed run trains on its own images)
            self.plan.setText(f"{self.outcome}\nNext run: choose an image folder on the Data page first."
                              if self.outcome else "First choose an image folder on the Data page.")
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
        """Check the inputs (in the background: the checks import torch), then train a new run."""
        if self.session.training or self.busy("check"):
            return
        if self.session.scan is None:
            self.show_error("There are no images to train on yet.",
                            "Go to the Data page, choose a folder of images and wait for the scan to finish.")
            self.go_to_step.emit(Step.DATA)
            return
        out_dir = self.out_dir.path() or default_runs_folder()
        self.session.remember("folders/runs", out_dir)
        self._check_then_train(self.session.config.replace(out_dir=out_dir), self.session.scan, None)

    def resume_training(self, run_dir: Path | None = None) -> None:
        """Go on training ``run_dir`` (default: the current run) from its resume point."""
        run_dir = run_dir or self.session.run_dir
        if self.session.training or self.busy("check") or run_dir is None:
            return
        run = RunFolder(run_dir)
        if not run.is_run() or not run.resume_file.is_file():
            self.show_error(f"{run.path} cannot be resumed: it has no resume point.",
                            "A run can go on only if it stopped after at least one finished epoch and did not "
                            "complete. Start a new training run instead.")
            return
        try:
            cfg = run.config()
        except ConfigError as exc:
            self.show_error(f"The settings of {run.name} cannot be read: {exc}", "Start a new training run instead.")
            return
        self.go_to_step.emit(Step.TRAIN)
        self._check_then_train(cfg, None, run.path)

    def _check_then_train(self, cfg: RunConfig, scan: ScanResult | None, resume_run: Path | None) -> None:
        """Run the engine's pre-training checks as a short task; train when they pass (``scan`` None: the
        resumed run's own images)."""
        worker = self.run_task(lambda ctx: check_for_training(cfg, scan, resume_run), "check",
                               on_success=lambda result: self._checked(*result, resume_run),
                               on_done=self._check_done, error_title="The settings could not be checked.")
        if worker is not None:
            self.start_button.setEnabled(False)
            self.start_button.setText("Checking…")
            self.resume_bar.hide()
            self.status.emit("Checking the settings…")

    def _check_done(self) -> None:
        if not self.session.training:
            self.start_button.setEnabled(True)
            self._offer_resume()
        self.start_button.setText(START_TEXT)

    def _checked(self, plan: TrainingPlan | Exception, scan: ScanResult, resume_run: Path | None) -> None:
        """The checks passed (ask before a download, then train) or refused (say why and where to fix it)."""
        if isinstance(plan, Exception):
            self.show_error(f"Training cannot start: {describe_error(plan)}.", refusal_hint(plan))
            return
        if plan.needs_download and not dialogs.ask_yes_no(
                self, "Download weights", f"The pretrained weights for {plan.spec.title} are not on this "
                "computer. Download them now and train?", "Or use “Load weights from file…” on the Model page.",
                yes_text="Download and train"):
            self.status.emit("Training not started.")
            return
        self._start_fit(plan.config, scan, resume_run)

    def _start_fit(self, cfg: RunConfig, scan: ScanResult, resume_run: Path | None) -> None:
        """Start the trainer on a worker thread (a new run, or ``resume_run`` going on)."""
        if resume_run is None:
            self.session.set_config(cfg)
            self.session.save_config()
        self.reset_view()
        if resume_run is not None:
            self._show_history(RunFolder(resume_run))
        self.worker = self.run_task(lambda ctx: fit_in_context(cfg, scan, ctx, resume_run), "train",
                                    on_event=self.on_event, on_success=self._fit_returned,
                                    on_done=self._worker_done,
                                    error_title="Training could not run.",
                                    error_hint="Check the settings and the image folder, then start again.")
        if self.worker is None:  # the window is closing
            return
        self.session.set_training(True)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.emit(("Resuming training" if resume_run else "Training") + "… you can keep using the window.")

    def _show_history(self, run: RunFolder) -> None:
        """A resumed run's finished epochs, in the curves and the best-so-far line, before it goes on."""
        history = run.epoch_history()
        self.plots.add_history(history)
        best = [e for e in history if e.is_best]
        if best:
            self.best.setText(f"Best so far: {100 * best[-1].val_accuracy:.1f}% validation accuracy "
                              f"(epoch {best[-1].epoch})")
        self._epochs_before = history[-1].epoch if history else 0
        self.plan.setText(f"Resuming run {run.name} after epoch {self._epochs_before}, with its own settings "
                          "and images.")

    def stop_training(self) -> None:
        """Ask the trainer to stop at its next step (sets the stop token from this thread)."""
        if self.worker is not None and self.worker.running:
            self.worker.stop()
            self._stopping = True
            self.stop_button.setEnabled(False)
            self.progress.setFormat("Stopping…")
            self._log("Stop requested: finishing the current step and keeping the best model.")

    def reset_view(self) -> None:
        """Empty curves, log and progress for a run about to show."""
        self.plots.reset()
        self.log.clear()
        self.best.setText("Best so far: —")
        self._set_bar(0, "Preparing…")
        self.status_of_run = ""
        self.outcome = ""
        self._stopping = False
        self._epochs_before = 0
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
            self.plots.truncate(event.epoch)  # a resumed run may repeat an epoch it had not saved
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
            self._log(f"Warning: {event.text}" if event.level == "warning" else event.text[:1].upper() + event.text[1:])
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
        self._set_bar(*cache_bar(e, words))

    def _show_progress(self, epochs_done: float, text: str) -> None:
        share = epochs_done / self._epochs_total
        # The time left from this session's pace: a resumed run's earlier epochs took no time here.
        before = min(self._epochs_before, self._epochs_total - 1)
        share_now = max(0.0, epochs_done - before) / (self._epochs_total - before)
        elapsed = time.monotonic() - self._fit_started_at
        if share_now > 0.02 and elapsed > 2:
            text += f" — about {format_seconds(elapsed * (1 - share_now) / share_now)} left"
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
        done = epochs_text(e, self._epochs_before)
        self._stopping = False
        self._set_bar(1000 if e.status == "completed" else self.progress.value() if self.progress.maximum() else 0,
                      f"{STATUS_TEXT.get(e.status, e.status)} {done}")
        self.outcome = outcome_text(e, self._epochs_before)
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
