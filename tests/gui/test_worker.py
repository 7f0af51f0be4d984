"""The worker's signal lifecycle, checked strictly: finished is always last."""

from __future__ import annotations

import time

from tl_desktop.engine.runtime.stop import StopRequested
from tl_desktop.engine.training.events import BatchEnded, Message
from tl_desktop.gui.worker import QtRelay, Worker


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
    assert worker.wait(5000) and not worker.running
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
    assert "the folder has no images" in message and "Traceback" not in message
    assert "Traceback" in details and "ValueError" in details
    assert worker.wait(5000) and not worker.running


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
    assert worker.wait(5000) and not worker.running
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
    assert worker.wait(5000) and not worker.running


class _Recorder:
    """Stands in for a TaskContext: records what the relay lets through."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def emit(self, event: object) -> None:
        self.events.append(event)


def test_relay_throttles_batch_events_but_keeps_each_epochs_last_step_and_every_other_event():
    now = [0.0]  # whole seconds, so that no rounding decides what passes
    ctx = _Recorder()
    relay = QtRelay(ctx, batch_interval_s=4.0, clock=lambda: now[0])

    def batch(epoch: int, step: int, steps: int = 10) -> BatchEnded:
        return BatchEnded(epoch=epoch, step=step, steps=steps, loss=1.0, accuracy=0.5)

    for step in range(1, 11):  # ten steps 1 s apart: the first, every fourth, and the last get through
        relay.on_event(batch(1, step))
        now[0] += 1.0
    assert [(e.epoch, e.step) for e in ctx.events] == [(1, 1), (1, 5), (1, 9), (1, 10)]

    ctx.events.clear()
    message = Message("info", "between batches")
    relay.on_event(batch(2, 1))  # 1 s after the last step of epoch 1: held back
    relay.on_event(message)
    relay.on_event(message)
    now[0] += 5.0
    relay.on_event(batch(2, 2))  # the interval has passed
    relay.on_event(batch(2, 3))  # too soon again
    relay.on_event(batch(2, 10))  # too soon, but the last step of its epoch
    assert ctx.events == [message, message, batch(2, 2), batch(2, 10)]


def test_relay_passes_every_non_batch_event_however_fast():
    ctx = _Recorder()
    relay = QtRelay(ctx, batch_interval_s=60.0, clock=lambda: 0.0)
    events = [Message("info", f"message {i}") for i in range(20)]
    for event in events:
        relay.on_event(event)
    assert ctx.events == events
    relay.on_event(BatchEnded(epoch=1, step=1, steps=3, loss=1.0, accuracy=0.5))
    relay.on_event(BatchEnded(epoch=1, step=2, steps=3, loss=1.0, accuracy=0.5))
    assert len(ctx.events) == 21  # the first batch passes, the second is within the interval
