"""The run history dialog behind the Results page's "Run history…" button.

It lists the runs of a folder (read on a worker thread by the engine's
:func:`~tl_desktop.engine.workflows.run_history.list_runs`) in a sortable table, and offers Open,
Rename, Note, Delete (to the system trash, after asking) and Compare (two or more runs: settings side
by side with the differences highlighted, headline metrics with their saved intervals, overlaid
validation curves).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.workflows.run_history import (
    COLUMNS,
    RunHistoryError,
    RunSummary,
    TrashUnavailable,
    cell_text,
    delete_permanently,
    list_runs,
    move_to_trash,
    set_label,
)
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import hint
from tl_desktop.gui.worker import TaskContext, Worker

if TYPE_CHECKING:
    from tl_desktop.engine.workflows.run_comparison import RunComparison

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
DIFFERENT = QColor(255, 236, 160)
STATUS_COLOURS = {"failed": QColor(200, 40, 40), "damaged": QColor(200, 40, 40), "running": QColor(30, 110, 200)}


def _sort_value(run: RunSummary, column: str) -> object:
    values = {"date": run.date.timestamp() if run.date else -1.0, "epochs": run.epochs_completed,
              "time": run.seconds, "val": run.val_accuracy, "test": run.test_accuracy,
              "balanced": run.balanced_accuracy, "auc": run.macro_auc}
    if column in values:
        value = values[column]
        return -1.0 if value is None else float(value)
    return cell_text(run, column).lower()


class RunsDialog(QDialog):
    """The runs of one folder: a sortable table and what can be done with the selected runs."""

    def __init__(self, parent: QWidget | None, folder: Path, open_run: Callable[[Path], None]) -> None:
        super().__init__(parent)
        self.folder, self._open_run = folder, open_run
        self.tasks = Tasks(self)
        self.runs: list[RunSummary] = []
        self.setWindowTitle("Run history")
        self.resize(1100, 520)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS.values()))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(list(COLUMNS).index("date"), Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.table.doubleClicked.connect(lambda _index: self._open())
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for key, text, slot in (("folder", "Other folder…", self._choose_folder), ("open", "Open", self._open),
                                ("rename", "Rename…", self._rename), ("note", "Note…", self._note),
                                ("delete", "Delete…", self._delete), ("compare", "Compare", self._compare)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            self.buttons[key] = button
            row.addWidget(button)
            if key == "folder":
                row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addWidget(hint("Click a heading to sort. Select two or more runs (Ctrl-click) to compare them. "
                              "Test figures appear once a run was evaluated on its test images."))
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.reload()

    # ----- reading ------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the folder's runs again, off the GUI thread."""
        self.where.setText(f"Reading the runs in {self.folder} …")
        self._update_buttons()
        folder = self.folder

        def read(_ctx: TaskContext) -> list[RunSummary]:
            return list_runs(folder)

        def connect(worker: Worker) -> None:
            worker.succeeded.connect(self._show_runs)
            worker.failed.connect(lambda message, _details: self._show_problem(message))
            worker.finished.connect(self._update_buttons)

        self.tasks.start(read, "runs", connect)

    def _show_problem(self, message: str) -> None:
        self.runs = []
        self.model.setRowCount(0)
        self.where.setText(f"{message}. Choose another folder.")
        self._update_buttons()

    def _show_runs(self, runs: list[RunSummary]) -> None:
        self.runs = runs
        self.model.setRowCount(0)
        for index, run in enumerate(runs):
            items = []
            for column in COLUMNS:
                item = QStandardItem(cell_text(run, column))
                item.setData(_sort_value(run, column), SORT_ROLE)
                item.setData(index, Qt.ItemDataRole.UserRole)
                tip = "\n".join(t for t in (str(run.path), run.note and f"Note: {run.note}", run.reason) if t)
                item.setToolTip(tip)
                if column == "status" and run.status in STATUS_COLOURS:
                    item.setForeground(QBrush(STATUS_COLOURS[run.status]))
                items.append(item)
            self.model.appendRow(items)
        count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" if runs else "No runs yet"
        self.where.setText(f"<b>{count}</b> in {self.folder}")
        self._update_buttons()

    def selected(self) -> list[RunSummary]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.runs[self.model.item(r, 0).data(Qt.ItemDataRole.UserRole)] for r in rows]

    def _update_buttons(self) -> None:
        count = len(self.selected()) if self.runs else 0
        busy = self.tasks.busy()
        for key in ("open", "rename", "note"):
            self.buttons[key].setEnabled(count == 1 and not busy)
        self.buttons["delete"].setEnabled(count >= 1 and not busy)
        self.buttons["compare"].setEnabled(count >= 2 and not busy)

    # ----- acting on runs -----------------------------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a project or runs folder", str(self.folder))
        if folder:
            self.folder = Path(folder)
            self.reload()

    def _open(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self._open_run(chosen[0].path)
            self.accept()

    def _rename(self) -> None:
        run = self.selected()[0]
        name, ok = QInputDialog.getText(self, "Rename run", f"Name shown for {run.folder_name} (the folder "
                                        "keeps its name; leave empty for the folder's name):", text=run.display_name)
        if ok:
            self._label(run, name=name)

    def _note(self) -> None:
        run = self.selected()[0]
        note, ok = QInputDialog.getMultiLineText(self, "Note", f"Note for {run.name}:", run.note)
        if ok:
            self._label(run, note=note)

    def _label(self, run: RunSummary, **label: str) -> None:
        try:
            set_label(run.path, **label)
        except (RunHistoryError, OSError) as exc:
            dialogs.show_error(self, f"Could not save the label of {run.name}.", str(exc))
            return
        self.reload()

    def _delete(self) -> None:
        chosen = self.selected()
        names = ", ".join(r.name for r in chosen)
        if not dialogs.ask_yes_no(self, "Delete runs", f"Move {len(chosen)} run(s) to the trash?", names,
                                  yes_text="Move to trash"):
            return
        for run in chosen:
            try:
                move_to_trash(run.path)
            except TrashUnavailable as exc:
                if dialogs.ask_yes_no(self, "Delete permanently?", f"{run.name} cannot go to the trash.", str(exc),
                                      yes_text="Delete permanently", no_text="Keep it"):
                    self._delete_for_good(run)
            except RunHistoryError as exc:
                dialogs.show_error(self, f"Could not delete {run.name}.", str(exc))
        self.reload()

    def _delete_for_good(self, run: RunSummary) -> None:
        try:
            delete_permanently(run.path)
        except RunHistoryError as exc:
            dialogs.show_error(self, f"Could not delete {run.name}.", str(exc))

    def _compare(self) -> None:
        paths = [r.path for r in self.selected()]

        def compare(_ctx: TaskContext) -> RunComparison:
            from tl_desktop.engine.workflows.run_comparison import compare_runs

            return compare_runs(paths)

        def connect(worker: Worker) -> None:
            worker.succeeded.connect(lambda result: ComparisonDialog(self, result).exec())
            worker.failed.connect(lambda message, details: dialogs.show_error(
                self, f"Could not compare the runs.\n\n{message}", "Check that the run folders are readable.",
                details))
            worker.finished.connect(self._update_buttons)

        self.tasks.start(compare, "compare", connect)
        self._update_buttons()

    def done(self, result: int) -> None:
        self.tasks.shutdown()
        super().done(result)


class ComparisonDialog(QDialog):
    """Two or more runs side by side: metrics with intervals, settings (differences highlighted), curves."""

    def __init__(self, parent: QWidget | None, comparison: RunComparison) -> None:
        super().__init__(parent)
        self.comparison = comparison
        names = [r.name for r in comparison.runs]
        self.setWindowTitle(f"Comparing {len(names)} runs")
        self.resize(1000, 600)
        splits = [s and {"test": "test images", "val": "validation images"}[s] or "not evaluated"
                  for s in comparison.metrics_split]
        self.metrics = _table(["Metric", *names], [["Evaluated on", *splits],
                                                   *[[row.label, *row.texts()] for row in comparison.metrics]])
        settings = sorted(comparison.settings, key=lambda row: not row.differs)  # the differences on top
        self.settings = _table(["Setting", *names], [[row.key, *row.values] for row in settings])
        for index, row in enumerate(settings):
            if row.differs:
                for column in range(self.settings.columnCount()):
                    self.settings.item(index, column).setBackground(QBrush(DIFFERENT))
        differing = len(comparison.differing_settings())
        tabs = QTabWidget()
        tabs.addTab(self.metrics, "Headline metrics")
        tabs.addTab(self.settings, f"Settings ({differing} differ)")
        tabs.addTab(self._curves(), "Learning curves")
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Intervals are the 95% intervals saved with each run's evaluation. Settings that "
                              "differ between the runs are highlighted."))
        layout.addWidget(tabs, 1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)

    def _curves(self) -> QWidget:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 3.6), layout="constrained")
        loss, accuracy = figure.subplots(1, 2)
        for run, curve in zip(self.comparison.runs, self.comparison.curves):
            loss.plot(curve.epochs, curve.val_loss, marker="o", label=run.name)
            accuracy.plot(curve.epochs, curve.val_accuracy, marker="o", label=run.name)
        from matplotlib.ticker import MaxNLocator, PercentFormatter

        loss.set(title="Validation loss", xlabel="Epoch", ylabel="Loss")
        accuracy.set(title="Validation accuracy", xlabel="Epoch", ylabel="Accuracy")
        loss.ticklabel_format(axis="y", useOffset=False)
        accuracy.yaxis.set_major_formatter(PercentFormatter(1.0))
        for axes in (loss, accuracy):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        accuracy.legend(fontsize="small")
        return FigureCanvasQTAgg(figure)


def _table(headings: list[str], rows: list[list[str]]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headings))
    table.setHorizontalHeaderLabels(headings)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table
