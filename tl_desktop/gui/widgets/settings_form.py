"""Training settings: good defaults in front (epochs, augmentation, device), the rest under Advanced."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.config import ModelConfig, TrainConfig
from tl_desktop.gui.widgets.common import Collapsible

AUGMENTATION_CHOICES = (("light", "Light (flips, small crops) — recommended"),
                        ("strong", "Strong (also colour and rotation) — for few images"),
                        ("none", "None"))
DEVICE_CHOICES = (("auto", "Automatic (graphics card if available)"), ("cpu", "Processor (CPU)"),
                  ("cuda", "NVIDIA graphics card (CUDA)"), ("mps", "Apple graphics (MPS)"))
DEVICE_TEXT = dict(DEVICE_CHOICES)
BALANCE_CHOICES = (("auto", "Automatic"), ("on", "On"), ("off", "Off"))
MAX_VIEWS = 16
VIEWS_TIP = ("How many randomly changed copies of each training image are prepared before training.\n"
             "While pretrained layers are frozen, they run once per copy instead of once per epoch,\n"
             "which makes training much faster. More copies = more variety = a more robust model,\n"
             "but preparing takes longer (8 copies take about 8× as long as 1). 4 is a good default.")


def _combo(choices: tuple[tuple[str, str], ...], tip: str) -> QComboBox:
    combo = QComboBox()
    for value, text in choices:
        combo.addItem(text, value)
    combo.setToolTip(tip)
    return combo


def _spin(low: int, high: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    return box


def _real(low: float, high: float, decimals: int, step: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setToolTip(tip)
    return box


class SettingsForm(QWidget):
    """Maps widgets to a TrainConfig (and the head's dropout) and back; ``changed`` when the user edits one."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.epochs = _spin(1, 500, "How many times training goes through all training images")
        self.augmentation = _combo(AUGMENTATION_CHOICES, "Random changes to training images so the "
                                   "model learns what matters, not where or how bright")
        self.device_box = _combo(DEVICE_CHOICES, "Where the computation runs")
        self.batch_size = _spin(1, 1024, "Images per training step")
        self.lr = _real(1e-6, 1.0, 5, 1e-4, "Learning rate while only the new head trains")
        self.finetune_lr = _real(1e-7, 1.0, 6, 1e-5, "Learning rate once pretrained blocks also train")
        self.head_epochs = _spin(0, 500, "Epochs at the start that train only the new head")
        self.patience = _spin(0, 100, "Stop when validation has not improved for this many epochs (0 = never)")
        self.balance = _combo(BALANCE_CHOICES, "Give rare classes more weight (automatic when classes "
                              "are clearly unbalanced)")
        self.smoothing = _real(0.0, 0.5, 2, 0.05, "Label smoothing: makes the model less over-confident")
        self.seed = _spin(0, 2**31 - 1, "Same seed and settings give the same result")
        self.views = _spin(1, MAX_VIEWS, VIEWS_TIP)
        self.views.setAccessibleName("Augmented copies prepared per image")
        self.views_hint = QLabel()
        self.views_hint.setStyleSheet("color: #555;")
        self.dropout_box = _real(0.0, 0.9, 2, 0.05, "Dropout before the new head")
        self.weight_decay = _real(0.0, 1.0, 4, 1e-3, "Weight decay (regularisation)")
        self.advanced = Collapsible("Advanced", self._advanced_body())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._front_rows())
        layout.addWidget(self.advanced)
        self._trainable_blocks: int | str = 0
        self._loading = False
        self.augmentation.currentIndexChanged.connect(self._update_views_hint)
        self.views.valueChanged.connect(self._update_views_hint)
        self.head_epochs.valueChanged.connect(self._update_views_hint)
        self.load(TrainConfig(), ModelConfig().dropout)
        for box in (self.epochs, self.batch_size, self.lr, self.finetune_lr, self.head_epochs, self.patience,
                    self.smoothing, self.seed, self.views, self.dropout_box, self.weight_decay):
            box.valueChanged.connect(self._on_edit)
        for combo in (self.augmentation, self.device_box, self.balance):
            combo.currentIndexChanged.connect(self._on_edit)

    def _front_rows(self) -> QFormLayout:
        """The settings most people change: epochs, augmentation, device, augmented copies."""
        views_row = QHBoxLayout()
        views_row.addWidget(self.views)
        views_row.addWidget(self.views_hint, 1)
        front = QFormLayout()
        front.addRow("&Epochs", self.epochs)
        front.addRow("&Augmentation", self.augmentation)
        front.addRow("&Device", self.device_box)
        views_label = QLabel("Augmented &copies per image")
        views_label.setBuddy(self.views)
        front.addRow(views_label, views_row)
        return front

    def _advanced_body(self) -> QWidget:
        """The rest, in two columns, behind the "Advanced" header."""
        advanced_body = QWidget()
        left, right = QFormLayout(), QFormLayout()
        for form, rows in ((left, (("Batch size", self.batch_size), ("Learning rate (head)", self.lr),
                                   ("Learning rate (fine-tuning)", self.finetune_lr),
                                   ("Head-only epochs first", self.head_epochs),
                                   ("Early stopping patience", self.patience))),
                           (right, (("Class balancing", self.balance), ("Label smoothing", self.smoothing),
                                    ("Seed", self.seed),
                                    ("Dropout", self.dropout_box), ("Weight decay", self.weight_decay)))):
            for text, widget in rows:
                form.addRow(text, widget)
        columns = QHBoxLayout(advanced_body)
        columns.setContentsMargins(16, 0, 0, 0)
        columns.addLayout(left)
        columns.addLayout(right)
        return advanced_body

    def _on_edit(self) -> None:
        if not self._loading:
            self.changed.emit()

    def set_trainable_blocks(self, value: int | str) -> None:
        """Follow the model page's choice: copies only matter while some pretrained blocks are frozen."""
        self._trainable_blocks = value
        self._update_views_hint()

    def _update_views_hint(self) -> None:
        """Explain the copies setting in words; it does nothing when augmentation is off or when every
        block trains from the first epoch."""
        augmenting = self.augmentation.currentData() != "none"
        frozen_part = self._trainable_blocks != "all" or self.head_epochs.value() > 0
        self.views.setEnabled(augmenting and frozen_part)
        if not augmenting:
            self.views_hint.setText("not used: augmentation is off, so each image is prepared once")
            return
        if not frozen_part:
            self.views_hint.setText("not used: every block trains from the first epoch, so each epoch "
                                    "augments the images afresh")
            return
        count = self.views.value()
        word = ("fastest, least varied" if count == 1 else "faster" if count < 4
                else "balanced" if count < 8 else "most robust, slowest to prepare")
        self.views_hint.setText(f"{word}   (1 = fastest … 8 = most robust)")

    def load(self, cfg: TrainConfig, dropout: float) -> None:
        """Show ``cfg`` and the head's ``dropout`` in the widgets (``changed`` is emitted once, at the end)."""
        self._loading = True
        try:
            self._show(cfg, dropout)
        finally:
            self._loading = False
        self._update_views_hint()
        self.changed.emit()

    def _show(self, cfg: TrainConfig, dropout: float) -> None:
        self.epochs.setValue(cfg.epochs)
        self._set_combo(self.augmentation, cfg.augmentation)
        self._set_combo(self.device_box, cfg.device)
        self.batch_size.setValue(cfg.batch_size)
        self.lr.setValue(cfg.lr)
        self.finetune_lr.setValue(cfg.finetune_lr)
        self.head_epochs.setValue(cfg.head_epochs)
        self.patience.setValue(cfg.early_stopping_patience)
        self._set_combo(self.balance, cfg.class_balance)
        self.smoothing.setValue(cfg.label_smoothing)
        self.seed.setValue(cfg.seed)
        self.views.setValue(cfg.cached_views)
        self.weight_decay.setValue(cfg.weight_decay)
        self.dropout_box.setValue(dropout)

    @staticmethod
    def _set_combo(combo: QComboBox, value: str) -> None:
        index = combo.findData(value)
        combo.setCurrentIndex(max(0, index))

    def device(self) -> str:
        return str(self.device_box.currentData())

    def dropout(self) -> float:
        return float(self.dropout_box.value())

    def train_config(self) -> TrainConfig:
        """The widgets as a TrainConfig (head epochs clipped to the epoch count)."""
        return TrainConfig(
            epochs=self.epochs.value(), head_epochs=min(self.head_epochs.value(), self.epochs.value()),
            batch_size=self.batch_size.value(), lr=self.lr.value(), finetune_lr=self.finetune_lr.value(),
            weight_decay=self.weight_decay.value(), label_smoothing=self.smoothing.value(),
            class_balance=str(self.balance.currentData()), augmentation=str(self.augmentation.currentData()),
            cached_views=self.views.value(), early_stopping_patience=self.patience.value(),
            seed=self.seed.value(), device=self.device())
