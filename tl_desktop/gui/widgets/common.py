"""Small helpers shared by the pages: folder pickers, collapsible sections, number formatting."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def local_paths(mime: QMimeData) -> list[str]:
    """Local file paths of a drag-and-drop payload."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]


def human_count(n: float) -> str:
    """12_345_678 → '12.3 M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)}"


def heading(text: str) -> QLabel:
    """A bold section heading."""
    label = QLabel(f"<b>{text}</b>")
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def hint(text: str) -> QLabel:
    """A grey explanatory line that wraps."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #555;")
    return label


def stretch_first_column(table: QTableWidget) -> None:
    """The first column (a name) takes the free width; the number columns fit their contents."""
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    table.verticalHeader().hide()


class PathPicker(QWidget):
    """A line edit with a Browse… button for a folder or a file."""

    path_chosen = Signal(str)

    def __init__(self, caption: str, mode: str = "folder", file_filter: str = "",
                 button_text: str = "Browse…", placeholder: str = "") -> None:
        super().__init__()
        self._caption, self._mode, self._filter = caption, mode, file_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setAccessibleName(caption)
        self.edit.returnPressed.connect(lambda: self.path_chosen.emit(self.edit.text().strip()))
        self.button = QPushButton(button_text)
        self.button.clicked.connect(self.browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)

    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str) -> None:
        self.edit.setText(path)

    def browse(self) -> None:
        start = self.path() or str(Path.home())
        if self._mode == "folder":
            chosen = QFileDialog.getExistingDirectory(self, self._caption, start)
        elif self._mode == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, self._caption, start, self._filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self._caption, start, self._filter)
        if chosen:
            self.set_path(chosen)
            self.path_chosen.emit(chosen)


class Collapsible(QWidget):
    """A section with a clickable header that shows or hides its body (collapsed by default)."""

    def __init__(self, title: str, body: QWidget, expanded: bool = False) -> None:
        super().__init__()
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setChecked(expanded)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setAutoRaise(True)
        self.toggle.toggled.connect(self._set_expanded)
        self.body = body
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(self.toggle)
        header.addWidget(line, 1)
        layout.addLayout(header)
        layout.addWidget(body)
        self._set_expanded(expanded)

    def _set_expanded(self, expanded: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)
