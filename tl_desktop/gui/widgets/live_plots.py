"""Live loss and accuracy curves (matplotlib FigureCanvasQTAgg, imported on first use).

Redraws are coalesced: data arrive per batch and per epoch, the canvas repaints at most every
``REDRAW_MS`` milliseconds, so the GUI thread never spends long drawing while training runs.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

REDRAW_MS = 400
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"


class LivePlots(QWidget):
    """Two axes side by side: loss and accuracy, training (with per-batch detail) and validation."""

    def __init__(self) -> None:
        super().__init__()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("The loss and accuracy curves appear here when training starts.")
        self._layout.addWidget(self._placeholder)
        self.canvas: Any = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self.draw_count = 0
        self.reset()

    def reset(self) -> None:
        """Forget all points (a new run)."""
        self.batch_x: list[float] = []
        self.batch_loss: list[float] = []
        self.batch_acc: list[float] = []
        self.epoch_x: list[float] = []
        self.series: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
        self.best_epoch: int | None = None
        if self.canvas is not None:
            self._schedule()

    def _ensure_canvas(self) -> None:
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 3), layout="constrained")
        self.loss_ax, self.acc_ax = figure.subplots(1, 2)
        self.lines = {
            "batch_loss": self.loss_ax.plot([], [], color=TRAIN_COLOR, alpha=0.35, lw=1)[0],
            "train_loss": self.loss_ax.plot([], [], "o-", color=TRAIN_COLOR, label="training")[0],
            "val_loss": self.loss_ax.plot([], [], "s-", color=VAL_COLOR, label="validation")[0],
            "batch_acc": self.acc_ax.plot([], [], color=TRAIN_COLOR, alpha=0.35, lw=1)[0],
            "train_acc": self.acc_ax.plot([], [], "o-", color=TRAIN_COLOR, label="training")[0],
            "val_acc": self.acc_ax.plot([], [], "s-", color=VAL_COLOR, label="validation")[0],
        }
        self.best_marker = self.acc_ax.plot([], [], "*", color="#ff9f00", ms=14, label="best")[0]
        for ax, title, ylabel in ((self.loss_ax, "Loss (lower is better)", "loss"),
                                  (self.acc_ax, "Accuracy (higher is better)", "accuracy (%)")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize=8)
        self.acc_ax.set_ylim(0, 100)
        self.canvas = FigureCanvasQTAgg(figure)
        self.canvas.setMinimumHeight(220)
        self._placeholder.hide()
        self._layout.addWidget(self.canvas)

    def add_batch(self, epoch: int, step: int, steps: int, loss: float, accuracy: float) -> None:
        """A running training point within epoch ``epoch`` (1-based)."""
        self.batch_x.append(epoch - 1 + step / max(1, steps))
        self.batch_loss.append(loss)
        self.batch_acc.append(100 * accuracy)
        self._schedule()

    def add_epoch(self, epoch: int, train_loss: float, val_loss: float, train_acc: float, val_acc: float,
                  is_best: bool) -> None:
        """The end-of-epoch point for training and validation."""
        self.epoch_x.append(float(epoch))
        for key, value in (("train_loss", train_loss), ("val_loss", val_loss),
                           ("train_acc", 100 * train_acc), ("val_acc", 100 * val_acc)):
            self.series[key].append(value)
        if is_best:
            self.best_epoch = len(self.epoch_x) - 1
        self._schedule()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Redraw now (end of training)."""
        self._timer.stop()
        self._redraw()

    def _redraw(self) -> None:
        self._ensure_canvas()
        self.lines["batch_loss"].set_data(self.batch_x, self.batch_loss)
        self.lines["batch_acc"].set_data(self.batch_x, self.batch_acc)
        for key in self.series:
            self.lines[key].set_data(self.epoch_x, self.series[key])
        if self.best_epoch is not None:
            self.best_marker.set_data([self.epoch_x[self.best_epoch]], [self.series["val_acc"][self.best_epoch]])
        else:
            self.best_marker.set_data([], [])
        right = max([1.0, *self.batch_x, *self.epoch_x])
        for ax in (self.loss_ax, self.acc_ax):
            ax.set_xlim(0, right + 0.05 * right)
        self.loss_ax.relim()
        self.loss_ax.autoscale_view(scalex=False)
        self.canvas.draw_idle()
        self.draw_count += 1
