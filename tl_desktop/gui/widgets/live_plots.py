"""Live loss and accuracy curves (a matplotlib FigureCanvasQTAgg, imported on first use).

Redraws are coalesced: data arrive per batch and per epoch, a render is requested at most every
``REDRAW_MS`` milliseconds, and the rendering itself runs off the GUI thread (ThreadedCanvas), so
the window stays responsive while training runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from tl_desktop.gui.tasks import Tasks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.figure import Figure

    from tl_desktop.engine.training.events import EpochEnded
    from tl_desktop.gui.widgets.threaded_canvas import ThreadedCanvas

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
        self.canvas: ThreadedCanvas | None = None
        self._tasks = Tasks(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self.draw_count = 0
        self._building = False
        self.reset()

    def reset(self) -> None:
        """Forget all points (a new run)."""
        self.batch_x: list[float] = []
        self.batch_loss: list[float] = []
        self.batch_acc: list[float] = []
        self.epoch_x: list[float] = []
        self.series: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
        self.best_epoch: int | None = None
        self.finetune_x: float | None = None
        if self.canvas is not None:
            self._schedule()

    def _create_canvas(self) -> None:
        """Build the figure (and import matplotlib) on a worker thread, then wrap it in a canvas here."""
        if self._building or self._tasks.closed:
            return
        self._building = True

        def created(figure: Figure) -> None:
            from tl_desktop.gui.widgets.threaded_canvas import ThreadedCanvas

            self.canvas = ThreadedCanvas(figure)
            self.canvas.setMinimumHeight(220)
            self._placeholder.hide()
            self._layout.addWidget(self.canvas)
            self._redraw()

        self._tasks.start(lambda ctx: build_figure(), "plots", lambda w: w.succeeded.connect(created))

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

    def add_history(self, history: Sequence[EpochEnded]) -> None:
        """The finished epochs of a run that goes on (its resume), with the start of fine-tuning."""
        for e in history:
            self.add_epoch(e.epoch, e.train_loss, e.val_loss, e.train_accuracy, e.val_accuracy, e.is_best)
        finetune = [e.epoch for e in history if e.phase == "finetune"]
        if finetune and finetune[0] > 1:
            self.mark_finetune(finetune[0])

    def truncate(self, epoch: int) -> None:
        """Forget the points of epoch ``epoch`` and later (a resumed run repeats an epoch it had not saved)."""
        if not self.epoch_x or self.epoch_x[-1] < epoch:
            return
        keep = sum(1 for x in self.epoch_x if x < epoch)
        del self.epoch_x[keep:]
        for values in self.series.values():
            del values[keep:]
        if self.best_epoch is not None and self.best_epoch >= keep:
            self.best_epoch = None
        keep_batches = sum(1 for x in self.batch_x if x <= epoch - 1)
        for values in (self.batch_x, self.batch_loss, self.batch_acc):
            del values[keep_batches:]
        self._schedule()

    def mark_finetune(self, first_epoch: int) -> None:
        """Draw a dotted line where fine-tuning of the unfrozen blocks begins (after the head-only epochs)."""
        self.finetune_x = float(first_epoch - 1)
        self._schedule()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Redraw now (end of training)."""
        self._timer.stop()
        self._redraw()

    def _redraw(self) -> None:
        if self.canvas is None:
            self._create_canvas()
            return
        snapshot = (list(self.batch_x), list(self.batch_loss), list(self.batch_acc), list(self.epoch_x),
                    {k: list(v) for k, v in self.series.items()}, self.best_epoch, self.finetune_x)
        figure = self.canvas.figure
        self.canvas.request_render(lambda: update_figure(figure, *snapshot))
        self.draw_count += 1

    def rendering(self) -> bool:
        """Whether the curves are still being built or drawn in the background."""
        return self._building and self.canvas is None or (self.canvas is not None and self.canvas.rendering())


def build_figure() -> Figure:
    """The two empty axes with their lines (worker thread: imports matplotlib)."""
    from matplotlib.figure import Figure

    import tl_desktop.gui.widgets.threaded_canvas  # noqa: F401  (imports the Qt backend off the GUI thread)

    # Constrained layout leaves room for the axis labels at any canvas size (fixed margins clipped them).
    figure = Figure(figsize=(8, 3), layout="constrained")
    loss_ax, acc_ax = figure.subplots(1, 2)
    lines = {
        "batch_loss": loss_ax.plot([], [], color=TRAIN_COLOR, alpha=0.35, lw=1)[0],
        "train_loss": loss_ax.plot([], [], "o-", color=TRAIN_COLOR, label="training")[0],
        "val_loss": loss_ax.plot([], [], "s-", color=VAL_COLOR, label="validation")[0],
        "batch_acc": acc_ax.plot([], [], color=TRAIN_COLOR, alpha=0.35, lw=1)[0],
        "train_acc": acc_ax.plot([], [], "o-", color=TRAIN_COLOR, label="training")[0],
        "val_acc": acc_ax.plot([], [], "s-", color=VAL_COLOR, label="validation")[0],
        "best": acc_ax.plot([], [], "*", color="#ff9f00", ms=14, label="best")[0],
        "finetune": [ax.plot([], [], ":", color="black", lw=1, transform=ax.get_xaxis_transform())[0]
                     for ax in (loss_ax, acc_ax)],
        "finetune_text": loss_ax.text(0, 0.98, "", transform=loss_ax.get_xaxis_transform(), va="top", fontsize=8,
                                      clip_on=True),
    }
    for ax, title, ylabel in ((loss_ax, "Loss (lower is better)", "loss"),
                              (acc_ax, "Accuracy (higher is better)", "accuracy (%)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    acc_ax.set_ylim(0, 100)
    figure.tl_lines = lines
    return figure


def update_figure(figure: Figure, batch_x: list[float], batch_loss: list[float], batch_acc: list[float],
                  epoch_x: list[float], series: dict[str, list[float]], best: int | None,
                  finetune_x: float | None) -> None:
    """Put the data into the figure's lines and rescale (render thread)."""
    from tl_desktop.report.figures import FINETUNE_LABEL, finetune_label_place

    lines = figure.tl_lines
    loss_ax, acc_ax = figure.axes
    lines["batch_loss"].set_data(batch_x, batch_loss)
    lines["batch_acc"].set_data(batch_x, batch_acc)
    for key, values in series.items():
        lines[key].set_data(epoch_x, values)
    lines["best"].set_data(([epoch_x[best]], [series["val_acc"][best]]) if best is not None else ([], []))
    for line in lines["finetune"]:
        line.set_data(([finetune_x] * 2, [0, 1]) if finetune_x is not None else ([], []))
    right = max([1.0, *batch_x, *epoch_x]) * 1.05
    for ax in (loss_ax, acc_ax):
        ax.set_xlim(0, right)
    x, ha = finetune_label_place(finetune_x or 0.0, 0.0, right)
    lines["finetune_text"].set_text(FINETUNE_LABEL if finetune_x is not None else "")
    lines["finetune_text"].set_x(x)
    lines["finetune_text"].set_horizontalalignment(ha)
    loss_ax.relim()
    loss_ax.autoscale_view(scalex=False)
