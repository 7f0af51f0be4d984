"""The freezing control: a slider over "trainable blocks from the top" and a picture of the blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from tl_desktop.gui.widgets.common import human_count

if TYPE_CHECKING:
    from tl_desktop.engine.models.backbones import FreezeSummary

FROZEN_STYLE = "background:#d9d9d9; color:#444; border:1px solid #aaa; border-radius:3px; padding:2px;"
TRAIN_STYLE = "background:#b7e1b0; color:#124d12; border:1px solid #5a9e50; border-radius:3px; padding:2px;"


class FreezeControl(QWidget):
    """Choose how many blocks (counted from the output end) train; shows frozen vs trainable."""

    changed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName("Trainable blocks from the top")
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setPageStep(1)
        self.slider.valueChanged.connect(self._on_value)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(170)
        self.blocks_row = QHBoxLayout()
        self.blocks_row.setSpacing(2)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Frozen"))
        top.addWidget(self.slider, 1)
        top.addWidget(QLabel("Trainable"))
        top.addWidget(self.value_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(self.blocks_row)
        layout.addWidget(self.summary)
        self._names: tuple[str, ...] = ()

    def set_blocks(self, block_names: tuple[str, ...], value: int | str) -> None:
        """Show ``block_names`` (input → output) and select ``value`` (int or "all")."""
        self._names = tuple(block_names)
        n = len(self._names)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n)
        self.slider.setValue(n if value == "all" else min(int(value), n))
        self.slider.blockSignals(False)
        while self.blocks_row.count():
            widget = self.blocks_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for name in (*self._names, "new head"):
            chip = QLabel(name)
            chip.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.blocks_row.addWidget(chip, 1)
        self._on_value(self.slider.value())

    def value(self) -> int | str:
        """Trainable blocks: an int, or "all" when every block trains."""
        v = self.slider.value()
        return "all" if self._names and v >= len(self._names) else v

    def set_value(self, value: int | str) -> None:
        self.slider.setValue(len(self._names) if value == "all" else int(value))

    def _on_value(self, v: int) -> None:
        n = len(self._names)
        for index in range(self.blocks_row.count()):
            chip = self.blocks_row.itemAt(index).widget()
            if chip is not None:
                chip.setStyleSheet(TRAIN_STYLE if index >= n - v else FROZEN_STYLE)
        if v == 0:
            self.value_label.setText("only the new head")
        elif v >= n:
            self.value_label.setText(f"all {n} blocks + head")
        else:
            self.value_label.setText(f"last {v} of {n} blocks + head")
        self.summary.setText("Counting parameters…")
        self.changed.emit(self.value())

    def show_summary(self, summary: FreezeSummary) -> None:
        """Describe a FreezeSummary: how many parameters will train."""
        share = 100 * summary.trainable_params / max(1, summary.total_params)
        frozen = ", ".join(summary.frozen_names) if summary.frozen_names else "nothing"
        self.summary.setText(
            f"<b>{human_count(summary.trainable_params)} of {human_count(summary.total_params)} parameters "
            f"will train ({share:.1f}%).</b> Frozen (kept as pretrained): {frozen}. "
            "More trainable blocks can fit your images better but train slower and need more images.")
