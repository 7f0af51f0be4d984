"""A dialog showing a set of images (e.g. one confusion-matrix cell), thumbnails loaded off the GUI thread."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.thumbnails import ThumbnailStrip, load_thumbnails

GRID_THUMB_PX = 128
MAX_IMAGES = 200


class ImageGridDialog(QDialog):
    """Thumbnails with captions; double-click opens the file's path in a tooltip-like label."""

    def __init__(self, parent: QWidget | None, title: str, explanation: str, paths: Sequence[str],
                 captions: Sequence[str]) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(900, 600)
        self.paths = list(paths)[:MAX_IMAGES]
        self.captions = list(captions)[:MAX_IMAGES]
        text = explanation if len(paths) <= MAX_IMAGES else f"{explanation} (first {MAX_IMAGES} shown)"
        label = QLabel(text)
        label.setWordWrap(True)
        self.grid = ThumbnailStrip(GRID_THUMB_PX, wrap=True)
        self.grid.setWordWrap(True)
        self.grid.set_images([(p, None) for p in self.paths], self.captions)
        self.path_label = QLabel("Select an image to see its file.")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.grid.currentItemChanged.connect(
            lambda item, _old: item is not None and self.path_label.setText(item.toolTip()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.path_label)
        layout.addWidget(buttons)
        paths_copy = list(self.paths)
        self.tasks = Tasks(self)
        self.worker = self.tasks.start(
            lambda ctx: load_thumbnails(paths_copy, GRID_THUMB_PX, lambda: ctx.stop.requested), "thumbs",
            lambda w: w.succeeded.connect(self._show))
        self.finished.connect(lambda _result: self.tasks.stop())

    def _show(self, items: list) -> None:
        self.grid.set_images(items, self.captions)
