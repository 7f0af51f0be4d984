"""The worker's signal lifecycle, checked strictly: finished is always last."""

from __future__ import annotations

import time

from tl_desktop.engine.runtime.stop import StopRequested
from tl_desktop.gui.worker import Worker


def _record(worker: Worker) -> list[str]:
    seen: list[str] = []
    for name in ("started", "progress", "event", "succeeded", "failed", "stopped", "finished"):
        getattr(worker, name).connect(lambda *args, n=name: seen.append(n))
    return seen


def test_success_order_is_strict(qtbot):
    def task(ctx):
        ctx.progress(1, 1)
        return "result"

    worker = Worker(task)
    seen = _record(worker)
    with qtbot.waitSignals([worker.started, worker.progress, worker.succeeded, worker.finished],
                           order="strict", timeout=5000):
        worker.start()
    assert worker.wait(5000)
    assert seen == ["started", "progress", "succeeded", "finished"]


def test_failure_reports_message_and_details_then_finished(qtbot):
    def task(ctx):
        raise ValueError("the folder has no images")

    worker = Worker(task)
    failures: list[tuple[str, str]] = []
    worker.failed.connect(lambda message, details: failures.append((message, details)))
    with qtbot.waitSignals([worker.started, worker.failed, worker.finished], order="strict", timeout=5000):
        worker.start()
    [(message, details)] = failures
    assert message == "the folder has no images"
    assert "Traceback" in details and "ValueError" in details
    worker.wait(5000)


def test_stop_from_gui_thread_ends_with_stopped_then_finished(qtbot):
    def task(ctx):
        while True:
            ctx.stop.raise_if_requested()
            time.sleep(0.005)

    worker = Worker(task)
    seen = _record(worker)
    with qtbot.waitSignal(worker.started, timeout=5000):
        worker.start()
    with qtbot.waitSignals([worker.stopped, worker.finished], order="strict", timeout=5000):
        worker.stop()
    worker.wait(5000)
    assert seen == ["started", "stopped", "finished"]


def test_progress_is_throttled_but_keeps_the_final_step(qtbot):
    def task(ctx):
        for i in range(1, 10001):
            ctx.progress(i, 10000)

    values: list[tuple[int, int]] = []
    worker = Worker(task)
    worker.progress.connect(lambda d, t: values.append((d, t)))
    with qtbot.waitSignal(worker.finished, timeout=20000):
        worker.start()
    assert worker.wait(5000)
    assert values[-1] == (10000, 10000)
    assert len(values) < 100


def test_stop_requested_inside_task_is_stopped(qtbot):
    def task(ctx):
        raise StopRequested()

    worker = Worker(task)
    with qtbot.waitSignals([worker.started, worker.stopped, worker.finished], order="strict", timeout=5000):
        worker.start()
    worker.wait(5000)
