"""Step 2 — Model: pick a pretrained backbone, how much of it trains, and the training settings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from tl_desktop.config import ModelConfig, RunConfig, TrainableBlocks
from tl_desktop.engine.caching.store import CacheInfo, human_size
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.session import Catalogue, Session
from tl_desktop.gui.widgets import cache_dialog
from tl_desktop.gui.widgets.backbone_table import (
    BackboneTable,
    speed_text,
    weights_text,
)
from tl_desktop.gui.widgets.common import heading, hint
from tl_desktop.gui.widgets.freeze_view import FreezeControl
from tl_desktop.gui.widgets.settings_form import SettingsForm
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from tl_desktop.engine.models.backbones import FreezeSummary
    from tl_desktop.engine.models.specs import BackboneSpec

SPEED_COLUMN, WEIGHTS_COLUMN = 3, 4
WEIGHT_FILE_FILTER = "Weight files (*.safetensors *.pth *.pt *.bin);;All files (*)"


def load_backbone_list(ctx: TaskContext) -> tuple[list[BackboneSpec], dict[str, str]]:
    """The registered backbones and where their weights are (worker thread: imports torch)."""
    from tl_desktop.engine.models.backbones import list_backbones
    from tl_desktop.engine.models.weights import weights_status

    specs = list_backbones()
    return specs, {spec.name: weights_status(spec) for spec in specs}


def measure_speed(name: str, device: str, ctx: TaskContext, batch: int = 8, repeats: int = 3) -> float:
    """Images per second of one backbone's forward pass on ``device`` (random weights, random input)."""
    import torch

    from tl_desktop.engine.models.backbones import create_model, get_backbone_spec
    from tl_desktop.engine.runtime.device import pick_device

    spec = get_backbone_spec(name)
    dev = pick_device(device)
    model = create_model(name, num_classes=2, pretrained=False).to(dev).eval()
    size = spec.preprocessing.input_size
    x = torch.randn(batch, 3, size, size, device=dev)
    with torch.inference_mode():
        model(x)
        ctx.stop.raise_if_requested()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
            ctx.stop.raise_if_requested()
    return batch * repeats / (time.perf_counter() - start)


def measure_speeds(names: list[str], device: str, ctx: TaskContext) -> None:
    """Measure each backbone in turn, sending ``(name, images per second)`` as it finishes."""
    ctx.progress(0, len(names))
    for index, name in enumerate(names, start=1):
        ctx.emit((name, measure_speed(name, device, ctx)))
        ctx.progress(index, len(names))


class ModelPage(Page):
    """Backbone table, weights, freezing and settings."""

    step = Step.MODEL
    title = "Model"
    step_hint = "pretrained model"
    hint = "Pick a pretrained model, how much of it to train, and the training settings."

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.table = BackboneTable()
        self.table.backbone_selected.connect(self._on_backbone)
        self.description = QLabel("Loading the list of models…")
        self.description.setWordWrap(True)
        self.download_button = QPushButton("Download weights")
        self.download_button.clicked.connect(self.download_weights)
        self.file_button = QPushButton("Load weights from file…")
        self.file_button.setToolTip("For computers without internet: use a weights file copied from elsewhere")
        self.file_button.clicked.connect(self.load_weights_file)
        self.speed_button = QPushButton("Measure speed")
        self.speed_button.setToolTip("Time every model on this computer, the selected one first "
                                     "(a few seconds each; Cancel keeps what is measured)")
        self.speed_button.clicked.connect(lambda: self.measure_speeds())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.stop_tasks())
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.clear_button = QPushButton("Clear cache…")
        self.clear_button.setToolTip("See how much disk space prepared training data and downloaded "
                                     "weights use, and free it")
        self.clear_button.clicked.connect(self.clear_cache)
        buttons = QHBoxLayout()
        for widget in (self.download_button, self.file_button, self.speed_button, self.progress,
                       self.cancel_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)

        self.freeze = FreezeControl()
        self.freeze.changed.connect(self._count_params)
        self.settings_form = SettingsForm()
        self.settings_form.load(session.config.train, session.config.model.dropout)
        self.freeze.changed.connect(self.settings_form.set_trainable_blocks)

        layout = QVBoxLayout(self)
        layout.addWidget(heading("2. Choose a pretrained model"))
        layout.addWidget(hint("Smaller models train faster; larger ones can be more accurate. "
                              "The speed column is measured on this computer."))
        layout.addWidget(self.table, 2)
        layout.addWidget(self.description)
        layout.addLayout(buttons)
        layout.addWidget(heading("How much of the model to train"))
        layout.addWidget(self.freeze)
        layout.addWidget(heading("Training settings"))
        layout.addWidget(self.settings_form)
        layout.addStretch(0)
        self._loaded = False
        self._statuses: dict[str, str] = {}
        self._weights_files: dict[str, str] = {}
        self._param_cache: dict[tuple[str, TrainableBlocks], FreezeSummary] = {}
        self.freeze.changed.connect(self._publish)
        self.settings_form.changed.connect(self._publish)
        session.catalogue_wanted.connect(self.load_catalogue)
        self._publish()

    def on_shown(self) -> None:
        self.load_catalogue()

    def load_catalogue(self) -> None:
        """Load the list of backbones in the background unless it is there or on its way."""
        if not self._loaded and not self.busy("list"):
            self.run_task(load_backbone_list, "list", on_success=self._show_backbones,
                          error_title="Could not list the pretrained models.",
                          error_hint="The installation may be incomplete; reinstall tl-desktop.")

    def _show_backbones(self, result: tuple[list[BackboneSpec], dict[str, str]]) -> None:
        specs, self._statuses = result
        self._loaded = True
        speeds = {spec.name: self._stored_speed(spec.name) for spec in specs}
        self.table.set_backbones(specs, self._statuses, speeds, self.session.config.model.backbone)
        self._publish_catalogue()
        self._publish()

    def _publish(self) -> None:
        """Write this page's part of the configuration (model and training settings) to the session."""
        self.session.set_config(self.run_config())

    def _publish_catalogue(self) -> None:
        self.session.set_catalogue(Catalogue(tuple(self.table.specs), dict(self._statuses)))

    def _stored_speed(self, name: str) -> float | None:
        value = self.session.recall(f"speed/{self.settings_form.device()}/{name}")
        return float(value) if value is not None else None

    def current_backbone(self) -> str:
        spec = self.table.current_spec()
        return spec.name if spec is not None else self.session.config.model.backbone

    def _on_backbone(self, name: str) -> None:
        spec = self.table.current_spec()
        status = self._statuses.get(name, "download")
        where = weights_text(status, spec)
        self.description.setText(f"<b>{spec.title}</b> — {spec.description} "
                                 f"<br>Pretrained weights: {where.lower()}; licence: {spec.license}.")
        self.download_button.setVisible(status == "download" and name not in self._weights_files)
        saved = self.session.recall(f"model/trainable_blocks/{name}", self.session.config.model.trainable_blocks)
        self.freeze.set_blocks(spec.block_names, saved if saved == "all" else int(saved))
        self._publish()

    def _count_params(self, value: TrainableBlocks) -> None:
        name = self.current_backbone()
        self.session.remember(f"model/trainable_blocks/{name}", value)
        key = (name, value)
        if key in self._param_cache:
            self.freeze.show_summary(self._param_cache[key])
            return

        def count(ctx: TaskContext) -> FreezeSummary:
            from tl_desktop.engine.models.backbones import count_trainable_params

            return count_trainable_params(name, value)

        def done(summary: FreezeSummary) -> None:
            self._param_cache[key] = summary
            if (self.current_backbone(), self.freeze.value()) == key:
                self.freeze.show_summary(summary)

        self.run_task(count, "count", on_success=done, error_title="Could not count the parameters.")

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        for button in (self.download_button, self.file_button, self.speed_button):
            button.setEnabled(not busy)
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)

    def download_weights(self) -> None:
        """Download the selected backbone's weights with progress; Cancel stops it."""
        spec = self.table.current_spec()
        if spec is None:
            return

        def download(ctx: TaskContext) -> object:
            from tl_desktop.engine.models.weights import resolve_weights

            return resolve_weights(spec, progress=ctx.progress, stop=ctx.stop)

        def progress(done: int, total: int) -> None:
            if total > 0:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * done / total))
                self.progress.setFormat(f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")
            else:  # the server did not say how large the file is
                self.progress.setRange(0, 0)
                self.progress.setFormat(f"{done / 1e6:.1f} MB")

        self._set_busy(True, "Connecting…")
        self.status.emit(f"Downloading weights for {spec.title}…")
        self.run_task(download, "download", on_success=lambda _: self._weights_ready(spec.name, "cached"),
                      on_progress=progress, on_done=lambda: self._set_busy(False),
                      error_title=f"The weights for {spec.title} could not be downloaded.",
                      error_hint="Check the internet connection, or copy the weights file from another "
                                 "computer and use “Load weights from file…”.")

    def load_weights_file(self) -> None:
        """Use a weights file from disk for the selected backbone (checked in the background)."""
        spec = self.table.current_spec()
        if spec is None:
            return
        start = str(self.session.recall("folders/weights", ""))
        path, _ = QFileDialog.getOpenFileName(self, f"Weights for {spec.title}", start, WEIGHT_FILE_FILTER)
        if path:
            self.use_weights_file(spec, path)

    def use_weights_file(self, spec: BackboneSpec, path: str) -> None:
        """Check ``path`` holds weights for ``spec`` and remember it for training."""

        def check(ctx: TaskContext) -> None:
            from tl_desktop.engine.models.backbones import check_weights_file

            check_weights_file(spec.name, path)

        self.session.remember("folders/weights", path)
        self._set_busy(True, "Checking the file…")
        self.run_task(check, "weights-file", on_success=lambda _: self._file_ready(spec.name, path),
                      on_done=lambda: self._set_busy(False),
                      error_title=f"This file cannot be used as weights for {spec.title}.",
                      error_hint="Choose the weights file made for this model (its name is usually "
                                 f"{spec.weights_filename}).")

    def _file_ready(self, name: str, path: str) -> None:
        self._weights_files[name] = path
        self._weights_ready(name, "file")
        self._publish()

    def _weights_ready(self, name: str, status: str) -> None:
        self._statuses[name] = "cached" if status == "cached" else self._statuses.get(name, "download")
        text = "From your file" if status == "file" else "On this computer"
        self.table.update_cell(name, WEIGHTS_COLUMN, text)
        self.download_button.hide()
        self._publish_catalogue()
        self.status.emit(f"Weights ready for {self.table.title_of(name)}.")

    def clear_cache(self) -> None:
        """Show what the cache holds (read in the background), then clear it if the user confirms."""
        if self.session.training:
            self.show_error("The cache is in use by the training that is running.",
                            "Wait for it to finish or stop it on the Train page, then clear the cache.")
            return
        self.clear_button.setEnabled(False)
        self.run_task(cache_dialog.read_cache_info, "cache-info", on_success=self._confirm_clear,
                      on_done=lambda: self.clear_button.setEnabled(not self.busy("cache-clear")),
                      error_title="Could not read the cache folder.",
                      error_hint="Check that the folder exists and that you may read it.")

    def _confirm_clear(self, info: CacheInfo) -> None:
        confirmed, include_weights = cache_dialog.confirm_clear(self, info)
        if not confirmed or self.session.training:
            return
        self.clear_button.setEnabled(False)
        self.status.emit("Clearing the cache…")
        self.run_task(lambda ctx: cache_dialog.clear_cache(include_weights, ctx), "cache-clear",
                      on_success=lambda freed: self._cache_cleared(freed, include_weights),
                      on_done=lambda: self.clear_button.setEnabled(True),
                      error_title="The cache could not be cleared completely.",
                      error_hint="Close other copies of tl-desktop that may be using it, then try again.")

    def _cache_cleared(self, freed: int, include_weights: bool) -> None:
        self.status.emit(f"Cache cleared: {human_size(freed)} freed.")
        if include_weights and self._loaded:
            self._loaded = False
            self.load_catalogue()

    def measure_speeds(self, names: list[str] | None = None) -> None:
        """Time backbones (all by default, the selected one first) on the chosen device."""
        selected = self.current_backbone()
        if names is None:
            names = [selected] + [spec.name for spec in self.table.specs if spec.name != selected]
        device = self.settings_form.device()

        def progress(done: int, total: int) -> None:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"Measured {done} of {total}")

        self._set_busy(True, "Measuring…")
        self.run_task(lambda ctx: measure_speeds(names, device, ctx), "speed",
                      on_event=lambda result: self._speed_measured(*result, device=device),
                      on_progress=progress, on_done=lambda: self._set_busy(False),
                      error_title="Could not measure the speed.",
                      error_hint="Try the CPU device in the training settings.")

    def _speed_measured(self, name: str, speed: float, device: str) -> None:
        self.session.remember(f"speed/{device}/{name}", speed)
        self.table.update_cell(name, SPEED_COLUMN, speed_text(speed))

    def run_config(self) -> RunConfig:
        """The full RunConfig from the data section in the session and this page's settings."""
        name = self.current_backbone()
        model = ModelConfig(backbone=name, trainable_blocks=self.freeze.value() if self._loaded
                            else self.session.config.model.trainable_blocks,
                            dropout=self.settings_form.dropout(), weights_file=self._weights_files.get(name))
        return self.session.config.replace(model=model, train=self.settings_form.train_config())
