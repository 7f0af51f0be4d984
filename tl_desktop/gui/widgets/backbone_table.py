"""The backbone table: what a non-expert needs to choose a pretrained model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
)

from tl_desktop.gui.widgets.common import human_count

if TYPE_CHECKING:
    from tl_desktop.engine.models.specs import BackboneSpec

COLUMNS = ("Model", "Size", "Input", "Speed on this computer", "Weights")
SPEED_TIP = ("Images per second when predicting, measured on this computer with the chosen device "
             "(select a model and click “Measure speed”). Training is roughly three times slower.")
WEIGHTS_TEXT = {"bundled": "Included", "cached": "On this computer"}


def weights_text(status: str, spec: BackboneSpec) -> str:
    """'Included', 'On this computer' or 'Download 17 MB'."""
    return WEIGHTS_TEXT.get(status, f"Download {spec.weights_mb:.0f} MB")


def speed_text(images_per_s: float | None) -> str:
    """A measured inference speed, or a prompt to measure it."""
    if images_per_s is None:
        return "not measured yet"
    return f"{images_per_s:.0f} images/s" if images_per_s >= 10 else f"{images_per_s:.1f} images/s"


class BackboneTable(QTableWidget):
    """One row per registered backbone; selecting a row emits its name."""

    backbone_selected = Signal(str)

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName("Pretrained models")
        self.itemSelectionChanged.connect(self._on_selection)
        self.specs: list[BackboneSpec] = []

    def set_backbones(self, specs: list[BackboneSpec], statuses: dict[str, str], speeds: dict[str, float | None],
                      selected: str) -> None:
        """Fill the table; ``selected`` is the backbone name to select."""
        self.specs = list(specs)
        self.blockSignals(True)
        self.setRowCount(len(specs))
        for row, spec in enumerate(specs):
            values = (spec.title, f"{human_count(spec.num_params)} parameters",
                      f"{spec.preprocessing.input_size} px", speed_text(speeds.get(spec.name)),
                      weights_text(statuses.get(spec.name, "download"), spec))
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(SPEED_TIP if column == 3 else spec.description)
                item.setData(Qt.ItemDataRole.UserRole, spec.name)
                self.setItem(row, column, item)
        self.blockSignals(False)
        self.select(selected)

    def select(self, name: str) -> None:
        """Select the row of backbone ``name`` (the first row when unknown)."""
        rows = [r for r, spec in enumerate(self.specs) if spec.name == name]
        if self.specs:
            self.selectRow(rows[0] if rows else 0)

    def update_cell(self, name: str, column: int, text: str) -> None:
        for row, spec in enumerate(self.specs):
            if spec.name == name:
                self.item(row, column).setText(text)

    def title_of(self, name: str) -> str:
        """The title a user reads for backbone ``name`` ("ResNet-18", not "resnet18")."""
        return next((spec.title for spec in self.specs if spec.name == name), name)

    def current_spec(self) -> BackboneSpec | None:
        rows = self.selectionModel().selectedRows()
        return self.specs[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        spec = self.current_spec()
        if spec is not None:
            self.backbone_selected.emit(spec.name)
