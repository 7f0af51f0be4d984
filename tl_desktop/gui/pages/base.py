"""The base of every page: a title, a status line, and background tasks with readable errors."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from tl_desktop.gui.session import Session
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.worker import TaskContext, Worker


class Step(IntEnum):
    """The steps of the flow, numbered as the step list shows them (from 0)."""

    DATA = 0
    MODEL = 1
    TRAIN = 2
    RESULTS = 3
    EXPORT = 4
    PREDICT = 5


class Page(QWidget):
    """One step of the flow. Subclasses set ``step``, ``title`` and ``hint`` and build their widgets."""

    step: Step
    title = ""
    step_hint = ""
    hint = ""
    status = Signal(str)
    go_to_step = Signal(object)  # a Step: the page the user should see next

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.tasks = Tasks(self)

    def on_shown(self) -> None:
        """Called each time the page becomes visible."""

    def run_task(self, fn: Callable[[TaskContext], Any], name: str, *,
                 on_success: Callable[[Any], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 on_event: Callable[[object], None] | None = None,
                 on_done: Callable[[], None] | None = None,
                 error_title: str = "Something went wrong.",
                 error_hint: str = "Check the details below, then try again.") -> Worker | None:
        """Run ``fn`` off the GUI thread; failures become a dialog with ``error_title``/``error_hint``.

        Returns None, starting nothing, once the window closed."""

        def connect(worker: Worker) -> None:
            if on_progress is not None:
                worker.progress.connect(on_progress)
            if on_event is not None:
                worker.event.connect(on_event)
            if on_success is not None:
                worker.succeeded.connect(on_success)
            worker.failed.connect(lambda message, details: self.show_error(
                f"{error_title}\n\n{message}", error_hint, details))
            if on_done is not None:
                worker.finished.connect(on_done)

        return self.tasks.start(fn, name, connect)

    def busy(self, name: str | None = None) -> bool:
        """Whether a task (of this name) is running on this page."""
        return self.tasks.busy(name)

    def stop_tasks(self, name: str | None = None) -> None:
        """Ask running tasks (of this name) to stop."""
        self.tasks.stop(name)

    def show_error(self, what: str, next_step: str, details: str = "") -> None:
        self.status.emit(what.splitlines()[0])
        dialogs.show_error(self, what, next_step, details)
