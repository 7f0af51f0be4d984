"""The Results page's calibration view: the reliability diagram of the shown evaluation (the gap between
confidence and accuracy per bin), temperature scaling fitted on the validation split, and its undo.

The diagram follows the session: after "Calibrate" or "Undo" the Results page evaluates again with the
model file's new temperature, and the diagram and its ECE are redrawn from that evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from tl_desktop.engine.evaluation.glossary import explain
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.common import hint
from tl_desktop.gui.worker import TaskContext, Worker

if TYPE_CHECKING:
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.engine.workflows.evaluation import Calibration
    from tl_desktop.gui.session import Session

SPLIT_WORDS = {"val": "validation", "test": "test"}


class CalibrationPanel(QWidget):
    """Reliability diagram of ``split``'s evaluation; Calibrate and Undo change the run's model file.

    ``undo_stack`` holds the temperatures the model had before each calibration made in this window
    (shared with whoever keeps it between openings of the panel); with it empty, a model that is
    calibrated all the same can go back to temperature 1 (uncalibrated)."""

    temperature_changed = Signal(float)  # the temperature the model file holds now

    def __init__(self, session: Session, split: str, undo_stack: list[float] | None = None) -> None:
        super().__init__()
        self.session = session
        self.split = split
        self.run_dir: Path | None = session.run_dir
        self.undo_stack = undo_stack if undo_stack is not None else []
        self.temperature: float | None = None  # what the model file holds, once read
        self.shown: Metrics | None = None
        self.canvas: FigureCanvasQTAgg | None = None
        self.tasks = Tasks(self)
        self.worker: Worker | None = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setToolTip(explain("ECE") or "")
        self.chart = QVBoxLayout()
        self.fit_button = QPushButton("Calibrate on the validation images")
        self.fit_button.setToolTip("Fit temperature scaling on the validation split and store it in the model file")
        self.fit_button.clicked.connect(self.fit)
        self.undo_button = QPushButton("Undo calibration")
        self.undo_button.clicked.connect(self.undo)
        self.result = QLabel()
        self.result.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fit_button)
        buttons.addWidget(self.undo_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(self.chart, 1)
        layout.addWidget(hint("Blue bars: how often the model was right among its answers of that confidence. "
                              "Red hatched bars: the gap to the confidence it claimed — standing on a blue bar, the "
                              "model was over-confident there; hanging down into it, under-confident. Temperature "
                              "scaling divides the model's scores by one number to close these gaps; it never "
                              "changes which class is predicted."))
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        session.evaluation_changed.connect(self.refresh)
        session.run_changed.connect(self.refresh)
        self.refresh()
        self._read_temperature()

    def detach(self) -> None:
        """Stop following the session (its window was closed): no more redraws for nobody to see."""
        self.session.evaluation_changed.disconnect(self.refresh)
        self.session.run_changed.disconnect(self.refresh)

    def busy(self) -> bool:
        """Whether a calibration or its undo is being stored."""
        return self.tasks.busy("calibrate") or self.tasks.busy("undo")

    def refresh(self) -> None:
        """Show the session's current evaluation of the split (drawn anew when it changed)."""
        if self.session.run_dir != self.run_dir:
            self.summary.setText("Another run is open now: close this window and open Calibration again.")
            self._update_buttons()
            return
        current = self.session.evaluations.get(self.split)
        if current is None:
            self.summary.setText(f"Evaluating the {SPLIT_WORDS.get(self.split, self.split)} images with the "
                                 "model's probabilities as they are now…")
        elif current[1] is not self.shown:
            self._draw(current[1])
        self._update_buttons()

    def _draw(self, metrics: Metrics) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        from tl_desktop.engine.evaluation.formatting import fmt
        from tl_desktop.report.figures import reliability_figure

        canvas = FigureCanvasQTAgg(reliability_figure(metrics.reliability, metrics.ece))
        if self.canvas is not None:
            self.chart.removeWidget(self.canvas)
            self.canvas.deleteLater()
        self.canvas = canvas
        self.chart.addWidget(canvas, 1)
        self.shown = metrics
        self.summary.setText(f"Calibration error (ECE) on the {metrics.num_samples} "
                             f"{SPLIT_WORDS.get(self.split, self.split)} images: "
                             f"<b>{fmt(metrics.ece, percent=False)}</b> (0 is perfectly calibrated)."
                             + self._temperature_text())

    def _temperature_text(self) -> str:
        if self.temperature is None:
            return ""
        if self.temperature == 1.0:
            return " The model is not calibrated (temperature 1.00)."
        effect = "softens over-confident" if self.temperature > 1 else "sharpens under-confident"
        return f" The model file holds temperature {self.temperature:.2f} (it {effect} probabilities)."

    def _update_buttons(self) -> None:
        ready = self.run_dir is not None and self.session.run_dir == self.run_dir and not self.busy()
        self.fit_button.setEnabled(ready)
        target = self.undo_target()
        self.undo_button.setEnabled(ready and target is not None)
        self.undo_button.setText("Undo calibration" if self.undo_stack or target is None else "Remove calibration")
        self.undo_button.setToolTip("" if target is None else f"Store temperature {target:.2f} in the model file again")

    def undo_target(self) -> float | None:
        """The temperature Undo would store: the one before the last calibration here, else 1 (uncalibrated)."""
        if self.undo_stack:
            return self.undo_stack[-1]
        return 1.0 if self.temperature not in (None, 1.0) else None

    def _read_temperature(self) -> None:
        run_dir = self.run_dir
        if run_dir is None:
            return

        def read(_ctx: TaskContext) -> float:
            from tl_desktop.engine.workflows.evaluation import stored_temperature

            return stored_temperature(run_dir)

        self._start(read, "temperature", self._stored, "Could not read the model file")

    def fit(self) -> None:
        """Fit and store the temperature in the background."""
        run_dir = self.run_dir
        self.result.setText("Fitting on the validation images…")

        def fit_temperature(ctx: TaskContext) -> Calibration:
            from tl_desktop.engine.workflows.evaluation import calibrate_run

            return calibrate_run(run_dir, progress=ctx.progress, stop=ctx.stop)

        self._start(fit_temperature, "calibrate", self._fitted, "Calibration failed")

    def undo(self) -> None:
        """Store the temperature from before the last calibration (or 1) in the background."""
        run_dir, target = self.run_dir, self.undo_target()
        if target is None:
            return
        self.result.setText(f"Storing temperature {target:.2f} in the model file…")

        def restore(_ctx: TaskContext) -> float:
            from tl_desktop.engine.workflows.evaluation import undo_calibration

            undo_calibration(run_dir, target)
            return target

        self._start(restore, "undo", self._undone, "Could not undo the calibration")

    def _start(self, fn, name: str, on_success, failure: str) -> None:
        def connect(worker: Worker) -> None:
            worker.succeeded.connect(on_success)
            worker.failed.connect(lambda message, _details: self.result.setText(f"{failure}: {message}"))
            worker.finished.connect(self._update_buttons)

        self.worker = self.tasks.start(fn, name, connect)
        self._update_buttons()

    def _stored(self, temperature: float) -> None:
        self.temperature = temperature
        if self.shown is not None:
            self._draw(self.shown)

    def _fitted(self, fitted: Calibration) -> None:
        self.undo_stack.append(fitted.previous_temperature)
        self.temperature = fitted.temperature
        self.result.setText(
            f"Stored temperature {fitted.temperature:.2f} in the model file. On the validation images the "
            f"calibration error went from {fitted.val_ece_before:.3f} to {fitted.val_ece_after:.3f} "
            f"(log-loss {fitted.val_nll_before:.3f} → {fitted.val_nll_after:.3f}). The results are computed "
            "again with the calibrated probabilities; Undo puts the previous temperature back.")
        self.temperature_changed.emit(fitted.temperature)

    def _undone(self, temperature: float) -> None:
        if self.undo_stack:
            self.undo_stack.pop()
        self.temperature = temperature
        self.result.setText(f"Stored temperature {temperature:.2f} in the model file again"
                            f"{' (not calibrated)' if temperature == 1.0 else ''}. The results are computed again.")
        self.temperature_changed.emit(temperature)
