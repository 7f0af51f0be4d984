"""Cross-validation: k grouped, stratified folds of the images outside the test part, one run per fold.

Each fold trains with the run's settings on the other folds (minus a grouped validation part for
early stopping and the best epoch) and predicts its own held-out part, which nothing in that run saw:
those out-of-fold predictions are pooled into one honest estimate. The frozen part of the network
runs once for every image of the folds (the runs share one feature pool), not once per fold.

Both ``tl-desktop cv`` and the window call :func:`run_cross_validation`; a killed cross-validation goes
on with :func:`resume_cross_validation` (finished folds are kept, an interrupted one resumes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.config import ConfigError
from tl_desktop.engine.workflows.cv_folder import CVFolder, CVPlan

if TYPE_CHECKING:
    from tl_desktop.config import RunConfig
    from tl_desktop.engine.data.audit import Audit
    from tl_desktop.engine.data.dataset import DatasetSplit, Sample, ScanResult
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.runtime.stop import StopToken
    from tl_desktop.engine.training.callbacks import Callback

MIN_FOLDS, MAX_FOLDS = 2, 20


@dataclass(frozen=True)
class FoldStarted:
    """Fold ``index`` of ``total`` (counted from 1) starts training."""

    index: int
    total: int
    train: int
    val: int
    held_out: int


@dataclass(frozen=True)
class FoldEnded:
    """Fold ``index`` ended; ``figures`` are its held-out results on ``held_out`` images (empty and 0 when it
    did not complete). ``trained_now`` is False for a fold a resumed cross-validation kept from before."""

    index: int
    total: int
    status: str
    figures: dict[str, float | None] = field(default_factory=dict)
    held_out: int = 0
    trained_now: bool = True


@dataclass
class CVResult:
    """How a cross-validation ended: "completed", "stopped" or "failed" (then ``error`` says why)."""

    status: str
    folder: CVFolder
    summary: dict[str, Any] | None
    error: str | None = None


FoldEvent = FoldStarted | FoldEnded


def plan_cross_validation(config: RunConfig, scan: ScanResult, folds: int, final_model: bool = False) -> CVPlan:
    """Split the images outside the test part into ``folds`` grouped, stratified folds; each fold's
    training part gives up a grouped validation part (``config.data.val_fraction``)."""
    from tl_desktop.engine.data.dataset import DatasetSplit
    from tl_desktop.engine.data.folds import group_of, grouped_folds
    from tl_desktop.engine.data.scanning import DataError

    if not MIN_FOLDS <= folds <= MAX_FOLDS:
        raise ConfigError(f"--folds must be between {MIN_FOLDS} and {MAX_FOLDS}, got {folds}")
    data = scan.split
    pool = sorted([*data.train, *data.val], key=lambda s: s.path)
    seed = config.data.seed
    inner = max(2, round(1 / config.data.val_fraction)) if config.data.val_fraction > 0 else 0
    splits = []
    for trained, held_out in grouped_folds(pool, folds, seed):
        # The validation part is about val_fraction of the fold's training part, in whole groups.
        groups = len({group_of(s) for s in trained})
        if inner and groups < 2:
            raise DataError(f"a fold's training part holds a single group, so no validation part can be kept "
                            f"apart from it; use fewer than {folds} folds or more groups")
        if inner:
            train, val = grouped_folds(trained, min(inner, groups), seed)[0]
        else:
            train, val = trained, []
        splits.append(DatasetSplit(data.root, list(data.classes), train=train, val=val, test=held_out,
                                   layout="cv"))
    return CVPlan(config=config, data=data, folds=splits, final_model=final_model)


def run_cross_validation(
    config: RunConfig,
    scan: ScanResult,
    folds: int,
    callbacks: Callable[[int], Sequence[Callback]] = lambda index: (),
    on_fold: Callable[[FoldEvent], None] = lambda event: None,
    stop: StopToken | None = None,
    final_model: bool = False,
) -> CVResult:
    """Plan, create the CV folder under ``config.out_dir`` and run every fold (then the final model)."""
    plan = plan_cross_validation(config, scan, folds, final_model)
    folder = CVFolder.create(config.out_dir, config.model.backbone)
    folder.write_plan(plan, scan.audit)
    return _run(folder, plan, scan.audit, callbacks, on_fold, stop)


def resume_cross_validation(
    path: str | Path,
    callbacks: Callable[[int], Sequence[Callback]] = lambda index: (),
    on_fold: Callable[[FoldEvent], None] = lambda event: None,
    stop: StopToken | None = None,
) -> CVResult:
    """Go on with an interrupted cross-validation: finished folds are kept, an interrupted fold resumes
    from its last completed epoch, the others start."""
    folder = CVFolder(path)
    if not folder.is_cv():
        raise ConfigError(f"{folder.path} is not a cross-validation folder (it has no {folder.plan_file.name})")
    return _run(folder, folder.plan(), folder.audit(), callbacks, on_fold, stop)


def _run(folder: CVFolder, plan: CVPlan, audit: Audit, callbacks: Callable[[int], Sequence[Callback]],
         on_fold: Callable[[FoldEvent], None], stop: StopToken | None) -> CVResult:
    from tl_desktop.engine.runtime.stop import StopRequested, StopToken
    from tl_desktop.engine.workflows.cv_results import fold_predictions, write_results

    stop = stop or StopToken()
    pool = tuple(sorted([*plan.data.train, *plan.data.val], key=lambda s: s.path))
    done: dict[int, Predictions] = {}
    total = len(plan.folds)
    for index, split in enumerate(plan.folds, start=1):
        found = fold_predictions(folder.fold(index))
        trained_now = found is None
        if found is None:
            if stop.requested:
                return CVResult("stopped", folder, write_results(folder, plan, done))
            try:
                status, error = _train_fold(folder, plan, index, split, audit, pool, callbacks(index), on_fold, stop)
            except StopRequested:  # while the held-out fold was predicted
                status, error = "stopped", None
            found = fold_predictions(folder.fold(index)) if status == "completed" else None
            if found is None:
                on_fold(FoldEnded(index, total, status))
                return CVResult(status, folder, write_results(folder, plan, done), error)
        done[index] = found
        summary = write_results(folder, plan, done)
        row = summary["folds"][-1]
        on_fold(FoldEnded(index, total, "completed", row["figures"], row["held_out"], trained_now))
    if plan.final_model and not folder.final.is_complete():
        status, error = _train_final(folder, plan, audit, pool, callbacks(total + 1), stop)
        if status != "completed":
            return CVResult(status, folder, write_results(folder, plan, done), error)
    return CVResult("completed", folder, write_results(folder, plan, done))


def _train_fold(folder: CVFolder, plan: CVPlan, index: int, split: DatasetSplit, audit: Audit,
                pool: tuple[Sample, ...], callbacks: Sequence[Callback], on_fold: Callable[[FoldEvent], None],
                stop: StopToken) -> tuple[str, str | None]:
    """Train fold ``index`` (resuming it if it was interrupted) and evaluate its held-out part."""
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.training.trainer import Trainer
    from tl_desktop.engine.workflows.cv_results import evaluate_fold

    run = folder.fold(index)
    on_fold(FoldStarted(index, len(plan.folds), len(split.train), len(split.val), len(split.test)))
    resume = run.resume_file.is_file()
    if run.is_complete():
        status, error = "completed", None
    else:
        scan = None if resume else ScanResult(split=split, audit=fold_audit(audit, split, index, len(plan.folds)))
        trainer = Trainer(plan.config, scan=scan, callbacks=callbacks, stop=stop, run_dir=run.path, resume=resume,
                          feature_pool=pool)
        result = trainer.fit()
        status, error = result.status, _fit_error(run)
    if status == "completed":
        evaluate_fold(run, plan.config, stop)
    return status, error


def _train_final(folder: CVFolder, plan: CVPlan, audit: Audit, pool: tuple[Sample, ...],
                 callbacks: Sequence[Callback], stop: StopToken) -> tuple[str, str | None]:
    """The final model: trained on the data's own train/validation split (every image outside the test part)."""
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.training.trainer import Trainer

    run = folder.final
    resume = run.resume_file.is_file()
    scan = None if resume else ScanResult(split=plan.data, audit=audit)
    result = Trainer(plan.config, scan=scan, callbacks=callbacks, stop=stop, run_dir=run.path, resume=resume,
                     feature_pool=pool).fit()
    return result.status, _fit_error(run)


def fold_audit(audit: Audit, split: DatasetSplit, index: int, total: int) -> Audit:
    """The data audit with the counts of fold ``index``'s parts (its test part is the held-out fold)."""
    counts = {name: {"train": 0, "val": 0, "test": 0} for name in split.classes}
    for part in ("train", "val", "test"):
        for sample in getattr(split, part):
            counts[split.classes[sample.label]][part] += 1
    note = (f"Fold {index} of {total} of a cross-validation: its test part is the held-out fold, which this run "
            "never trained or validated on.")
    return dataclasses.replace(audit, counts=counts, layout="cv", warnings=[note, *audit.warnings])


def _fit_error(run: Any) -> str | None:
    from tl_desktop.engine.training.events import FitEnded

    ended = [e for e in run.events() if isinstance(e, FitEnded)]
    return ended[-1].error if ended else None
