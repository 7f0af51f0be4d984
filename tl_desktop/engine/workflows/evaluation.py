"""Evaluate a model on an external image folder and save the result; calibrate a run's model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tl_desktop.engine.evaluation import calibration
from tl_desktop.engine.evaluation.evaluate import (
    EvaluationError,
    Predictions,
    evaluate_folder,
    evaluate_run,
)
from tl_desktop.engine.evaluation.files import save_evaluation
from tl_desktop.engine.evaluation.metrics import Metrics
from tl_desktop.engine.models.bundle import load_bundle, update_bundle_meta
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.runfolder import RunFolder, model_file_of

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExternalEvaluation:
    """An external folder's predictions and metrics, and the files they were saved to."""

    predictions: Predictions
    metrics: Metrics
    out_dir: Path
    files: list[Path]


def default_external_dir(model: str | Path, folder: str | Path) -> Path:
    """Where an external evaluation goes without ``out_dir``: the model's run folder, else ``./evaluation``."""
    return (RunFolder.containing(model) or RunFolder(Path.cwd())).external_evaluation_dir(folder)


def evaluate_external(model: str | Path, folder: str | Path, out_dir: str | Path | None = None,
                      device: str | torch.device = "cpu", progress: Progress | None = None,
                      stop: StopToken | None = None, **metric_options: Any) -> ExternalEvaluation:
    """Evaluate a model file or run on every image of ``folder`` and save the result.

    The files go to ``out_dir``, by default into the model's run folder (where the report finds them),
    or under ``./evaluation`` for a model file outside a run folder.
    """
    model_file = model_file_of(model)
    predictions, metrics = evaluate_folder(load_bundle(model_file, device=device), folder, progress=progress,
                                           stop=stop, **metric_options)
    target = Path(out_dir) if out_dir is not None else default_external_dir(model_file, folder)
    source = {"kind": "external", "folder": str(Path(folder).resolve()), "model": str(model_file.resolve())}
    return ExternalEvaluation(predictions, metrics, target, save_evaluation(target, predictions, metrics, source))


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling fitted on a run's validation split and stored in its model file."""

    model_file: Path
    temperature: float
    previous_temperature: float
    val_nll_before: float | None
    val_nll_after: float | None
    val_ece_before: float | None
    val_ece_after: float | None


def calibrate_run(run_dir: str | Path, progress: Progress | None = None,
                  stop: StopToken | None = None) -> Calibration:
    """Fit temperature scaling on the run's validation split and store it in the run's model file.

    The validation probabilities already include the stored temperature, so the fitted factor
    multiplies it: the new temperature is the stored one times the factor.
    """
    run = RunFolder.containing(run_dir)
    if run is None:
        raise EvaluationError(f"{run_dir} is not a finished run folder; calibration needs the run's validation "
                              "images")
    model_file = model_file_of(run.path)
    predictions, _ = evaluate_run(run.path, "val", progress=progress, stop=stop, n_bootstrap=0)
    previous = float(load_bundle(model_file).meta.temperature)
    factor = calibration.fit_temperature(predictions.probs, predictions.labels, stored=previous)
    scaled = calibration.apply_temperature(predictions.probs, factor)
    result = Calibration(
        model_file=model_file, temperature=previous * factor, previous_temperature=previous,
        val_nll_before=calibration.log_loss(predictions.probs, predictions.labels),
        val_nll_after=calibration.log_loss(scaled, predictions.labels),
        val_ece_before=calibration.expected_calibration_error(predictions.probs, predictions.labels),
        val_ece_after=calibration.expected_calibration_error(scaled, predictions.labels),
    )
    update_bundle_meta(model_file, temperature=result.temperature)
    return result


def undo_calibration(run_dir: str | Path, temperature: float = 1.0) -> float:
    """Store ``temperature`` back in a run's model file: the one it had before calibrating (1: never
    calibrated). Returns the temperature it replaced."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise EvaluationError(f"a temperature must be a positive number, got {temperature}")
    run = RunFolder.containing(run_dir)
    if run is None:
        raise EvaluationError(f"{run_dir} is not a finished run folder")
    replaced = stored_temperature(run.path)
    update_bundle_meta(model_file_of(run.path), temperature=float(temperature))
    return replaced


def stored_temperature(run_dir: str | Path) -> float:
    """The temperature a run's model file holds now (1: not calibrated)."""
    from tl_desktop.engine.models.bundle import read_bundle

    return float(read_bundle(model_file_of(run_dir))[0].temperature)
