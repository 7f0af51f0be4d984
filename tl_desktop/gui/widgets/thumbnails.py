"""Thumbnails: decoded off the GUI thread into QImages (QPixmap only in the GUI thread)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem

THUMB_PX = 72
Thumbnail = tuple[str, "QImage | None"]  # a path and its thumbnail (None: the file could not be read)


def load_thumbnail(path: str, size: int = THUMB_PX) -> QImage:
    """Decode ``path`` small (JPEG draft mode) into a QImage; raises the engine's ImageLoadError."""
    from tl_desktop.engine.data.images import load_rgb

    image = load_rgb(path, draft_size=(size * 2, size * 2))
    image.thumbnail((size, size))
    return pil_to_qimage(image)


def pil_to_qimage(image) -> QImage:  # noqa: ANN001 - a PIL image; PIL is imported lazily
    """Copy an RGB PIL image into a QImage that owns its pixels."""
    rgb = image.convert("RGB")
    data = rgb.tobytes("raw", "RGB")
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return qimage.copy()


def load_thumbnails(paths: Sequence[str], size: int = THUMB_PX,
                    should_stop: Callable[[], bool] = lambda: False) -> list[Thumbnail]:
    """Thumbnails for ``paths``; an unreadable file gives ``None`` instead of failing the batch."""
    from tl_desktop.engine.data.images import ImageLoadError

    out: list[Thumbnail] = []
    for path in paths:
        if should_stop():
            break
        try:
            out.append((path, load_thumbnail(path, size)))
        except ImageLoadError:
            out.append((path, None))
    return out


class ThumbnailStrip(QListWidget):
    """A single-row, horizontally scrolling strip of thumbnails with file names as tooltips."""

    def __init__(self, size: int = THUMB_PX, wrap: bool = False) -> None:
        super().__init__()
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(size, size))
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(wrap)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setSpacing(3)
        self.setUniformItemSizes(True)
        if not wrap:
            self.setFixedHeight(size + 26)
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def set_images(self, items: Sequence[Thumbnail], captions: Sequence[str] = ()) -> None:
        """Show ``(path, image)`` pairs; a missing image shows as a labelled placeholder."""
        self.clear()
        for index, (path, image) in enumerate(items):
            item = QListWidgetItem()
            if image is not None:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            else:
                item.setText("unreadable")
            if index < len(captions):
                item.setText(captions[index])
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.addItem(item)
