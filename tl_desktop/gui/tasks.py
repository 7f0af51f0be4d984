"""One owner for a widget's background tasks: it starts them, knows which run, stops them, shuts them down.

Every widget that runs work off the GUI thread holds a :class:`Tasks` (a child object of the widget)
and starts its tasks through it, never with :func:`~tl_desktop.gui.worker.start_worker` itself. When
the window closes, :func:`shutdown_tasks_within` shuts down every owner inside it: each task is asked
to stop and waited for, the signals it had not delivered yet are dropped (nobody listens any more),
and no owner starts a task again. A closed window therefore never reports anything later, neither
from a task that ends after it closed nor from a timer that fires after it closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from tl_desktop.gui.worker import TaskContext, Worker, start_worker

SHUTDOWN_TIMEOUT_MS = 60000


class Tasks(QObject):
    """The background tasks of one widget (its parent): start, busy, stop, shutdown."""

    def __init__(self, owner: QObject) -> None:
        super().__init__(owner)
        self._workers: list[Worker] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the owner was shut down: it starts no task any more."""
        return self._closed

    def start(self, fn: Callable[[TaskContext], Any], name: str,
              connect: Callable[[Worker], None] | None = None) -> Worker | None:
        """Run ``fn`` on a worker thread after ``connect`` wired its signals; None once shut down."""
        if self._closed:
            return None

        def wire(worker: Worker) -> None:
            # First, so that the task no longer counts as busy in the caller's own ``finished`` slots.
            worker.finished.connect(lambda: self._forget(worker))
            if connect is not None:
                connect(worker)

        worker = start_worker(fn, name, wire, owner=self)
        self._workers.append(worker)
        return worker

    def _forget(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)

    def running(self, name: str | None = None) -> list[Worker]:
        """The tasks (of this name) that have not finished."""
        return [w for w in self._workers if w.running and (name is None or w.name == name)]

    def busy(self, name: str | None = None) -> bool:
        """Whether a task (of this name) is running."""
        return bool(self.running(name))

    def stop(self, name: str | None = None) -> None:
        """Ask the running tasks (of this name) to stop; they end with ``stopped`` then ``finished``."""
        for worker in self.running(name):
            worker.stop()

    def close(self) -> None:
        """Start no task any more and ask every running one to stop (without waiting)."""
        self._closed = True
        self.stop()

    def shutdown(self, timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> bool:
        """Close, wait for every task, and drop the signals they had not delivered; True when all ended."""
        self.close()
        workers, self._workers = list(self._workers), []
        ended = all([worker.wait(timeout_ms) for worker in workers])
        for worker in workers:
            worker.discard()
        return ended


def shutdown_tasks_within(widget: QObject, timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> bool:
    """Shut down every task owner inside ``widget``: all are asked to stop first, then each is waited for."""
    owners = widget.findChildren(Tasks)
    for owner in owners:
        owner.close()
    return all([owner.shutdown(timeout_ms) for owner in owners])
