"""A FigureCanvasQTAgg whose Agg rendering runs on a background thread.

Matplotlib's drawing is pure Python and takes tens to hundreds of milliseconds on a busy CPU; on the
GUI thread that freezes the window. Here the figure is only ever touched by one render thread at a
time (under a lock): updates to the artists are passed in as ``prepare`` callables that run just
before the draw, and the GUI thread only copies the finished pixels in ``paintEvent``. While a
render runs the GUI thread keeps the GIL for most of each switch interval, so it stays responsive.

Import this module lazily (it imports matplotlib).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import shiboken6
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QWidget

from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.worker import Worker

Prepare = Callable[[], None]


class ThreadedCanvas(FigureCanvasQTAgg):
    """Renders ``figure`` off the GUI thread; call :meth:`request_render` instead of ``draw``."""

    def __init__(self, figure: Figure) -> None:
        super().__init__(figure)
        self._lock = threading.Lock()
        self._pending: list[Prepare] = []
        self._tasks = Tasks(self)
        self._worker: Worker | None = None
        self._wanted = False
        self.render_count = 0
        self.request_render()

    def request_render(self, prepare: Prepare | None = None) -> None:
        """Apply ``prepare`` to the figure and redraw it, both in the background (coalesced)."""
        if prepare is not None:
            self._pending.append(prepare)
        self._wanted = True
        if self._worker is None:
            self._start()

    def draw_idle(self) -> None:
        self.request_render()

    def rendering(self) -> bool:
        """Whether a render is queued or running."""
        return self._worker is not None or self._wanted

    def _start(self) -> None:
        prepares, self._pending, self._wanted = self._pending, [], False

        def connect(worker: Worker) -> None:
            worker.succeeded.connect(self._rendered)
            worker.finished.connect(self._render_done)

        self._worker = self._tasks.start(lambda ctx: self._render(prepares), "render", connect)

    def _render(self, prepares: list[Prepare]) -> bool:
        with self._lock:
            for prepare in prepares:
                prepare()
            width, height = self.figure.bbox.size
            if width < 2 or height < 2:
                return False
            FigureCanvasAgg.draw(self)
            self.render_count += 1
            return True

    def _rendered(self, drawn: bool) -> None:
        if drawn and shiboken6.isValid(self):
            self.update()

    def _render_done(self) -> None:
        self._worker = None
        if self._wanted and shiboken6.isValid(self):
            self._start()

    def resizeEvent(self, event: QResizeEvent) -> None:
        ratio = self.device_pixel_ratio
        width, height = event.size().width() * ratio, event.size().height() * ratio
        figure = self.figure

        def resize() -> None:
            figure.set_size_inches(width / figure.dpi, height / figure.dpi, forward=False)

        QWidget.resizeEvent(self, event)
        self.request_render(resize)

    def paintEvent(self, event: QPaintEvent) -> None:
        # Copy the last finished render; never draw here. While a render writes the buffer (it
        # calls update() when done) or before the buffer matches the widget's size, show a plain
        # background instead of stale pixels.
        if not self._lock.acquire(blocking=False):
            self._erase(event)
            return
        try:
            renderer = getattr(self, "renderer", None)
            expected = (self.width() * self.device_pixel_ratio, self.height() * self.device_pixel_ratio)
            if renderer is None or abs(renderer.width - expected[0]) > 2 or abs(renderer.height - expected[1]) > 2:
                self._erase(event)
                return
            super().paintEvent(event)
        finally:
            self._lock.release()

    def _erase(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), self.palette().window())
        painter.end()
