"""Callbacks observe the trainer's events. They never reach into the trainer; the only thing one may
ask for is an early end of training, through ``stop_training``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tl_desktop.engine.training.events import (
    CacheProgress,
    EpochEnded,
    Event,
    FitEnded,
    FitStarted,
    Message,
    PhaseStarted,
)


class Callback:
    """Base class: override :meth:`on_event`. ``stop_training`` asks the trainer to end after this epoch."""

    stop_training: bool = False

    def on_event(self, event: Event) -> None:
        """Receive one event, in emission order."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for resumed runs)."""


def is_better(accuracy: float, loss: float, best_accuracy: float | None, best_loss: float | None) -> bool:
    """The checkpoint rule: higher validation accuracy wins; on a tie, lower validation loss."""
    if best_accuracy is None or best_loss is None:
        return True
    if accuracy != best_accuracy:
        return accuracy > best_accuracy
    return loss < best_loss


class History(Callback):
    """Keeps every ``EpochEnded`` in order (the learning curves)."""

    def __init__(self) -> None:
        self.epochs: list[EpochEnded] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, FitStarted):
            self.epochs = []
        elif isinstance(event, EpochEnded):
            self.epochs.append(event)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [e.to_dict() for e in self.epochs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = [EpochEnded(**{k: v for k, v in e.items() if k != "event"}) for e in state["epochs"]]


class EarlyStopping(Callback):
    """Ends training after ``patience`` epochs without a better validation result (0 = never).

    The count restarts at each phase, so unfreezing blocks always gets a fair chance.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_accuracy: float | None = None
        self.best_loss: float | None = None
        self.wait = 0
        self.stop_training = False
        self.reason = ""

    def on_event(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self.wait = 0
        elif isinstance(event, EpochEnded) and self.patience > 0:
            if is_better(event.val_accuracy, event.val_loss, self.best_accuracy, self.best_loss):
                self.best_accuracy, self.best_loss, self.wait = event.val_accuracy, event.val_loss, 0
                return
            self.wait += 1
            if self.wait >= self.patience:
                self.stop_training = True
                self.reason = (
                    f"early stopping: validation accuracy has not improved for {self.wait} epochs "
                    f"(best {self.best_accuracy:.1%})"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"best_accuracy": self.best_accuracy, "best_loss": self.best_loss, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_accuracy, self.best_loss, self.wait = state["best_accuracy"], state["best_loss"], state["wait"]


class JsonlLogger(Callback):
    """Appends each event as one JSON line to ``path``, flushed at once so the file can be tailed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def on_event(self, event: Event) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
        self._handle.flush()
        if isinstance(event, FitEnded):
            self.close()

    def close(self) -> None:
        """Close the file (also done after ``FitEnded``)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def format_seconds(seconds: float) -> str:
    """Short human duration: "42 s", "3 min 05 s", "1 h 02 min"."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ConsoleProgress(Callback):
    """Prints one line per phase, epoch and message, cache progress by quarters, and where the model is."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._cache_shown: tuple[str, int] | None = None

    def _print(self, text: str, failure: bool = False) -> None:
        # A failure goes to stderr, where scripts and the command-line contract look for the reason.
        print(text, file=self.stream or (sys.stderr if failure else sys.stdout), flush=True)

    def on_event(self, event: Event) -> None:
        if isinstance(event, FitStarted):
            self._print(
                f"Training on {event.device}: {len(event.classes)} classes, {event.num_train} training / "
                f"{event.num_val} validation / {event.num_test} test images, {event.total_epochs} epochs"
            )
            self._print(f"Run folder: {event.run_dir or 'not created'}")
        elif isinstance(event, CacheProgress):
            self._cache_line(event)
        elif isinstance(event, PhaseStarted):
            self._print(
                f"Phase '{event.phase}' (epochs {event.first_epoch}-{event.last_epoch}): "
                f"{event.trainable_params:,} of {event.total_params:,} parameters train, lr {event.lr:g}"
            )
        elif isinstance(event, EpochEnded):
            self._print(self._epoch_line(event))
        elif isinstance(event, Message):
            self._print(f"{event.level}: {event.text}")
        elif isinstance(event, FitEnded):
            self._print(self._end_line(event), failure=event.status == "failed")

    def _cache_line(self, e: CacheProgress) -> None:
        quarter = 4 * e.done // e.total if e.total > 0 else 0
        if self._cache_shown == (e.stage, quarter):
            return
        self._cache_shown = (e.stage, quarter)
        self._print(f"{e.describe()}: {e.done}/{e.total}" if e.total > 0 else f"{e.describe()} ...")

    @staticmethod
    def _epoch_line(e: EpochEnded) -> str:
        width = len(str(e.total_epochs))
        return (
            f"epoch {e.epoch:>{width}}/{e.total_epochs} [{e.phase}]  "
            f"train loss {e.train_loss:.4f} acc {e.train_accuracy:6.1%}  |  "
            f"val loss {e.val_loss:.4f} acc {e.val_accuracy:6.1%}  |  "
            f"{format_seconds(e.seconds)}, ETA {format_seconds(e.eta_seconds)}" + ("  *best" if e.is_best else "")
        )

    @staticmethod
    def _end_line(e: FitEnded) -> str:
        took = format_seconds(e.seconds)
        best = (
            f"best validation accuracy {e.best_val_accuracy:.1%} at epoch {e.best_epoch}"
            if e.best_epoch is not None and e.best_val_accuracy is not None else "no epoch finished"
        )
        if e.status == "failed":
            return f"Training failed after {took}: {e.error}"
        where = f"Model saved to {e.model_path}" if e.model_path else f"No model was saved (run folder {e.run_dir})"
        head = "Training finished" if e.status == "completed" else "Training stopped"
        return f"{head} in {took}; {best}. {where}"


def stop_reason(callbacks: Sequence[Callback]) -> str | None:
    """Why a callback ends training early, or None when none does."""
    asking = [cb for cb in callbacks if cb.stop_training]
    if not asking:
        return None
    return getattr(asking[0], "reason", "") or f"{type(asking[0]).__name__} ended training early"
