"""Step 4 — Results: accuracy, a clickable confusion matrix (counts / normalised), per-class table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.marks import Marker
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.runs_dialog import RunsDialog
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets.analysis import AnalysisBar
from tl_desktop.gui.widgets.common import heading, hint, stretch_first_column
from tl_desktop.gui.widgets.image_grid import ImageGridDialog, cell_dialog
from tl_desktop.gui.widgets.resume_bar import ResumeBar
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from matplotlib.backend_bases import MouseEvent
    from matplotlib.figure import Figure

    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.gui.widgets.threaded_canvas import ThreadedCanvas

SPLIT_NAMES = {"val": "validation", "test": "test"}
TABLE_KEYS = ("precision", "recall", "f1", "specificity")
TABLE_COLUMNS = ("Class", "Images", "Precision", "Recall", "F1", "Specificity")


def percent(value: float | None) -> str:
    """0.875 → '87.5%'; None (undefined) → '–'."""
    from tl_desktop.engine.evaluation.formatting import fmt

    return "–" if value is None else fmt(value)


class ResultsPage(Page):
    """Evaluates the current run on its validation or test images and shows the results."""

    step = Step.RESULTS
    title = "Results"
    step_hint = "how good is it?"
    hint = "How well the model does on images it did not train on."

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.split_box = QComboBox()
        self.split_box.addItem("Validation images", "val")
        self.split_box.addItem("Test images", "test")
        self.split_box.setToolTip("Test images were never used during training: the fairest check")
        self.split_box.currentIndexChanged.connect(self._on_split)
        self.open_button = QPushButton("Open a previous run…")
        self.open_button.clicked.connect(self.choose_run)
        self.history_button = QPushButton("Run history…")
        self.history_button.setToolTip("Every run so far: sort, rename, add notes, delete, compare")
        self.history_button.clicked.connect(self.show_history)
        self.marks_button = QPushButton("Marked images…")
        self.marks_button.setToolTip("Images you marked mislabelled or excluded: list, undo")
        self.marks_button.clicked.connect(self.show_marks)
        self.marker = Marker(session)
        self.progress = QProgressBar()
        self.progress.hide()
        self.resume_bar = ResumeBar("The results below are of its best model so far; training can go on "
                                    "from there.")
        self.resume_bar.resume_clicked.connect(session.request_resume)
        self._built_note: dict[Path, str] = {}  # runs whose model file this page built from the checkpoint
        self.headline = QLabel("Train a model (or open a previous run) to see its results here.")
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.RichText)
        self.counts_button = QRadioButton("Counts")
        self.normalised_button = QRadioButton("Normalised (share of each true class)")
        self.counts_button.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.counts_button)
        group.addButton(self.normalised_button)
        self.counts_button.toggled.connect(lambda _: self._draw_matrix())
        self.matrix_holder = QVBoxLayout()
        self.matrix_placeholder = QLabel("The confusion matrix appears here once the model is evaluated.")
        self.matrix_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.matrix_holder.addWidget(self.matrix_placeholder, 1)
        self.matrix_canvas: ThreadedCanvas | None = None
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        stretch_first_column(self.table)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show results on:"))
        top.addWidget(self.split_box)
        top.addWidget(self.progress, 1)
        top.addStretch(0)
        top.addWidget(self.marks_button)
        top.addWidget(self.history_button)
        top.addWidget(self.open_button)
        toggles = QHBoxLayout()
        toggles.addWidget(self.counts_button)
        toggles.addWidget(self.normalised_button)
        toggles.addStretch(1)
        matrix_side = QWidget()
        matrix_layout = QVBoxLayout(matrix_side)
        matrix_layout.setContentsMargins(0, 0, 0, 0)
        matrix_layout.addWidget(heading("Confusion matrix"))
        matrix_layout.addWidget(hint("Rows are the true classes, columns what the model said. "
                                     "The diagonal is correct. Click a cell to see its images, enlarge one with "
                                     "its saliency map, and mark any that are mislabelled."))
        matrix_layout.addLayout(toggles)
        matrix_layout.addLayout(self.matrix_holder, 1)
        table_side = QWidget()
        table_layout = QVBoxLayout(table_side)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(heading("Per class"))
        table_layout.addWidget(hint("Recall: share of a class's images found. Precision: share of the "
                                    "model's answers for a class that were right. F1 combines both. "
                                    "Under each value its 95% interval (hover a cell for the method)."))
        table_layout.addWidget(self.table, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(matrix_side)
        splitter.addWidget(table_side)
        splitter.setSizes([540, 520])
        layout = QVBoxLayout(self)
        layout.addWidget(heading("4. Results"))
        layout.addLayout(top)
        layout.addWidget(self.resume_bar)
        layout.addWidget(self.headline)
        layout.addWidget(splitter, 1)
        self.analysis = AnalysisBar(session, self.current_split, self._recalibrated)
        self.split_box.currentIndexChanged.connect(lambda _index: self.analysis.update_buttons())
        layout.addWidget(self.analysis)
        session.run_changed.connect(self._on_run_changed)
        session.training_state_changed.connect(lambda _running: self._offer_resume())

    def current_split(self) -> str:
        return str(self.split_box.currentData())

    def _recalibrated(self) -> None:
        """The model file got a new temperature: drop the old evaluations and evaluate again."""
        self.session.set_run(self.session.run_dir, self.session.fit_result)
        self.evaluate_current_run()

    def _on_run_changed(self) -> None:
        self._clear()
        self._offer_resume()

    def _offer_resume(self) -> None:
        self.resume_bar.show_for(self.session.run_dir, allowed=not self.session.training)

    def _on_split(self) -> None:
        split = self.current_split()
        self.session.shown_split = split
        if split in self.session.evaluations:
            self.show_evaluation(split)
        elif self.session.run_dir is not None:
            self.evaluate_current_run()

    def on_shown(self) -> None:
        if self.session.run_dir is not None and self.current_split() not in self.session.evaluations \
                and not self.busy("evaluate"):
            self.evaluate_current_run()

    def choose_run(self) -> None:
        """Pick a run folder (or a .tlmodel inside one) made earlier and evaluate it."""
        start = str(self.session.recall("folders/runs", ""))
        folder = QFileDialog.getExistingDirectory(self, "Open a training run folder", start)
        if folder:
            self.open_run(Path(folder))

    def show_history(self) -> RunsDialog:
        """Open the run history of the folder training writes to (the current run's folder when there is one)."""
        run_dir = self.session.run_dir
        folder = run_dir.parent if run_dir is not None else Path(self.session.config.out_dir).expanduser().resolve()
        dialog = RunsDialog(self, folder, self.open_run)
        dialog.open()
        return dialog

    def show_marks(self) -> QDialog:
        """The "Marked images" dialog of the open project."""
        from tl_desktop.gui.marks_dialog import MarksDialog

        dialog = MarksDialog(self, self.session)
        dialog.show()
        return dialog

    def open_run(self, folder: Path) -> None:
        """Make ``folder`` the current run and evaluate it; a run killed before it exported its model gets
        the model file built from its best checkpoint first (in the background)."""
        run = RunFolder(folder)
        if run.is_complete():
            self.session.set_run(run.path)
            self.evaluate_current_run()
        elif not run.is_run():
            self.show_error(f"{folder} is not a training run folder (it has no {run.config_file.name}).",
                            "Choose a folder created by a training run (named like 20250101-120000-…).")
        elif not run.best_checkpoint.is_file():
            self.show_error(f"Run {run.name} has no model: it ended before its first epoch finished.",
                            "Start a new training run and let at least one epoch finish.")
        else:
            self._build_model_file(run)

    def _build_model_file(self, run: RunFolder) -> None:
        """Build a killed run's model file from its best checkpoint as a task, then open the run."""
        if self.busy("build"):
            return

        def build(ctx: TaskContext) -> Path:
            from tl_desktop.engine.training.runfolder import model_file_of

            return model_file_of(run.path)

        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.emit(f"Building the model file of {run.name} from its best checkpoint…")
        self.run_task(build, "build", on_success=lambda _path: self._built(run.path),
                      on_done=lambda: self.progress.setVisible(self.busy("evaluate")),
                      error_title=f"Could not build the model file of run {run.name}.",
                      error_hint="The run's best checkpoint may be damaged: train the model again.")

    def _built(self, run_dir: Path) -> None:
        self._built_note[run_dir] = (" Built the model file from the best checkpoint (the run was interrupted before it "
                                     "saved one).")
        self.session.set_run(run_dir)
        self.evaluate_current_run()
        self.status.emit(f"Run {run_dir.name}: built the model file from the best checkpoint. Evaluating…")

    def evaluate_current_run(self) -> None:
        """Evaluate the current run on the selected split in the background."""
        run_dir, split = self.session.run_dir, self.current_split()
        if run_dir is None or self.busy("evaluate"):
            return

        def evaluate(ctx: TaskContext) -> tuple[Predictions, Metrics]:
            from tl_desktop.engine.evaluation.evaluate import evaluate_run

            return evaluate_run(run_dir, split, progress=ctx.progress, stop=ctx.stop)

        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.emit(f"Evaluating on the {SPLIT_NAMES[split]} images…")
        self.run_task(evaluate, "evaluate", on_success=lambda r: self._evaluated(run_dir, split, r),
                      on_progress=self._on_progress, on_done=self.progress.hide,
                      error_title=f"Could not evaluate the model on the {SPLIT_NAMES[split]} images.",
                      error_hint="If the run has no test images, choose “Validation images”. If images "
                                 "were moved since training, move them back or train again.")

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _evaluated(self, run_dir: Path, split: str, result: tuple[Predictions, Metrics]) -> None:
        if run_dir != self.session.run_dir:
            return
        self.session.set_evaluation(split, *result)
        if split == self.current_split():
            self.show_evaluation(split)
        self.status.emit(f"Results ready: {SPLIT_NAMES[split]} accuracy {percent(result[1].accuracy)}."
                         + self._built_note.get(run_dir, ""))

    def _clear(self) -> None:
        self.table.setRowCount(0)
        self._drop_canvas()
        self.headline.setText("Evaluating…" if self.session.run_dir else
                              "Train a model (or open a previous run) to see its results here.")

    def show_evaluation(self, split: str) -> None:
        """Show the stored evaluation of ``split``."""
        from tl_desktop.engine.evaluation.formatting import (
            fmt_bounds,
            method_label,
            with_interval,
        )

        predictions, metrics = self.session.evaluations[split]
        ci = metrics.intervals.get("accuracy")
        interval = f" (95% interval {fmt_bounds(ci)}, {method_label(ci)})" if ci is not None and ci.estimable else ""
        notes = f" {len(predictions.failures)} image(s) could not be read." if predictions.failures else ""
        if metrics.groups is not None:
            notes += (f" The images come in {metrics.groups:,} groups (patients, fields): every interval resamples "
                         "or weights whole groups, since images of one group are not independent.")
        self.headline.setText(
            f"<span style='font-size:16pt'><b>Accuracy {percent(metrics.accuracy)}</b></span>{interval} on "
            f"{metrics.num_samples} {SPLIT_NAMES[split]} images of run <i>{self.session.run_dir.name}</i>. "
            f"Balanced accuracy (every class counts the same): "
            f"{with_interval(metrics.balanced_accuracy, metrics.intervals.get('balanced_accuracy'), prefix='')}."
            f"{notes}")
        self._fill_table(metrics)
        self._draw_matrix()

    def _fill_table(self, metrics: Metrics) -> None:
        """One row per class: each value above its 95% interval (the method in the tooltip)."""
        from tl_desktop.engine.evaluation.formatting import (
            TOO_FEW,
            fmt_bounds,
            method_label,
        )

        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        self.table.setRowCount(len(metrics.per_class))
        for r, row in enumerate(metrics.per_class):
            intervals = metrics.class_intervals.get(row.name, {})
            name = QTableWidgetItem(f"{row.name}\n({TOO_FEW})" if row.too_few_images else row.name)
            self.table.setItem(r, 0, name)
            support = QTableWidgetItem(str(row.support))
            support.setTextAlignment(right)
            self.table.setItem(r, 1, support)
            for c, key in enumerate(TABLE_KEYS, start=2):
                value, ci = getattr(row, key), intervals.get(key)
                text = percent(value)
                if value is not None and ci is not None:
                    text += f"\n({fmt_bounds(ci)})" if ci.estimable else "\n(not estimable)"
                item = QTableWidgetItem(text)
                item.setTextAlignment(right)
                if ci is not None and value is not None:
                    item.setToolTip(f"95% interval: {method_label(ci)}" + (f" ({ci.note})" if ci.note else ""))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()

    def _draw_matrix(self) -> None:
        """Build the confusion-matrix figure off the GUI thread, then show it in a canvas."""
        split = self.current_split()
        if split not in self.session.evaluations:
            return
        _, metrics = self.session.evaluations[split]
        normalize = self.normalised_button.isChecked()

        def build(ctx: TaskContext) -> Figure:
            import tl_desktop.gui.widgets.threaded_canvas  # noqa: F401  (matplotlib, off the GUI thread)
            from tl_desktop.report.figures import confusion_matrix_figure

            return confusion_matrix_figure(metrics.confusion, metrics.classes, normalize=normalize)

        self.run_task(build, "matrix", on_success=lambda figure: self._show_matrix(split, normalize, figure),
                      error_title="Could not draw the confusion matrix.")

    def _show_matrix(self, split: str, normalize: bool, figure: Figure) -> None:
        if split != self.current_split() or normalize != self.normalised_button.isChecked():
            return
        from tl_desktop.gui.widgets.threaded_canvas import ThreadedCanvas

        canvas = ThreadedCanvas(figure)
        canvas.setToolTip("Click a cell to see its images")
        canvas.mpl_connect("button_press_event", self._on_matrix_click)
        self._drop_canvas()
        self.matrix_placeholder.hide()
        self.matrix_canvas = canvas
        self.matrix_holder.addWidget(canvas, 1)

    def _drop_canvas(self) -> None:
        if self.matrix_canvas is not None:
            self.matrix_holder.removeWidget(self.matrix_canvas)
            self.matrix_canvas.hide()
            self.matrix_canvas.deleteLater()
            self.matrix_canvas = None
            self.matrix_placeholder.show()

    def _on_matrix_click(self, event: MouseEvent) -> None:
        from tl_desktop.report.figures import confusion_cell_at

        _, metrics = self.session.evaluations[self.current_split()]
        cell = confusion_cell_at(event.xdata, event.ydata, len(metrics.classes))
        if cell is not None:
            self.show_cell(*cell)

    def show_cell(self, true_index: int, predicted_index: int) -> ImageGridDialog:
        """Open the images of one confusion-matrix cell (to mark them, or enlarge with their saliency maps)."""
        predictions, _ = self.session.evaluations[self.current_split()]
        dialog = cell_dialog(self, predictions, true_index, predicted_index, self.session.model_path(), self.marker)
        dialog.show()
        return dialog
