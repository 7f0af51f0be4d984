"""The Train page's helpers: training stages, outcomes and refusals in plain words, and the checks
that run (as a task: they import torch) before a run starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStandardPaths

from tl_desktop.engine.training.callbacks import format_seconds
from tl_desktop.engine.training.events import CacheProgress, FitEnded
from tl_desktop.engine.training.runfolder import RunFolder

if TYPE_CHECKING:
    from tl_desktop.config import RunConfig
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.training.checks import TrainingPlan

PHASE_TEXT = {"probe": "fitting the new head as a linear probe on the frozen features",
              "head": "training only the new head", "finetune": "fine-tuning the unfrozen blocks"}
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


def cache_bar(e: CacheProgress, words: str) -> tuple[int | None, str]:
    """The progress bar (of 1000; None: size unknown) and its text while data are prepared."""
    if e.total <= 0:
        amount = f" — {e.done / 1e6:.1f} MB" if e.stage == "weights" else ""
        return None, f"Preparing: {words}{amount}…"
    if e.stage == "weights":
        return int(1000 * e.done / e.total), f"Preparing: {words} — {e.done / 1e6:.1f} of {e.total / 1e6:.1f} MB"
    return int(1000 * min(e.done, e.total) / e.total), f"Preparing: {words} — {e.done} of {e.total}"


def epochs_text(e: FitEnded, resumed_after: int = 0) -> str:
    """'5 epoch(s) in 12 s', or for a run resumed after epoch 2: '5 epoch(s), the last 3 in 12 s'."""
    if 0 < resumed_after < e.epochs_completed:
        return (f"{e.epochs_completed} epoch(s), the last {e.epochs_completed - resumed_after} in "
                f"{format_seconds(e.seconds)}")
    return f"{e.epochs_completed} epoch(s) in {format_seconds(e.seconds)}"


def outcome_text(e: FitEnded, resumed_after: int = 0) -> str:
    """What happened in a finished run (resumed after epoch ``resumed_after``) and what to do next."""
    best = (f"the best model (epoch {e.best_epoch}, {100 * e.best_val_accuracy:.1f}% validation accuracy) "
            if e.model_path and e.best_epoch is not None and e.best_val_accuracy is not None
            else "the best model ")
    if e.status == "completed":
        return (f"Finished: {epochs_text(e, resumed_after)}; {best}is saved. "
                "Next: check it on the Results page, or change the settings and train again.")
    if e.status == "stopped" and e.model_path:
        return (f"Stopped after {e.epochs_completed} epoch(s); {best}is kept. Next: check it on the Results "
                "page, resume training, or start a new training run.")
    if e.status == "stopped":
        return ("Stopped before the first epoch finished, so no model was saved. Next: start training again "
                "and let at least one epoch finish.")
    return (f"Failed: {e.error or 'unknown error'}. Next: change the settings on the Model page or the images "
            "on the Data page, then start again.")


def default_runs_folder() -> str:
    """Documents/tl-desktop runs (or the home folder when there is no Documents folder)."""
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return str(Path(docs or Path.home()) / "tl-desktop runs")


def refusal_hint(exc: Exception) -> str:
    """Where to fix what the pre-training checks refused (a BackboneError, WeightsFileError or ConfigError)."""
    kind = type(exc).__name__
    if kind == "WeightsFileError":
        return ("Choose another file with “Load weights from file…” on the Model page, or clear it to use the "
                "standard pretrained weights.")
    if kind == "BackboneError":
        return "Choose one of the listed models on the Model page."
    return "Change the setting on the Model page (or the images on the Data page), then start again."


def check_for_training(cfg: RunConfig, scan: ScanResult | None,
                       resume_run: Path | None) -> tuple[TrainingPlan | Exception, ScanResult | None]:
    """The engine's pre-training checks (``scan`` None: the images of ``resume_run``): the plan or the
    refusal (ConfigError, BackboneError, WeightsFileError), with the images checked."""
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.models.backbones import BackboneError
    from tl_desktop.engine.models.weights import WeightsFileError
    from tl_desktop.engine.training.checks import check_before_training

    try:
        if scan is None:
            scan = RunFolder(resume_run).scan()
        return check_before_training(cfg, scan), scan
    except (ConfigError, BackboneError, WeightsFileError) as exc:
        return exc, scan
