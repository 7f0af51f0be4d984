"""The "Clear cache…" confirmation: what the cache folder holds, and whether weights go too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

from tl_desktop.engine.caching.store import CacheInfo, CacheStore, human_size

if TYPE_CHECKING:
    from tl_desktop.gui.worker import TaskContext

CLEAR_TEXT = "Clear cache"


def read_cache_info(ctx: TaskContext) -> CacheInfo:
    """What the per-user cache folder holds (worker thread: walks the folder)."""
    return CacheStore().info()


def clear_cache(include_weights: bool, ctx: TaskContext) -> int:
    """Delete the cached images and features (and downloaded weights if asked); bytes freed."""
    return CacheStore().clear(include_weights=include_weights)


def describe(info: CacheInfo) -> str:
    """The cache's contents in plain words for the confirmation dialog."""
    weights = info.other_bytes.get("weights", 0)
    lines = [f"Prepared training data (can be rebuilt at any time): {human_size(info.evictable_bytes)} "
             f"in {len(info.entries)} item(s).",
             f"Downloaded pretrained weights: {human_size(weights)}.",
             f"Size limit: {human_size(info.limit_bytes)} (the oldest prepared data is removed beyond it).",
             f"Folder: {info.root}"]
    return "\n".join(lines)


def confirm_clear(parent: QWidget | None, info: CacheInfo) -> tuple[bool, bool]:
    """Ask before clearing; returns (confirmed, also delete the downloaded weights)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Clear cache")
    box.setText("Delete the prepared training data stored on this computer?")
    box.setInformativeText(describe(info) + "\n\nNothing you made is deleted: images, runs and model files "
                           "stay. The next training prepares its data again, which takes a little longer.")
    weights = info.other_bytes.get("weights", 0)
    also_weights = QCheckBox(f"Also delete the downloaded pretrained weights ({human_size(weights)}; "
                             "they must be downloaded again before training)")
    also_weights.setEnabled(weights > 0)
    box.setCheckBox(also_weights)
    clear = box.addButton(CLEAR_TEXT, QMessageBox.ButtonRole.DestructiveRole)
    cancel = box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(cancel)
    box.exec()
    return box.clickedButton() is clear, also_weights.isChecked()
