"""Background work for the window: a thread per task, a fixed signal lifecycle, one-way events.

Every task is a plain function ``fn(ctx: TaskContext) -> result`` that runs on a worker thread.
Its :class:`Worker` emits, in this order::

    started  (progress | event)*  (succeeded | failed | stopped)  finished

``finished`` is always the last signal. The stop token is set directly from the GUI thread
(:meth:`Worker.stop`): a queued slot on a busy worker thread would never run. Progress and
per-batch training events are throttled so the worker never floods the GUI thread's event queue.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from tl_desktop.engine.runtime.stop import StopRequested, StopToken
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.errors import describe_error
from tl_desktop.engine.training.events import BatchEnded, Event

if TYPE_CHECKING:
    from pathlib import Path

    from tl_desktop.config import RunConfig
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.training.trainer import FitResult

PROGRESS_INTERVAL_S = 0.1
BATCH_EVENT_INTERVAL_S = 0.2
DRAIN_INTERVAL_MS = 15


class TaskContext:
    """What a task function gets: the stop token and throttled ways to report back."""

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker
        self.stop: StopToken = worker.stop_token
        self._last_progress = 0.0

    def progress(self, done: int, total: int | None) -> None:
        """Report progress; throttled, but the first and the final step always get through."""
        now = time.monotonic()
        total_i = -1 if total is None else int(total)
        final = total_i >= 0 and done >= total_i
        if final or done == 0 or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self._worker.post("progress", int(done), total_i)

    def emit(self, event: Event) -> None:
        """Relay one engine event to the GUI thread."""
        self._worker.post("event", event)


class QtRelay(Callback):
    """A trainer callback that re-emits events as Qt signals (BatchEnded throttled, others all)."""

    def __init__(self, ctx: TaskContext, batch_interval_s: float = BATCH_EVENT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._interval = batch_interval_s
        self._clock = clock
        self._last_batch = float("-inf")

    def on_event(self, event: Event) -> None:
        if isinstance(event, BatchEnded):
            now = self._clock()
            if now - self._last_batch < self._interval and event.step < event.steps:
                return
            self._last_batch = now
        self._ctx.emit(event)


class Worker(QObject):
    """Owns one background task. Its thread never touches Qt: it queues what happened, and a timer
    in the GUI thread drains the queue and emits the signals (cross-thread signal emission from
    Python threads has crashed PySide6 here)."""

    started = Signal()
    progress = Signal(int, int)
    event = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)
    stopped = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[[TaskContext], Any], name: str = "task",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.stop_token = StopToken()
        self._fn = fn
        self._outbox: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"tl-desktop-{name}", daemon=True)
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self._drain)
        self._running = False
        self._discarded = False

    def start(self) -> None:
        """Start the task on its own thread (connect the signals first)."""
        self._running = True
        self._timer.start()
        self._thread.start()

    def stop(self) -> None:
        """Ask the task to stop at its next check; safe to call from the GUI thread any time."""
        self.stop_token.request()

    @property
    def running(self) -> bool:
        return self._running

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the thread ended (for shutdown and tests); True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout_ms / 1000)
        return not self._thread.is_alive()

    @property
    def thread_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def delivering(self) -> bool:
        """Whether signals of this task may still be emitted (queued, or the task still runs)."""
        return self._running and not self._discarded and shiboken6.isValid(self)

    def discard(self) -> None:
        """Nobody listens any more: ask the task to stop, drop the signals not yet delivered and deliver
        none later. Its thread, if still running, ends on its own."""
        self.stop_token.request()
        self._discarded = True
        self._running = False
        if shiboken6.isValid(self):
            self._timer.stop()
        while True:
            try:
                self._outbox.get_nowait()
            except queue.Empty:
                break

    def post(self, signal_name: str, *args: Any) -> None:
        """Queue a signal for the GUI thread (called from the worker thread)."""
        self._outbox.put((signal_name, args))

    def _run(self) -> None:
        self.post("started")
        try:
            result = self._fn(TaskContext(self))
        except StopRequested:
            self.post("stopped")
        except Exception as exc:  # every failure becomes a readable dialog, never a traceback
            self.post("failed", describe_error(exc), traceback.format_exc())
        else:
            if self.stop_token.requested and result is None:
                self.post("stopped")
            else:
                self.post("succeeded", result)
        finally:
            self.post("finished")

    def _drain(self) -> None:
        while not self._discarded:  # a slot may discard this worker while its signals are delivered
            try:
                signal_name, args = self._outbox.get_nowait()
            except queue.Empty:
                return
            if signal_name == "finished":
                self._timer.stop()
                self._thread.join()
                self._running = False
                _ACTIVE.discard(self)
            getattr(self, signal_name).emit(*args)


_ACTIVE: set[Worker] = set()


def start_worker(fn: Callable[[TaskContext], Any], name: str = "task",
                 connect: Callable[[Worker], None] | None = None, owner: QObject | None = None) -> Worker:
    """Create a worker, let ``connect`` wire its signals, start it; it stays alive until its thread ends.

    With an ``owner`` (the widget whose slots receive the signals), the worker's signals die with the
    owner: a task that ends after its widget was closed reports to no one instead of a deleted widget.
    """
    worker = Worker(fn, name, parent=owner)
    if connect is not None:
        connect(worker)
    _ACTIVE.add(worker)
    worker.start()
    return worker


def stop_all_workers(timeout_ms: int = 60000) -> bool:
    """Ask every running worker to stop and wait for them (the application is quitting)."""
    workers = list(_ACTIVE)
    for worker in workers:
        worker.stop()
    return all(worker.wait(timeout_ms) for worker in workers)


def leftover_workers() -> list[Worker]:
    """Workers whose thread still runs or whose signals may still be delivered (the others are forgotten)."""
    for worker in list(_ACTIVE):
        if not worker.thread_alive and not worker.delivering:
            _ACTIVE.discard(worker)
    return list(_ACTIVE)


def fit_in_context(config: RunConfig, scan: ScanResult | None, ctx: TaskContext,
                   resume_run: Path | None = None) -> FitResult:
    """Run the trainer with the Qt relay; returns the FitResult (the trainer never raises for training).

    With ``resume_run`` the run in that folder goes on from its resume point (its own settings and images).
    """
    from tl_desktop.engine.training.trainer import Trainer

    trainer = Trainer(config, scan=scan, callbacks=[QtRelay(ctx)], stop=ctx.stop, run_dir=resume_run,
                      resume=resume_run is not None)
    return trainer.fit()
