"""Deeper evaluation for the Results page: decision threshold (two classes), calibration, external folder.

``AnalysisBar`` is a row of buttons the Results page adds under its matrix; each opens one panel in a
dialog. Panels read the session's evaluations and run anything slow on a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.evaluation.glossary import explain, explain_all
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.common import PathPicker, hint, stretch_first_column
from tl_desktop.gui.worker import TaskContext, Worker

if TYPE_CHECKING:
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.gui.session import Session


def _share(k: int, n: int) -> str:
    """k of n as a percentage with its 95% Wilson interval, or 'undefined' for n = 0."""
    from tl_desktop.engine.evaluation.formatting import with_interval
    from tl_desktop.engine.evaluation.intervals import wilson_interval

    return with_interval(k / n if n else None, wilson_interval(k, n))


class ThresholdPanel(QWidget):
    """Two classes: choose the positive class and a threshold; see sensitivity, specificity, PPV, NPV."""

    changed = Signal(str, float)

    def __init__(self, predictions: Predictions) -> None:
        super().__init__()
        self.predictions = predictions
        self.positive = QComboBox()
        self.positive.addItems(list(predictions.classes))
        self.positive.setCurrentIndex(1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setValue(50)
        self.slider.setAccessibleName("Decision threshold")
        self.threshold_label = QLabel()
        self.result = QLabel()
        self.result.setTextFormat(Qt.TextFormat.RichText)
        self.result.setWordWrap(True)
        self.result.setToolTip(explain_all(["sensitivity", "specificity", "PPV", "NPV"]))
        row = QHBoxLayout()
        row.addWidget(QLabel("Positive class:"))
        row.addWidget(self.positive)
        row.addSpacing(16)
        row.addWidget(QLabel("Threshold:"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.threshold_label)
        layout = QVBoxLayout(self)
        layout.addWidget(hint("An image counts as positive when the model's probability for the positive class "
                              "is at least the threshold. Lower it to miss fewer positives (higher sensitivity) "
                              "at the cost of more false alarms (lower specificity)."))
        layout.addLayout(row)
        layout.addWidget(self.result)
        self.positive.currentIndexChanged.connect(self.update_metrics)
        self.slider.valueChanged.connect(self.update_metrics)
        self.update_metrics()

    def threshold(self) -> float:
        return self.slider.value() / 100

    def update_metrics(self) -> None:
        """Recompute the four numbers for the current positive class and threshold (cheap, no bootstrap)."""
        from tl_desktop.engine.evaluation.evaluate import compute_metrics

        threshold, positive = self.threshold(), self.positive.currentText()
        self.threshold_label.setText(f"{threshold:.2f}")
        b = compute_metrics(self.predictions, positive_class=positive, threshold=threshold, n_bootstrap=0).binary
        self.result.setText(
            f"<table cellpadding='4'><tr><td><b>Sensitivity</b> {_share(b.tp, b.tp + b.fn)}</td>"
            f"<td>{b.tp} of {b.tp + b.fn} {positive} images found</td></tr>"
            f"<tr><td><b>Specificity</b> {_share(b.tn, b.tn + b.fp)}</td><td>{b.tn} of {b.tn + b.fp} other images "
            f"correctly left out</td></tr><tr><td><b>PPV</b> {_share(b.tp, b.tp + b.fp)}</td><td>{b.tp} of {b.tp + b.fp} "
            f"positive calls right</td></tr><tr><td><b>NPV</b> {_share(b.tn, b.tn + b.fn)}</td><td>{b.tn} of {b.tn + b.fn} "
            f"negative calls right</td></tr></table>")
        self.changed.emit(positive, threshold)


HEADLINES = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("macro_f1", "Macro F1"),
             ("macro_auc", "Macro AUC"), ("ece", "Calibration error (ECE)"))


class ExternalPanel(QWidget):
    """Evaluate on an external folder (same class names) and compare with the internal results."""

    evaluated = Signal(object, object)

    def __init__(self, run_dir: Path, internal: dict[str, tuple[Predictions, Metrics]]) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.internal = internal
        self.tasks = Tasks(self)
        self.worker: Worker | None = None
        self.folder = PathPicker("External image folder", placeholder="A folder with one sub-folder per class")
        self.button = QPushButton("Evaluate")
        self.button.clicked.connect(self.evaluate)
        self.progress = QProgressBar()
        self.progress.hide()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.table = QTableWidget(0, 1)
        stretch_first_column(self.table)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Images from another site, scanner or season, sorted into sub-folders named exactly "
                              "like the model's classes. Models that look good on their own data often do worse "
                              "elsewhere; the table puts both side by side. The result is saved in the run folder "
                              "and included in the report."))
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        self.columns: list[tuple[str, Metrics]] = [(f"{name} split", m) for name, (_, m) in internal.items()]
        self._fill()

    def evaluate(self) -> None:
        """Evaluate the chosen folder in the background and save the result in the run folder."""
        folder, run_dir = self.folder.path(), self.run_dir
        if not folder:
            self.message.setText("Choose a folder first.")
            return
        self.button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.message.setText(f"Evaluating {folder}…")

        def evaluate(ctx: TaskContext) -> tuple[Predictions, Metrics]:
            from tl_desktop.engine.workflows.evaluation import evaluate_external

            external = evaluate_external(run_dir, folder, progress=ctx.progress, stop=ctx.stop)
            return external.predictions, external.metrics

        def connect(worker: Worker) -> None:
            worker.progress.connect(lambda done, total: total > 0 and (self.progress.setRange(0, total),
                                                                        self.progress.setValue(done)))
            worker.succeeded.connect(lambda result: self._done(folder, *result))
            worker.failed.connect(lambda message, _details: self.message.setText(f"Could not evaluate: {message}"))
            worker.finished.connect(lambda: (self.button.setEnabled(True), self.progress.hide()))

        self.worker = self.tasks.start(evaluate, "external", connect)

    def _done(self, folder: str, predictions: Predictions, metrics: Metrics) -> None:
        self.columns.append((f"external: {Path(folder).name}", metrics))
        notes = [f"{len(predictions)} images evaluated."]
        if predictions.failures:
            notes.append(f"{len(predictions.failures)} could not be read.")
        if metrics.absent_classes:
            notes.append(f"No images of {', '.join(metrics.absent_classes)}.")
        self.message.setText(" ".join(notes))
        self._fill()
        self.evaluated.emit(predictions, metrics)

    def _fill(self) -> None:
        from tl_desktop.engine.evaluation.formatting import (
            is_percent,
            method_label,
            with_interval,
        )

        self.table.setColumnCount(1 + len(self.columns))
        self.table.setHorizontalHeaderLabels(["Metric", *(name for name, _ in self.columns)])
        self.table.setRowCount(len(HEADLINES) + 1)
        for r, (key, label) in enumerate(HEADLINES):
            meaning = explain(label) or ""
            name = QTableWidgetItem(label)
            name.setToolTip(meaning)
            self.table.setItem(r, 0, name)
            for c, (_, m) in enumerate(self.columns, start=1):
                value = m.ece if key == "ece" else m.headline()[key]
                ci = None if key == "ece" else m.intervals.get(key)
                item = QTableWidgetItem(with_interval(value, ci, is_percent(key), prefix=""))
                interval = f"\n95% interval: {method_label(ci)}" + (f" ({ci.note})" if ci.note else "") if ci else ""
                item.setToolTip(meaning + interval)
                self.table.setItem(r, c, item)
        self.table.setItem(len(HEADLINES), 0, QTableWidgetItem("Images"))
        for c, (_, m) in enumerate(self.columns, start=1):
            self.table.setItem(len(HEADLINES), c, QTableWidgetItem(str(m.num_samples)))


def open_in_dialog(parent: QWidget | None, title: str, panel: QWidget) -> QDialog:
    """Show ``panel`` in a non-modal dialog with a Close button."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.resize(760, 560)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(panel, 1)
    layout.addWidget(buttons)
    dialog.panel = panel
    dialog.show()
    return dialog


class AnalysisBar(QWidget):
    """Buttons under the Results page's matrix: mistakes with saliency, threshold, calibration, external folder.

    It remembers, for the current run, the two-class threshold last chosen (the mistakes are those at that
    threshold) and the temperatures before each calibration made in this window (for Undo)."""

    def __init__(self, session: Session, current_split: Callable[[], str],
                 refresh: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.session = session
        self.current_split = current_split
        self.refresh = refresh
        self.dialogs: list[QDialog] = []
        self.decision: tuple[str, float] | None = None  # (positive class, threshold) chosen for this run
        self.undo_stacks: dict[Path, list[float]] = {}
        self._decision_run: Path | None = None
        self.mistakes_button = QPushButton("Most confident mistakes…")
        self.mistakes_button.setToolTip("Wrong answers, most confident first, with saliency maps")
        self.threshold_button = QPushButton("Decision threshold…")
        self.threshold_button.setToolTip("Two classes: sensitivity, specificity, PPV and NPV at a threshold\n\n"
                                         + explain_all(["sensitivity", "specificity", "PPV", "NPV"]))
        self.calibration_button = QPushButton("Calibration…")
        self.calibration_button.setToolTip("Are the model's probabilities trustworthy? Fit temperature scaling")
        self.external_button = QPushButton("External folder…")
        self.external_button.setToolTip("Evaluate on images from another site, scanner or season")
        self.mistakes_button.clicked.connect(self.show_mistakes)
        self.threshold_button.clicked.connect(self.show_threshold)
        self.calibration_button.clicked.connect(self.show_calibration)
        self.external_button.clicked.connect(self.show_external)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for button in (self.mistakes_button, self.threshold_button, self.calibration_button, self.external_button):
            layout.addWidget(button)
        layout.addStretch(1)
        session.evaluation_changed.connect(self.update_buttons)
        session.run_changed.connect(self.update_buttons)
        self.update_buttons()

    def _current(self) -> tuple[Predictions, Metrics] | None:
        return self.session.evaluations.get(self.current_split())

    def update_buttons(self) -> None:
        if self.session.run_dir != self._decision_run:  # a threshold chosen for another run means nothing here
            self.decision, self._decision_run = None, self.session.run_dir
        current = self._current()
        for button in (self.mistakes_button, self.calibration_button, self.external_button):
            button.setEnabled(current is not None)
        self.threshold_button.setEnabled(current is not None and len(current[1].classes) == 2)

    def _keep(self, dialog: QDialog) -> QDialog:
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _r: self.dialogs.remove(dialog) if dialog in self.dialogs else None)
        return dialog

    def show_mistakes(self, true_class: str | None = None, predicted_class: str | None = None) -> QDialog:
        from tl_desktop.gui.widgets.saliency import MistakesDialog

        predictions, _ = self._current()
        decision = self.decision if len(predictions.classes) == 2 else None
        dialog = MistakesDialog(self.window(), predictions, RunFolder(self.session.run_dir).model_file,
                                true_class or None, predicted_class or None, decision, session=self.session)
        dialog.show()
        return self._keep(dialog)

    def show_threshold(self) -> QDialog:
        predictions, _ = self._current()
        panel = ThresholdPanel(predictions)
        if self.decision is not None:
            panel.positive.setCurrentText(self.decision[0])
            panel.slider.setValue(round(self.decision[1] * 100))
        panel.changed.connect(self._choose_threshold)
        return self._keep(open_in_dialog(self.window(), "Decision threshold", panel))

    def _choose_threshold(self, positive: str, threshold: float) -> None:
        self.decision, self._decision_run = (positive, threshold), self.session.run_dir

    def show_calibration(self) -> QDialog:
        from tl_desktop.gui.widgets.calibration_panel import CalibrationPanel

        stack = self.undo_stacks.setdefault(self.session.run_dir, []) if self.session.run_dir else None
        panel = CalibrationPanel(self.session, self.current_split(), stack)
        panel.temperature_changed.connect(lambda _temperature: self.refresh())
        dialog = open_in_dialog(self.window(), "Calibration", panel)
        dialog.finished.connect(lambda _result: panel.detach())
        return self._keep(dialog)

    def show_external(self) -> QDialog:
        internal = dict(self.session.evaluations)
        return self._keep(open_in_dialog(self.window(), "External validation",
                                         ExternalPanel(self.session.run_dir, internal)))
