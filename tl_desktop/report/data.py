"""The facts of one run that a report is built from (filled by :mod:`content`, read by the writers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tl_desktop.config import RunConfig
from tl_desktop.engine.evaluation.evaluate import Predictions
from tl_desktop.engine.evaluation.metrics import Metrics
from tl_desktop.engine.training.events import (
    EpochEnded,
    FitEnded,
    FitStarted,
    PhaseStarted,
)
from tl_desktop.engine.workflows.cv_folder import CVFolder, CVPlan


@dataclass
class EvaluationSection:
    """One evaluated image set: the run's validation or test split, or an external folder."""

    key: str
    title: str
    description: str
    predictions: Predictions
    metrics: Metrics

    @property
    def external(self) -> bool:
        return self.key.startswith("external")


@dataclass
class MistakeImage:
    """A misclassified image with its saliency overlay (for the predicted class)."""

    source: str
    path: str
    true_class: str
    predicted_class: str
    confidence: float
    image: Image.Image
    overlay: Image.Image


@dataclass(frozen=True)
class CVEstimate:
    """A cross-validation's plan, saved summary and pooled out-of-fold results."""

    folder: CVFolder
    plan: CVPlan
    summary: dict[str, Any]
    oof: EvaluationSection


@dataclass
class ReportData:
    """The facts of one run, ready for the HTML and PDF writers."""

    run_dir: Path
    run_name: str
    generated: str
    config: RunConfig
    meta: Any
    audit: Any
    history: list[EpochEnded]
    phases: list[PhaseStarted]
    started: FitStarted | None
    ended: FitEnded | None
    evaluations: list[EvaluationSection]
    mistakes: list[MistakeImage]
    mistakes_source: str
    model_card: str
    backbone_title: str = ""
    num_blocks: int | None = None
    notes: list[str] = field(default_factory=list)
    cross_validation: CVEstimate | None = None  # for the final model a cross-validation trained afterwards

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    def internal(self) -> list[EvaluationSection]:
        return [e for e in self.evaluations if not e.external]

    def external(self) -> list[EvaluationSection]:
        return [e for e in self.evaluations if e.external]
