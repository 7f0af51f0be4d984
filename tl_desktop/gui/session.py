"""What the pages share: the current project, configuration, scan, run and loaded model, with change signals.

Pages read from the session and write their part of the configuration back through
:meth:`Session.set_config`; they never talk to each other directly. Every heavy object (scan result,
fit result, the list of backbones) is produced by a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSettings, Signal

from tl_desktop.config import RunConfig
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.stored_config import load_config, save_config

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.engine.models.specs import BackboneSpec
    from tl_desktop.engine.training.trainer import FitResult
    from tl_desktop.engine.workflows.project import Project


@dataclass(frozen=True)
class Catalogue:
    """The registered backbones and where each one's weights are ("bundled", "cached" or "download")."""

    specs: tuple[BackboneSpec, ...]
    weights: Mapping[str, str]

    def spec(self, name: str) -> BackboneSpec | None:
        return next((spec for spec in self.specs if spec.name == name), None)

    def title(self, name: str) -> str:
        """The backbone's title for people ("Tiny CNN (tests)"), or its name when it is unknown."""
        spec = self.spec(name)
        return spec.title if spec is not None else name


class Session(QObject):
    """Shared state of the window."""

    project_changed = Signal()
    scan_changed = Signal()
    config_changed = Signal()
    catalogue_wanted = Signal()
    catalogue_changed = Signal()
    run_changed = Signal()
    evaluation_changed = Signal()
    marks_changed = Signal()  # the open project's marked images (overrides.csv) changed
    training_state_changed = Signal(bool)
    resume_requested = Signal(object)  # a run folder (Path) the user wants to go on training

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._config = load_config(settings)
        self.project: Project | None = None
        self.catalogue: Catalogue | None = None
        self.scan: ScanResult | None = None
        self.run_dir: Path | None = None
        self.fit_result: FitResult | None = None
        self.evaluations: dict[str, tuple[Predictions, Metrics]] = {}
        self.shown_split = "val"  # the split the Results page shows; Export computes its metrics on the same
        self.training = False

    @property
    def config(self) -> RunConfig:
        """The configuration of the next run, as the pages show it (change it with :meth:`set_config`)."""
        return self._config

    def set_config(self, config: RunConfig) -> None:
        """A page changed its part of the configuration."""
        if config != self._config:
            self._config = config
            self.config_changed.emit()

    def save_config(self) -> str:
        """Remember the configuration for the next start (training starts, the window closes), in the open
        project too; returns what could not be saved ("" when all went well)."""
        from tl_desktop.engine.workflows.project import ProjectError, update_project

        save_config(self.settings, self._config)
        if self.project is None:
            return ""
        try:
            self.project = update_project(self.project, self._config)
        except ProjectError as exc:
            return str(exc)
        return ""

    def set_project(self, project: Project | None) -> None:
        """``project`` becomes the open one (its settings are set with :meth:`set_config`)."""
        self.project = project
        self.project_changed.emit()

    def want_catalogue(self) -> None:
        """A page needs the list of backbones: ask for it to be loaded if nobody did yet."""
        if self.catalogue is None:
            self.catalogue_wanted.emit()

    def set_catalogue(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.catalogue_changed.emit()

    def set_scan(self, scan: ScanResult | None) -> None:
        """A new dataset scan replaces the old one (None: a project opened without its images)."""
        self.scan = scan
        self.scan_changed.emit()

    def set_run(self, run_dir: Path | None, fit_result: FitResult | None = None) -> None:
        """A finished (or loaded) run becomes the current one; its old evaluations are dropped."""
        self.run_dir = run_dir
        self.fit_result = fit_result
        self.evaluations = {}
        self.run_changed.emit()

    def set_evaluation(self, split: str, predictions: Predictions, metrics: Metrics) -> None:
        """Store the evaluation of the current run on one split."""
        self.evaluations[split] = (predictions, metrics)
        self.evaluation_changed.emit()

    def request_resume(self, run_dir: Path) -> None:
        """The user asked to go on training ``run_dir`` from its resume point (the Train page does it)."""
        self.resume_requested.emit(Path(run_dir))

    def set_training(self, running: bool) -> None:
        self.training = running
        self.training_state_changed.emit(running)

    def model_path(self) -> Path | None:
        """The current run's exported model file, when it exists."""
        if self.run_dir is None:
            return None
        run = RunFolder(self.run_dir)
        return run.model_file if run.is_complete() else None

    def remember(self, key: str, value: Any) -> None:
        self.settings.setValue(key, value)

    def recall(self, key: str, default: Any = None) -> Any:
        value = self.settings.value(key, default)
        return default if value is None else value
