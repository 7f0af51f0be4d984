"""``Trainer.fit()``: the training loop, flat and explicit, talking to the world only through events.

A fit emits the events in :mod:`tl_desktop.engine.training.events`' order and never raises for training
problems: a stop request ends it with status "stopped", any error with status "failed" (a one-line
``error`` plus the traceback in ``error_details``), and ``FitEnded`` is always the last event.

Seam for speed-ups: each phase gets its batches from the run's batch sources
(:mod:`tl_desktop.engine.training.batch_sources`). A ``BatchSource`` says what its inputs are (images,
the output of block ``start_block - 1``, or pooled features), so cached activations replace image
decoding without touching the loop (:mod:`tl_desktop.engine.training.epochs`).

Under torchrun (``ranks``, :mod:`tl_desktop.engine.training.distributed`) every rank runs the same fit on
its share of each global batch; rank 0 alone writes the run folder, and a failure on any rank ends
them all, named in rank 0's ``FitEnded``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tl_desktop.config import RunConfig
from tl_desktop.engine.runtime.allocator import heavy_work
from tl_desktop.engine.runtime.device import (
    configure_threads,
    describe_device,
    pick_device,
    prepare_model,
)
from tl_desktop.engine.runtime.stop import StopRequested, StopToken
from tl_desktop.engine.training import recipe
from tl_desktop.engine.training.batch_sources import (
    BatchSources,
    PlainSources,
    SourceContext,
)
from tl_desktop.engine.training.cached_sources import CachedSources
from tl_desktop.engine.training.callbacks import (
    Callback,
    EarlyStopping,
    History,
    JsonlLogger,
    is_better,
    stop_reason,
)
from tl_desktop.engine.training.checks import check_split, check_trainable_blocks
from tl_desktop.engine.training.distributed import Ranks, rank_device, seed_rank
from tl_desktop.engine.training.epochs import EpochLoop, TrainingDiverged
from tl_desktop.engine.training.errors import describe_error
from tl_desktop.engine.training.events import (
    CacheProgress,
    CheckpointSaved,
    EpochEnded,
    Event,
    FitEnded,
    FitStarted,
    Message,
    PhaseStarted,
)
from tl_desktop.engine.training.probe_phase import probe_kept, run_probe_phase
from tl_desktop.engine.training.resume import (
    ResumeState,
    capture_rng,
    load_resume_state,
    restore_rng,
    save_resume_state,
)
from tl_desktop.engine.training.runfolder import RunFolder

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import Sample, ScanResult

__all__ = ["FitResult", "Trainer", "TrainingDiverged"]


@dataclass
class FitResult:
    """How a fit ended and where its outputs are."""

    status: str
    run_dir: Path
    model_path: Path | None
    best_epoch: int | None
    best_val_accuracy: float | None
    history: list[EpochEnded]


class Trainer:
    """Trains one run: ``Trainer(config, scan).fit()``; stop it from any thread through ``stop``."""

    use_caches: bool = True  # feature and decoded-image caches behind the seam; False: decode every epoch

    def __init__(
        self,
        config: RunConfig,
        scan: ScanResult | None = None,
        callbacks: Sequence[Callback] = (),
        stop: StopToken | None = None,
        run_dir: Path | None = None,
        resume: bool = False,
        feature_pool: Sequence[Sample] = (),
        ranks: Ranks | None = None,
    ) -> None:
        self.config = config
        self.ranks = ranks or Ranks()
        self.feature_pool = tuple(feature_pool)  # see SourceContext.feature_pool
        self.scan = scan
        self.user_callbacks = list(callbacks)
        self.stop = stop or StopToken()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.folder: RunFolder | None = None
        self.resume = resume
        self._resume: ResumeState | None = None
        self.model = None
        self.device = torch.device("cpu")
        self.spec = None
        self.generator: torch.Generator | None = None
        self.criterion: torch.nn.Module | None = None
        self._callbacks: list[Callback] = []
        self._started = False
        self.sources: BatchSources | None = None
        self.loop: EpochLoop | None = None

    # ----- events -------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Send ``event`` to every callback, in order."""
        for callback in self._callbacks:
            callback.on_event(event)

    def _emit_safely(self, event: Event) -> None:
        # The closing events must reach every callback even if one fails (e.g. a full disk for the log).
        for callback in self._callbacks:
            try:
                callback.on_event(event)
            except Exception:  # noqa: BLE001 - the run is over; nothing left to report the error to
                continue

    # ----- fit ----------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Run the whole training; always returns, and ``FitEnded`` is always the last event."""
        t0 = time.monotonic()
        cfg = self.config
        self._history = History()
        self._early = EarlyStopping(cfg.train.early_stopping_patience)
        self._best: tuple[int, float, float] | None = None  # (epoch, val accuracy, val loss)
        self._epochs_done = 0
        self._epoch_seconds: list[float] = []
        status, error, details, model_path = "completed", None, None, None
        keep_best = False
        with heavy_work():
            try:
                # Callbacks first: a run folder that cannot be created is a failure the user must see.
                self._callbacks = [self._history, self._early, *self.user_callbacks]
                self._open_folder()
                self._resume = load_resume_state(self.folder.resume_file) if self.resume else None
                self._prepare()
                self._emit_started()
                self._build_model()
                self._announce_loss()
                self._restore_progress()
                for phase in recipe.plan_phases(cfg.train, cfg.model.trainable_blocks):
                    if self._resume is not None and phase.last_epoch <= self._resume.epoch:
                        continue  # finished before the run was interrupted
                    if not self._run_phase(phase):
                        break
                if (kept := probe_kept(cfg.train, self._best, self._epochs_done)) is not None:
                    self.emit(kept)
            except StopRequested:
                status = "stopped"
            except Exception as exc:  # noqa: BLE001 - fit reports every failure as an event, never raises
                status, error, details = "failed", describe_error(exc), traceback.format_exc()
                keep_best = isinstance(exc, TrainingDiverged)  # the checkpoint predates the divergence
                if self.ranks.distributed:
                    status, error = self._rank_failure(exc, error)
            if self.sources is not None:
                self.sources.close()
        if (status != "failed" or keep_best) and self._best is not None and self.ranks.is_main:
            try:
                model_path = self._export()
                if status == "completed":
                    self.folder.resume_file.unlink(missing_ok=True)
            except Exception as exc:  # noqa: BLE001
                status, error, details = "failed", describe_error(exc), traceback.format_exc()
        if not self._started and self._callbacks:
            self._started = True  # it failed before FitStarted: announce what is known, then the failure
            self._emit_safely(self._started_event())
        best_epoch, best_acc, best_loss = self._best or (None, None, None)
        ended = FitEnded(
            status=status, run_dir=str(self.run_dir), model_path=str(model_path) if model_path else None,
            best_epoch=best_epoch, best_val_accuracy=best_acc, best_val_loss=best_loss,
            epochs_completed=self._epochs_done, seconds=time.monotonic() - t0, error=error, error_details=details,
        )
        self._emit_safely(ended)
        return FitResult(status, Path(str(self.run_dir)), model_path, best_epoch, best_acc, list(self._history.epochs))

    def _open_folder(self) -> None:
        """Rank 0 creates (or opens) the run folder and its event log; other ranks only learn its path."""
        cfg = self.config
        if self.ranks.is_main:
            self.folder = RunFolder(self.run_dir) if self.run_dir else RunFolder.create(cfg.out_dir, cfg.model.backbone)
            self.folder.path.mkdir(parents=True, exist_ok=True)
            self._callbacks.insert(0, JsonlLogger(self.folder.events_file))
        self.run_dir = Path(self.ranks.broadcast_text(str(self.folder.path) if self.folder else None))
        self.folder = self.folder or RunFolder(self.run_dir)  # read-only on other ranks (a resumed run's files)

    def _rank_failure(self, exc: BaseException, error: str) -> tuple[str, str | None]:
        """Status and error of a distributed rank's failure: its own is left for the other ranks to read;
        one cut off because another rank stopped (and this one was asked to stop too) is just stopped."""
        text, kind = self.ranks.explain_failure(exc, error)
        if kind == "own":
            self.ranks.report_failure(text)
        if kind == "lost" and self.stop.requested:
            return "stopped", None
        return "failed", text

    def _prepare(self) -> None:
        """Seed, pick the device, scan the data and write the run folder's records."""
        from tl_desktop.engine.data.dataset import scan_dataset
        from tl_desktop.engine.data.preprocess import with_data_settings
        from tl_desktop.engine.models.backbones import get_backbone_spec

        cfg = self.config.validate()
        self.generator = recipe.seed_everything(cfg.train.seed)
        self.device = rank_device(pick_device(cfg.train.device), self.ranks)
        configure_threads()
        spec = get_backbone_spec(cfg.model.backbone)
        self.spec = replace(spec, preprocessing=with_data_settings(spec.preprocessing, cfg.data))
        check_trainable_blocks(cfg, self.spec)
        if self.scan is None:
            self.scan = self.folder.scan() if self.resume else scan_dataset(cfg.data, stop=self.stop)
        check_split(self.scan.split)
        if not self.resume and self.ranks.is_main:
            self.folder.write_records(cfg, self.scan)

    def _build_model(self) -> None:
        """Build the pretrained model (a weights download reports as CacheProgress) and the caches."""
        from tl_desktop.engine.models.backbones import create_model

        cfg = self.config

        def progress(done: int, total: int | None) -> None:
            self.emit(CacheProgress("weights", done, -1 if total is None else total))

        model = create_model(
            cfg.model.backbone, num_classes=len(self.scan.split.classes), dropout=cfg.model.dropout,
            pretrained=True, weights_file=cfg.model.weights_file, progress=progress, stop=self.stop,
        )
        self.model = prepare_model(model, self.device)
        seed_rank(cfg.train.seed, self.ranks)  # after the head's initialisation, which DDP takes from rank 0
        context = SourceContext(cfg, self.scan.split, self.spec.preprocessing, self.model, self.device,
                                self.generator, self.stop, self.emit, self.feature_pool, self.ranks)
        self.sources = CachedSources(context) if self.use_caches else PlainSources(context)

    def _emit_started(self) -> None:
        self._started = True
        self.emit(self._started_event())
        if self.ranks.distributed:
            batch, world = self.config.train.batch_size, self.ranks.world_size
            self.emit(Message("info", f"training data-parallel on {world} processes (torchrun): each global batch "
                                      f"of {batch} images is shared among them, about {-(-batch // world)} each"))

    def _started_event(self) -> FitStarted:
        """FitStarted from what is known so far (a run can fail before its data are scanned)."""
        split = getattr(self.scan, "split", None)
        return FitStarted(
            run_dir=str(self.run_dir) if self.run_dir is not None else "", classes=list(split.classes) if split else [],
            num_train=len(split.train) if split else 0, num_val=len(split.val) if split else 0,
            num_test=len(split.test) if split else 0, device=describe_device(self.device),
            total_epochs=self.config.train.epochs, config=self.config.to_dict(),
        )

    def _announce_loss(self) -> None:
        """Build the training loss (label smoothing, class weights when imbalanced) and say which."""
        split = self.scan.split
        counts = [0] * len(split.classes)
        for sample in split.train:
            counts[sample.label] += 1
        weights = recipe.class_weights(counts, self.config.train.class_balance)
        if weights is not None:
            self.emit(Message("info", f"classes are imbalanced ({recipe.imbalance_ratio(counts):.1f}:1 in training); "
                                      "the loss weights each class by its inverse frequency"))
            weights = weights.to(self.device)
        self.criterion = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=self.config.train.label_smoothing)
        self.loop = EpochLoop(self.model, self.criterion, self.device, self.stop, self.emit, self.config.train.epochs,
                              self.ranks)

    # ----- phases and epochs --------------------------------------------------------------------
    def _run_phase(self, phase: recipe.Phase) -> bool:
        """Train one phase (from the resume point, when it lies inside it); return False when a callback
        ended training early."""
        if phase.name == recipe.PROBE:  # always epoch 1, so never resumed
            return self._run_probe(phase)
        resume, self._resume = self._resume, None
        if resume is not None and resume.epoch < phase.first_epoch:
            restore_rng(resume.rng, self.generator)  # the phase starts afresh, from where the last one ended
            resume = None
        summary = self.model.set_trainable_blocks(phase.trainable_blocks)
        source = self.sources.train_source(phase)
        forward = self.loop.train_forward(source)
        optimizer = recipe.make_optimizer(self.model, phase.lr, self.config.train.weight_decay)
        scheduler = recipe.make_scheduler(optimizer, source.steps, phase.epochs, self.config.train.warmup_epochs)
        if resume is not None:  # inside the phase: its optimizer, schedule and batch order go on
            optimizer.load_state_dict(resume.optimizer)
            scheduler.load_state_dict(resume.scheduler)
            restore_rng(resume.rng, self.generator)
            source.skip_epochs(resume.epoch - phase.first_epoch + 1)
        else:
            self.emit(PhaseStarted(phase.name, phase.first_epoch, phase.last_epoch, summary.trainable_params,
                                   summary.total_params, phase.lr))
        for epoch in range((resume.epoch + 1) if resume else phase.first_epoch, phase.last_epoch + 1):
            started = time.monotonic()
            train_loss, train_acc, lr = self.loop.train_epoch(epoch, source, forward, optimizer, scheduler)
            val_loss, val_acc = self._validate(phase)
            self._end_epoch(epoch, phase, started, train_loss, train_acc, val_loss, val_acc, lr)
            self._save_resume_point(epoch, phase, optimizer, scheduler)
            if self._stop_asked():
                return False
        return True

    def _run_probe(self, phase: recipe.Phase) -> bool:
        """Epoch 1 of LP-FT: the head becomes the linear probe on the frozen features (see probe_phase)."""
        started = time.monotonic()
        outcome = run_probe_phase(self.model, phase, self.sources, self.criterion, self.spec.num_blocks, self.device,
                                  self.ranks, self.stop, self.emit)
        val_loss, val_acc = self._validate(phase)
        self._end_epoch(1, phase, started, outcome.train_loss, outcome.train_accuracy, val_loss, val_acc, phase.lr)
        optimizer = recipe.make_optimizer(self.model, phase.lr, self.config.train.weight_decay)
        self._save_resume_point(1, phase, optimizer, recipe.make_scheduler(optimizer, 1, 1, 0.0))
        return not self._stop_asked()

    def _stop_asked(self) -> bool:
        """Whether a callback ended training early (saying why)."""
        if (reason := stop_reason(self._callbacks)) is not None:
            self.emit(Message("info", reason))
        return reason is not None

    def _validate(self, phase: recipe.Phase) -> tuple[float, float]:
        """Validation loss and accuracy after an epoch of ``phase``."""
        return self.loop.validate(self.sources.val_source(phase))

    def _end_epoch(self, epoch, phase, started, train_loss, train_acc, val_loss, val_acc, lr) -> None:
        """Keep the best checkpoint, then report the epoch (and the checkpoint, if it improved)."""
        best_acc, best_loss = (self._best[1], self._best[2]) if self._best else (None, None)
        improved = is_better(val_acc, val_loss, best_acc, best_loss)
        if improved:
            best_path = self.folder.save_checkpoint(self.model) if self.ranks.is_main else self.folder.best_checkpoint
            self._best = (epoch, val_acc, val_loss)
        seconds = time.monotonic() - started
        self._epoch_seconds.append(seconds)
        self._epochs_done = epoch
        recent = self._epoch_seconds[-3:]
        eta = sum(recent) / len(recent) * (self.config.train.epochs - epoch)
        self.emit(EpochEnded(
            epoch=epoch, total_epochs=self.config.train.epochs, phase=phase.name, train_loss=train_loss,
            train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
            lr=lr, seconds=seconds, eta_seconds=eta, is_best=improved,
        ))
        if improved:
            self.emit(CheckpointSaved(epoch, str(best_path), "val_accuracy", val_acc))

    # ----- resume -------------------------------------------------------------------------------
    def _save_resume_point(self, epoch: int, phase: recipe.Phase, optimizer, scheduler) -> None:
        """Everything needed to go on after ``epoch``, written atomically (by rank 0)."""
        if not self.ranks.is_main:
            return
        save_resume_state(self.folder.resume_file, ResumeState(
            epoch=epoch, phase=phase.name, model=self.model.state_dict(), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), rng=capture_rng(self.generator),
            callbacks={"history": self._history.state_dict(), "early_stopping": self._early.state_dict()},
            trainer={"best": self._best, "epoch_seconds": self._epoch_seconds},
        ))

    def _restore_progress(self) -> None:
        """Load the resume point's weights, history, early stopping and best epoch (when resuming)."""
        state = self._resume
        if state is None:
            return
        self.model.load_state_dict(state.model, strict=True)
        self._history.load_state_dict(state.callbacks["history"])
        self._early.load_state_dict(state.callbacks["early_stopping"])
        self._best = tuple(state.trainer["best"]) if state.trainer["best"] is not None else None
        self._epoch_seconds = list(state.trainer["epoch_seconds"])
        self._epochs_done = state.epoch
        self.emit(Message("info", f"resuming after epoch {state.epoch} of {self.config.train.epochs}"))

    # ----- export -------------------------------------------------------------------------------
    def _export(self) -> Path:
        """Load the best checkpoint into the model and write the run's model file."""
        best_epoch, best_acc, best_loss = self._best
        metrics = {"best_epoch": best_epoch, "val_accuracy": best_acc, "val_loss": best_loss,
                   "epochs_completed": self._epochs_done}
        return self.folder.export_best_model(self.model, self.config, self.scan.split.classes,
                                             self.spec.preprocessing, metrics)
