"""Follow a run that another process writes (a torchrun job on a server, a run on another machine):
read its ``events.jsonl`` as it grows and hand each new event on, until the run's ``FitEnded``.

The window ("Follow a run folder…") and ``tl-desktop watch`` both call :func:`follow_run`. Lines are
read incrementally (only what was appended since the last look); a last line still being written (no
newline yet) is kept back until it is complete, and a line that cannot be read is skipped, as
:meth:`RunFolder.events` does. The result is a :class:`FitResult` of the local copy of the folder, so
Results, Export and Report treat a followed run like one trained here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tl_desktop.config import ConfigError
from tl_desktop.engine.runtime.stop import StopRequested, StopToken
from tl_desktop.engine.training.events import (
    EpochEnded,
    Event,
    FitEnded,
    FitStarted,
    event_from_dict,
)
from tl_desktop.engine.training.runfolder import RunFolder

POLL_INTERVAL_S = 0.5


class EventTail:
    """The events appended to an ``events.jsonl`` since the last :meth:`read` (a missing file has none yet)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0  # bytes consumed: the end of the last complete line read
        self.skipped = 0  # complete lines that were not events (torn by a crash, or foreign)

    def read(self) -> list[Event]:
        """Every complete new line as an event; an unfinished last line waits for the next call."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:  # the file was replaced (a new run in the same folder): start over
                    self.offset = 0
                handle.seek(self.offset)
                chunk = handle.read(size - self.offset)
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in chunk[:end].split(b"\n"):
            try:
                events.append(event_from_dict(json.loads(line.decode("utf-8"))))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.skipped += 1
        return events


@dataclass
class Followed:
    """What following a run saw: its events' outcome and its learning curves."""

    run: RunFolder
    started: FitStarted | None = None
    ended: FitEnded | None = None
    history: list[EpochEnded] = field(default_factory=list)

    def see(self, event: Event) -> None:
        if isinstance(event, FitStarted):
            self.started, self.ended, self.history = event, None, []
        elif isinstance(event, EpochEnded):
            self.history = [e for e in self.history if e.epoch < event.epoch] + [event]
        elif isinstance(event, FitEnded):
            self.ended = event

    def fit_result(self):
        """The :class:`FitResult` of the run as this machine sees its folder (its model file here, not the
        path the writing machine gave)."""
        from tl_desktop.engine.training.trainer import FitResult

        ended = self.ended
        model = self.run.model_file if self.run.model_file.is_file() else None
        return FitResult(ended.status if ended else "stopped", self.run.path, model,
                         ended.best_epoch if ended else None, ended.best_val_accuracy if ended else None,
                         list(self.history))


def watch_target(path: str | Path) -> RunFolder | None:
    """The run folder to follow at ``path``: the folder itself when it is a run (or its events have
    begun), else its newest run sub-folder; None while a runs folder holds no run yet. Raises
    ConfigError for a path that is not a folder."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; give a run folder, or the folder a job writes its runs to")
    run = RunFolder(folder)
    if run.is_run() or run.events_file.exists():
        return run
    runs = [RunFolder(p) for p in folder.iterdir() if p.is_dir() and (RunFolder(p).is_run()
                                                                      or RunFolder(p).events_file.exists())]
    return max(runs, key=lambda r: (r.path.stat().st_mtime, r.name)) if runs else None


def follow_run(path: str | Path, on_event: Callable[[Event], None], stop: StopToken | None = None,
               poll_s: float = POLL_INTERVAL_S, on_waiting: Callable[[str], None] | None = None) -> Followed:
    """Hand every event of the run at ``path`` to ``on_event`` (those already written first), until its
    last ``FitEnded``; a runs folder is watched until a run appears in it. ``stop`` ends the following (raising
    StopRequested); the run itself goes on."""
    stop = stop or StopToken()
    run = watch_target(path)
    while run is None:
        if on_waiting is not None:
            on_waiting(f"waiting for a run to start in {Path(path).expanduser()}")
            on_waiting = None
        _pause(stop, poll_s)
        run = watch_target(path)
    followed = Followed(run)
    tail = EventTail(run.events_file)
    while True:
        for event in tail.read():
            followed.see(event)
            on_event(event)
        if followed.ended is not None:  # (a resumed run's later FitStarted in the same read clears it)
            return followed
        _pause(stop, poll_s)


def _pause(stop: StopToken, seconds: float) -> None:
    """Sleep ``seconds`` in short steps, leaving as soon as ``stop`` is set."""
    deadline = time.monotonic() + seconds
    while True:
        if stop.requested:
            raise StopRequested()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.05, left))
