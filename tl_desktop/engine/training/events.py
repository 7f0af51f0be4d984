"""Small immutable records the trainer emits, in this order::

    FitStarted
      (CacheProgress)*                         weights download, images decoded, features cached
      PhaseStarted                             "head" then, if blocks unfreeze, "finetune"
        EpochStarted (BatchEnded)* EpochEnded (CheckpointSaved)?   per epoch
      (CacheProgress)*                         before a later phase whose cache is not built yet
      Message*                                 anywhere after FitStarted (early stop, warnings)
    FitEnded                                   always last: status completed | stopped | failed

Every event is JSON-safe: ``to_dict`` / ``event_from_dict`` round-trip, so the same stream is written
to ``events.jsonl`` and consumed by the window, the report and anyone tailing the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "Event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class FitStarted(Event):
    kind: ClassVar[str] = "FitStarted"
    run_dir: str
    classes: list[str]
    num_train: int
    num_val: int
    num_test: int
    device: str
    total_epochs: int
    config: dict[str, Any] = field(default_factory=dict)


CacheStage = Literal["decoding", "features", "activations", "weights"]
RunStatus = Literal["completed", "stopped", "failed"]
CACHE_STAGE_WORDS: dict[str, str] = {"decoding": "decoding {split} images", "features": "computing {split} features",
                                     "activations": "computing {split} activations", "weights": "downloading weights"}


@dataclass(frozen=True)
class CacheProgress(Event):
    """Work done once before the first epoch: decoding images, caching features or activations of a
    split ("train" or "val"), or downloading weights (``total`` -1 when unknown)."""

    kind: ClassVar[str] = "CacheProgress"
    stage: CacheStage
    done: int
    total: int
    split: str = ""

    def describe(self) -> str:
        """The stage in a few words, e.g. "computing val features"."""
        return CACHE_STAGE_WORDS.get(self.stage, self.stage).format(split=self.split)


@dataclass(frozen=True)
class PhaseStarted(Event):
    kind: ClassVar[str] = "PhaseStarted"
    phase: str
    first_epoch: int
    last_epoch: int
    trainable_params: int
    total_params: int
    lr: float


@dataclass(frozen=True)
class EpochStarted(Event):
    kind: ClassVar[str] = "EpochStarted"
    epoch: int
    total_epochs: int
    steps: int


@dataclass(frozen=True)
class BatchEnded(Event):
    kind: ClassVar[str] = "BatchEnded"
    epoch: int
    step: int
    steps: int
    loss: float
    accuracy: float


@dataclass(frozen=True)
class EpochEnded(Event):
    kind: ClassVar[str] = "EpochEnded"
    epoch: int
    total_epochs: int
    phase: str
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    eta_seconds: float
    is_best: bool


@dataclass(frozen=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "CheckpointSaved"
    epoch: int
    path: str
    monitor: str
    value: float


@dataclass(frozen=True)
class Message(Event):
    kind: ClassVar[str] = "Message"
    level: str
    text: str


@dataclass(frozen=True)
class FitEnded(Event):
    kind: ClassVar[str] = "FitEnded"
    status: RunStatus
    run_dir: str
    model_path: str | None
    best_epoch: int | None
    best_val_accuracy: float | None
    best_val_loss: float | None
    epochs_completed: int
    seconds: float
    error: str | None = None
    error_details: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (FitStarted, CacheProgress, PhaseStarted, EpochStarted, BatchEnded, EpochEnded,
                CheckpointSaved, Message, FitEnded)
}


def event_from_dict(raw: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_dict`` form (one line of ``events.jsonl``)."""
    values = dict(raw)
    kind = values.pop("event")
    return EVENT_TYPES[kind](**values)
