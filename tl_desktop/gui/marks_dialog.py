"""The "Marked images…" dialog: every image marked mislabelled or excluded in the open project, undo one or all;
and the Data page's pieces: the "Checks" heading with the button that opens it, and the check line."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.data.audit import Audit
from tl_desktop.gui.marks import NO_PROJECT, Marker
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import heading, hint, stretch_first_column

COLUMNS = ("Image", "Your mark", "When", "Note")


class MarksDialog(QDialog):
    """A table of the project's marks with Undo (the selected rows) and Undo all."""

    def __init__(self, parent: QWidget | None, session: Session) -> None:
        super().__init__(parent)
        self.marker = Marker(session)
        self.setWindowTitle("Marked images")
        self.resize(1000, 460)
        project = session.project
        where = (f"They are kept in {project.marks_file}." if project is not None else NO_PROJECT[0])
        self.intro = hint("Images you marked as mislabelled or excluded. Your image files are never moved or "
                          f"changed: the next run follows these marks. {where}")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        stretch_first_column(self.table)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the file name at the end stays readable
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.undo_button = QPushButton("Undo selected")
        self.undo_button.setToolTip("The selected images are used with their own labels again")
        self.undo_button.clicked.connect(self.undo_selected)
        self.undo_all_button = QPushButton("Undo all…")
        self.undo_all_button.clicked.connect(self.undo_all)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.undo_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.undo_all_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        session.marks_changed.connect(self.fill)
        self.fill()

    def fill(self) -> None:
        marks = self.marker.marks(self)
        self.table.setRowCount(len(marks))
        for row, mark in enumerate(marks):
            for column, text in enumerate((mark.path, mark.describe(), mark.when.replace("T", " "), mark.note)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, mark.path)
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        self.undo_all_button.setEnabled(bool(marks))
        self._update_buttons()

    def selected_keys(self) -> set[str]:
        return {str(self.table.item(index.row(), 0).data(Qt.ItemDataRole.UserRole))
                for index in self.table.selectionModel().selectedRows()}

    def _update_buttons(self) -> None:
        self.undo_button.setEnabled(bool(self.selected_keys()))

    def undo_selected(self) -> None:
        keys = self.selected_keys()
        if keys:
            self.marker.undo(self, keys)

    def undo_all(self) -> None:
        count = self.table.rowCount()
        if count and dialogs.ask_yes_no(self, "Undo every mark?",
                                        f"Undo the marks of all {count} image(s)? The next run then uses every "
                                        "image with the label its folder or table gives.", yes_text="Undo all"):
            self.marker.undo(self)


def checks_heading(parent: QWidget, session: Session) -> QHBoxLayout:
    """The "Checks" heading with a "Marked images…" button that opens the dialog."""
    button = QPushButton("Marked images…")
    button.setToolTip("Images you marked mislabelled or excluded on the Results page: list, undo")
    button.clicked.connect(lambda: MarksDialog(parent, session).show())
    row = QHBoxLayout()
    row.addWidget(heading("Checks"), 1)
    row.addWidget(button)
    return row


def add_marks_check(checks: QListWidget, audit: Audit) -> None:
    """The check line "Your marks: 3 images relabelled by you, 2 excluded", when a mark changed anything."""
    line = audit.marks_line()
    if line:
        icon = checks.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogInfoView)
        checks.addItem(QListWidgetItem(icon, f"Your marks: {line} (Marked images… lists them)."))
