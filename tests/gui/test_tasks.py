"""The task owner: names, stop, and a shutdown after which nothing is delivered and nothing starts."""

from __future__ import annotations

import threading
import time

from PySide6.QtWidgets import QWidget

from tl_desktop.gui.tasks import Tasks, shutdown_tasks_within
from tl_desktop.gui.worker import leftover_workers


def _until_stopped(ctx) -> None:  # noqa: ANN001
    while not ctx.stop.requested:
        time.sleep(0.005)


def test_busy_and_stop_by_name(qtbot):
    owner = QWidget()
    qtbot.addWidget(owner)
    tasks = Tasks(owner)
    seen: list[str] = []
    slow = tasks.start(_until_stopped, "slow", lambda w: w.stopped.connect(lambda: seen.append("slow stopped")))
    quick = tasks.start(lambda ctx: 42, "quick", lambda w: w.succeeded.connect(lambda r: seen.append(f"quick {r}")))
    assert tasks.busy() and tasks.busy("slow") and not tasks.busy("other")
    qtbot.waitUntil(lambda: not quick.running, timeout=5000)
    assert seen == ["quick 42"] and tasks.busy("slow") and not tasks.busy("quick")
    tasks.stop("quick")  # nothing of that name runs: the slow task keeps running
    assert slow.running
    tasks.stop("slow")
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=5000)
    assert seen == ["quick 42", "slow stopped"]
    assert slow.wait(5000) and quick.wait(5000)


def test_shutdown_waits_drops_queued_signals_and_refuses_new_tasks(qtbot):
    owner = QWidget()
    qtbot.addWidget(owner)
    tasks = Tasks(owner)
    delivered: list[str] = []
    ended = threading.Event()

    def task(ctx) -> str:  # noqa: ANN001
        ended.set()
        return "result"

    worker = tasks.start(task, "t", lambda w: (w.succeeded.connect(lambda r: delivered.append(r)),
                                                w.finished.connect(lambda: delivered.append("finished"))))
    assert ended.wait(5)  # the thread has posted its signals, but no event loop has delivered them
    assert tasks.shutdown(5000)
    assert not worker.thread_alive and not worker.running
    qtbot.wait(100)  # the drain timer would have fired several times by now
    assert delivered == []
    assert tasks.closed and tasks.start(task, "t") is None and not tasks.busy()
    assert worker not in leftover_workers()


def test_shutdown_within_reaches_nested_owners_and_stops_them_all_first(qtbot):
    window = QWidget()
    qtbot.addWidget(window)
    child = QWidget(window)
    owners = [Tasks(window), Tasks(child)]
    workers = [owner.start(_until_stopped, "wait") for owner in owners]
    started = time.monotonic()
    assert shutdown_tasks_within(window, 5000)
    assert time.monotonic() - started < 2
    assert all(owner.closed for owner in owners)
    assert all(w.stop_token.requested and not w.thread_alive for w in workers)
    assert not any(owner.start(_until_stopped, "again") for owner in owners)


def test_a_closed_window_delivers_nothing_late_and_starts_nothing(qtbot, window, dialogs_shown):
    from tl_desktop.gui.pages.base import Step

    page = window.model_page
    window.go_to(Step.TRAIN)  # the Train page asks for the list of backbones: a task of the Model page
    [listing] = page.tasks.running("list")
    assert listing.wait(30000)  # its thread ended; its result waits, undelivered, for the event loop
    assert window.close()
    qtbot.wait(200)  # long enough for the closed window's timers to fire
    assert not page._loaded  # the list never reached the closed page …
    assert page.run_task(lambda ctx: 1, "late") is None  # … and nothing starts there any more
    page._count_params(1)  # what the late list used to trigger (and then failed in the next test)
    assert not page.busy() and not leftover_workers()
    assert dialogs_shown == []
