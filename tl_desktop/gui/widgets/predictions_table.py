"""A folder's answers on the Predict page: one row per image (thumbnail, file, top class and probability,
second class and probability, why a file was unreadable), sorted by any column, filtered to the answers below
a confidence the user sets. Thumbnails are decoded off the GUI thread, a chunk at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.thumbnails import load_thumbnails
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:  # the prediction workflow imports torch: kept off the window's start path
    from tl_desktop.engine.workflows.prediction import PredictionRow

THUMB_PX = 48
THUMB_CHUNK = 24  # thumbnails sent to the GUI thread at a time
DEFAULT_THRESHOLD_PERCENT = 70
COLUMNS = ("Image", "File", "Top class", "Probability", "Second class", "Second probability", "Problem")
IMAGE, FILE, TOP, PROBABILITY, SECOND, SECOND_PROBABILITY, PROBLEM = range(len(COLUMNS))
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # the raw value a column sorts by (a probability, not its text)
Index = QModelIndex | QPersistentModelIndex


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


class PredictionsModel(QAbstractTableModel):
    """The rows of one folder's prediction, with the thumbnails that have arrived so far."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[PredictionRow] = []
        self._thumbnails: dict[int, QPixmap] = {}

    def set_rows(self, rows: Sequence[PredictionRow]) -> None:
        self.beginResetModel()
        self.rows, self._thumbnails = list(rows), {}
        self.endResetModel()

    def set_thumbnails(self, first: int, images: Sequence[QImage | None]) -> None:
        """Thumbnails of rows ``first``, ``first + 1``…; None for a file that could not be read."""
        for row, image in enumerate(images, start=first):
            if image is not None and row < len(self.rows):
                self._thumbnails[row] = QPixmap.fromImage(image)
        if images:
            self.dataChanged.emit(self.index(first, IMAGE), self.index(first + len(images) - 1, IMAGE),
                                  [Qt.ItemDataRole.DecorationRole])

    def has_thumbnail(self, row: int) -> bool:
        return row in self._thumbnails

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == Qt.ItemDataRole.DecorationRole and column == IMAGE:
            return self._thumbnails.get(index.row())
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.error or row.path
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (PROBABILITY, SECOND_PROBABILITY):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(row: PredictionRow, column: int) -> str:
        return {IMAGE: "", FILE: Path(row.path).name, TOP: row.top_class, PROBABILITY: percent(row.probability),
                SECOND: row.second_class, SECOND_PROBABILITY: percent(row.second_probability),
                PROBLEM: row.error}[column]

    @staticmethod
    def _sort_key(row: PredictionRow, column: int) -> Any:
        if column == PROBABILITY:
            return -1.0 if row.probability is None else row.probability  # unreadable files sort first
        if column == SECOND_PROBABILITY:
            return -1.0 if row.second_probability is None else row.second_probability
        if column in (IMAGE, FILE):
            return row.path.casefold()
        return PredictionsModel._text(row, column).casefold()


class LowConfidenceFilter(QSortFilterProxyModel):
    """Sorts by each column's raw value; with a threshold, keeps only the answers below it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.threshold: float | None = None
        self.setSortRole(SORT_ROLE)

    def set_threshold(self, threshold: float | None) -> None:
        """Keep only the answers whose top probability is below ``threshold`` (None: every row)."""
        self.beginFilterChange()
        self.threshold = threshold
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self.threshold is None:
            return True
        probability = self.sourceModel().rows[source_row].probability
        return probability is not None and probability < self.threshold


def count_below(rows: Sequence[PredictionRow], threshold: float) -> int:
    """How many answers have a top probability below ``threshold`` (unreadable files are no answer)."""
    return sum(1 for row in rows if row.probability is not None and row.probability < threshold)


class PredictionsPanel(QWidget):
    """The table of a folder's answers, its low-confidence filter and its Save as CSV… button."""

    save_requested = Signal()
    image_activated = Signal(str)  # a row was double-clicked: the image's path

    def __init__(self) -> None:
        super().__init__()
        self.tasks = Tasks(self)
        self._generation = 0  # thumbnails of an earlier folder that arrive late are dropped
        self.summary = QLabel("No folder classified yet: click “Choose folder…” or drop a folder on this page.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.only_low = QCheckBox("Show only answers below")
        self.only_low.setToolTip("A low top probability means the model is unsure: check those images yourself")
        self.threshold = QSpinBox()
        self.threshold.setRange(1, 100)
        self.threshold.setSuffix(" %")
        self.threshold.setValue(DEFAULT_THRESHOLD_PERCENT)
        self.threshold.setAccessibleName("Confidence threshold")
        self.low_count = QLabel()
        self.save_button = QPushButton("Save as CSV…")
        self.save_button.setToolTip("Every image's answer and all class probabilities, whatever the filter shows")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested)
        self.model = PredictionsModel(self)
        self.proxy = LowConfidenceFilter(self)
        self.proxy.setSourceModel(self.model)
        self.view = self._make_view()
        self.only_low.toggled.connect(self._apply_filter)
        self.threshold.valueChanged.connect(self._apply_filter)

        controls = QHBoxLayout()
        controls.addWidget(self.only_low)
        controls.addWidget(self.threshold)
        controls.addWidget(self.low_count, 1)
        controls.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(controls)
        layout.addWidget(self.view, 1)
        self._apply_filter()

    def _make_view(self) -> QTableView:
        view = QTableView()
        view.setModel(self.proxy)
        view.setSortingEnabled(True)
        view.sortByColumn(FILE, Qt.SortOrder.AscendingOrder)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setIconSize(QSize(THUMB_PX, THUMB_PX))
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        view.verticalHeader().setDefaultSectionSize(THUMB_PX + 6)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(IMAGE, THUMB_PX + 12)
        header.setSectionResizeMode(IMAGE, QHeaderView.ResizeMode.Fixed)
        view.doubleClicked.connect(lambda index: self.image_activated.emit(
            self.model.rows[self.proxy.mapToSource(index).row()].path))
        return view

    def show_rows(self, summary: str, rows: Sequence[PredictionRow]) -> None:
        """Show a folder's rows (thumbnails follow in the background)."""
        self.summary.setText(summary)
        self.model.set_rows(rows)
        self.view.setColumnHidden(PROBLEM, not any(row.error for row in rows))
        self.save_button.setEnabled(bool(rows))
        self._apply_filter()
        self._load_thumbnails([row.path for row in self.model.rows])

    def visible_rows(self) -> list[PredictionRow]:
        """The rows as the table shows them now: filtered and sorted."""
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
                for r in range(self.proxy.rowCount())]

    def _apply_filter(self) -> None:
        threshold = self.threshold.value() / 100
        self.proxy.set_threshold(threshold if self.only_low.isChecked() else None)
        answers = [row for row in self.model.rows if row.probability is not None]
        below = count_below(answers, threshold)
        self.low_count.setText(f"{below} of {len(answers)} answers are below {self.threshold.value()}%"
                               if answers else "")

    def _load_thumbnails(self, paths: list[str]) -> None:
        self.tasks.stop("thumbnails")
        self._generation += 1
        generation = self._generation

        def load(ctx: TaskContext) -> None:
            for first in range(0, len(paths), THUMB_CHUNK):
                ctx.stop.raise_if_requested()
                chunk = load_thumbnails(paths[first:first + THUMB_CHUNK], THUMB_PX, lambda: ctx.stop.requested)
                ctx.emit((first, [image for _path, image in chunk]))

        def arrived(payload: tuple[int, list[QImage | None]]) -> None:
            if generation == self._generation:
                self.model.set_thumbnails(*payload)

        if paths:
            self.tasks.start(load, "thumbnails", lambda worker: worker.event.connect(arrived))

    def loading_thumbnails(self) -> bool:
        return self.tasks.busy("thumbnails")
