"""How late a GUI-thread timer fires while a real training run goes on in the window.

    xvfb-run -a python benchmarks/gui_responsiveness.py --data ../shared/data/potato_leaf

The real window trains efficientnet_lite0 (head-only epochs on cached features, then the last block
fine-tuned) on ``--per-class`` images of each class (or a small synthetic set without ``--data``),
with the live plots and log updating as usual. A 20 ms heartbeat QTimer on the GUI thread records
how late each tick comes; the median, 99th percentile and maximum stall are printed (aim: max under
100 ms), split by what the trainer was doing (preparing/caching vs. training epochs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer

from tl_desktop.engine.training.events import (
    CacheProgress,
    EpochStarted,
    FitEnded,
    FitStarted,
)
from tl_desktop.gui.screenshots import subset_folder, synthetic_folder, wait_until

TICK_MS = 20


class Heartbeat:
    """Records, per tick, how many milliseconds later than planned the GUI thread got to it."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.stage = "starting"
        self.lateness: dict[str, list[float]] = {}
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness.setdefault(self.stage, []).append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now

    def on_event(self, event: object) -> None:
        if isinstance(event, (FitStarted, CacheProgress)):
            self.stage = "preparing (model, caches)"
        elif isinstance(event, EpochStarted):
            self.stage = "training epochs"
        elif isinstance(event, FitEnded):
            self.stage = "finishing"


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (f"ticks={len(values):5d}  median={statistics.median(values):6.1f} ms  p99={p99:6.1f} ms  "
            f"max={max(values):6.1f} ms  over 100 ms: {sum(v > 100 for v in values)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="image folder with one sub-folder per class")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()

    from tl_desktop.gui.app import create_application, warm_up_imports
    from tl_desktop.gui.main_window import MainWindow

    work = Path(tempfile.mkdtemp(prefix="tl-desktop-resp-"))
    images = (subset_folder(args.data, args.per_class, work / "images") if args.data
              else synthetic_folder(work / "images", args.per_class))
    _app = create_application(sys.argv[:1])  # held: the application lives as long as this run
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("folders/runs", str(work / "runs"))
    settings.setValue("model/backbone", args.backbone)
    window = MainWindow(settings)
    window.resize(1280, 800)
    window.show()
    warm_up = warm_up_imports()  # what the app does once the window shows
    window.data_page.open_folder(str(images))
    wait_until(lambda: window.session.scan is not None, 600, "the folder scan")
    model = window.model_page
    window.go_to(1)
    wait_until(lambda: model._loaded, 600, "the list of models")
    model.table.select(args.backbone)
    model.freeze.set_value(1)
    form = model.settings_form
    form.epochs.setValue(args.epochs)
    form.head_epochs.setValue(max(1, args.epochs - 1))
    form._set_combo(form.device_box, "cpu")
    wait_until(lambda: not model.busy() and not warm_up.running, 600, "the parameter count and imports")

    window.go_to(2)
    beat = Heartbeat()
    loop = QEventLoop()  # the real event loop, as in the app: no polling
    window.train_page.run_finished.connect(lambda _status: loop.quit())
    window.train_page.start_training()
    window.train_page.worker.event.connect(beat.on_event)
    beat.start()
    started = time.perf_counter()
    loop.exec()
    beat.timer.stop()
    print(f"run: {args.backbone}, {len(window.session.scan.split.train)} training images, {args.epochs} epochs, "
          f"status {window.train_page.status_of_run}, {time.perf_counter() - started:.0f} s; "
          f"plot redraws: {window.train_page.plots.draw_count}")
    everything: list[float] = []
    for stage, values in beat.lateness.items():
        everything += values
        print(f"  {stage:28s} {summary(values)}")
    print(f"  {'whole run':28s} {summary(everything)}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
