"""A dialog showing a set of images (e.g. one confusion-matrix cell), thumbnails loaded off the GUI thread;
a double-click enlarges an image (with its saliency map, when the caller offers it) and a mark bar under the
grid marks the selected image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.thumbnails import ThumbnailStrip, load_thumbnails

if TYPE_CHECKING:
    from pathlib import Path

    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.gui.marks import MarkBar, Marker

GRID_THUMB_PX = 128
MAX_IMAGES = 200


class ImageGridDialog(QDialog):
    """Thumbnails with captions; selecting one shows its file (and its mark in ``mark_bar``, for the image's
    class in ``true_classes``), double-clicking one calls ``enlarge`` with its position."""

    def __init__(self, parent: QWidget | None, title: str, explanation: str, paths: Sequence[str],
                 captions: Sequence[str], enlarge: Callable[[int], object] | None = None,
                 mark_bar: MarkBar | None = None, true_classes: Sequence[str] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(900, 600)
        self.paths = list(paths)[:MAX_IMAGES]
        self.captions = list(captions)[:MAX_IMAGES]
        self.true_classes = list(true_classes)
        self.enlarge = enlarge
        self.mark_bar = mark_bar
        text = explanation if len(paths) <= MAX_IMAGES else f"{explanation} (first {MAX_IMAGES} shown)"
        if enlarge is not None:
            text += " Double-click an image to enlarge it with its saliency map."
        label = QLabel(text)
        label.setWordWrap(True)
        self.grid = ThumbnailStrip(GRID_THUMB_PX, wrap=True)
        self.grid.setWordWrap(True)
        self.grid.set_images([(p, None) for p in self.paths], self.captions)
        self.path_label = QLabel("Select an image to see its file.")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.grid.currentItemChanged.connect(lambda item, _old: self._select(item))
        self.grid.itemDoubleClicked.connect(self._enlarge)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.path_label)
        if mark_bar is not None:
            layout.addWidget(mark_bar)
        layout.addWidget(buttons)
        paths_copy = list(self.paths)
        self.tasks = Tasks(self)
        self.worker = self.tasks.start(
            lambda ctx: load_thumbnails(paths_copy, GRID_THUMB_PX, lambda: ctx.stop.requested), "thumbs",
            lambda w: w.succeeded.connect(self._show))
        self.finished.connect(lambda _result: self.tasks.stop())
        if mark_bar is not None:
            mark_bar.marker.session.marks_changed.connect(self._show_marks)
            self._show_marks()

    def _show(self, items: list) -> None:
        current = self.grid.currentRow()
        self.grid.set_images(items, self.captions)
        self._show_marks()
        if current >= 0:
            self.grid.setCurrentRow(current)

    def _show_marks(self) -> None:
        """Each caption says whether its image is marked ("87% · excluded", "87% · mislabelled, really b")."""
        marks = self.mark_bar.marker.marks_of(self.paths) if self.mark_bar is not None else {}
        for row, path in enumerate(self.paths[:self.grid.count()]):
            mark = marks.get(path)
            said = "" if mark is None else f" · {mark.describe()}"
            self.grid.item(row).setText(f"{self.captions[row] if row < len(self.captions) else ''}{said}")

    def _select(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        self.path_label.setText(item.toolTip())
        row = self.grid.row(item)
        if self.mark_bar is not None and 0 <= row < len(self.paths):
            self.mark_bar.set_image(self.paths[row], self.true_classes[row] if row < len(self.true_classes) else "")

    def _enlarge(self, item: QListWidgetItem) -> None:
        row = self.grid.row(item)
        if self.enlarge is not None and 0 <= row < len(self.paths):
            self.enlarge(row)


def cell_dialog(parent: QWidget | None, predictions: Predictions, true_index: int, predicted_index: int,
                model_path: Path, marker: Marker) -> ImageGridDialog:
    """The images of one confusion-matrix cell, most confident first: each can be marked, and a double-click
    enlarges it with its saliency map (those dialogs are kept in ``enlarged``)."""
    from tl_desktop.engine.evaluation.evaluate import cell_members
    from tl_desktop.gui.marks import MarkBar
    from tl_desktop.gui.widgets.saliency import EnlargeDialog

    true_name, predicted_name = predictions.classes[true_index], predictions.classes[predicted_index]
    members = cell_members(predictions, true_name, predicted_name)
    captions = [f"{100 * predictions.probs[i, predicted_index]:.0f}%" for i in members]
    what = "correctly recognised" if true_index == predicted_index else f"taken for {predicted_name}"
    enlarged: list[QDialog] = []

    def enlarge(row: int) -> None:
        dialog = EnlargeDialog(grid, predictions, members[row], model_path, marker)
        enlarged.append(dialog)
        dialog.show()

    grid = ImageGridDialog(parent, f"{true_name} → {predicted_name}",
                           f"{len(members)} image(s) of {true_name} {what}. The number under each image is the "
                           f"model's confidence in “{predicted_name}”.",
                           [predictions.paths[i] for i in members], captions, enlarge=enlarge,
                           mark_bar=MarkBar(marker, list(predictions.classes)), true_classes=[true_name] * len(members))
    grid.enlarged = enlarged
    return grid
