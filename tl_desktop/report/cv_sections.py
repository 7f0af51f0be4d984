"""What a report says about a cross-validation: how the folds were made, each fold, the figures across folds
and the pooled out-of-fold results — in the cross-validation's own report, and in the report of the final
model a cross-validation trained afterwards (its ``final/`` run), where those figures are the estimate to quote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tl_desktop.engine.data.groups import COPY_PREFIX
from tl_desktop.engine.evaluation.evaluate import EvaluationError, compute_metrics
from tl_desktop.engine.evaluation.folds import INTERVAL_NOTE, AcrossFolds, figure_label
from tl_desktop.engine.evaluation.formatting import fmt, is_percent
from tl_desktop.engine.models.backbones import backbone_title
from tl_desktop.engine.workflows.cv_folder import CVFolder
from tl_desktop.engine.workflows.cv_results import fold_predictions, pooled
from tl_desktop.report.blocks import Para, Section, Table
from tl_desktop.report.data import CVEstimate, EvaluationSection
from tl_desktop.report.sections import headline_table


def cv_estimate(folder: CVFolder, n_bootstrap: int = 1000, seed: int = 0) -> CVEstimate:
    """Read ``folder`` and compute its pooled out-of-fold metrics (EvaluationError before any fold ended)."""
    plan = folder.plan()
    summary = folder.summary()
    done = {i: p for i in range(1, len(plan.folds) + 1) if (p := fold_predictions(folder.fold(i))) is not None}
    joined = pooled(done)
    if summary is None or joined is None:
        raise EvaluationError(f"{folder.path} has no finished fold yet: nothing to report")
    oof = EvaluationSection("oof", "Out-of-fold predictions", f"the {len(joined[0]):,} images of {len(done)} folds, "
                            "each predicted by the model that never saw it", joined[0],
                            compute_metrics(joined[0], n_bootstrap=n_bootstrap, seed=seed))
    return CVEstimate(folder, plan, summary, oof)


def final_model_estimate(run_dir: str | Path, n_bootstrap: int = 1000, seed: int = 0) -> CVEstimate | None:
    """The cross-validation behind ``run_dir`` when it is the final model a cross-validation trained, else None
    (also None when that cross-validation cannot be read or has no finished fold)."""
    from tl_desktop.config import ConfigError

    run_dir = Path(run_dir)
    folder = CVFolder(run_dir.parent)
    if run_dir.name != folder.final.path.name or not folder.is_cv():
        return None
    try:
        return cv_estimate(folder, n_bootstrap, seed)
    except (ConfigError, EvaluationError):
        return None


def final_model_section(estimate: CVEstimate) -> Section:
    """The final model's report section on the cross-validation that preceded it."""
    folds = len(estimate.plan.folds)
    intro = Para(f"This model was trained on every image outside the test part after a cross-validation "
                 f"with {folds} folds of the same settings ({estimate.folder.name}). Its validation images also "
                 "chose its best epoch, so the figure to quote for how these settings do on images a model never "
                 "saw is the cross-validation's pooled out-of-fold result below (each image predicted by the "
                 "fold model that did not train on it); the test part, where there is one, was kept out of every "
                 "fold and of this model's training.")
    return Section("cv-estimate", "Cross-validation of these settings",
                   "the pooled out-of-fold estimate, each fold and the figures across folds",
                   [intro, headline_table([estimate.oof]), *method_blocks(estimate)])


def method_blocks(estimate: CVEstimate) -> list[Any]:
    """How the folds were made, the fold table and the figures across folds."""
    plan, summary, cfg = estimate.plan, estimate.summary, estimate.plan.config
    # Identical copies share a group of their own; only groups the user's data named make the folds grouped.
    grouped = any(s.group and not s.group.startswith(COPY_PREFIX) for fold in plan.folds for s in fold.test)
    method = (f"{len(plan.folds)} folds, stratified by class{' and grouped (every group wholly in one fold)' if grouped else ''}"
              f", seed {cfg.data.seed}. Each fold's model trained on the other folds less a validation part "
              f"({cfg.data.val_fraction:.0%}, used for the best epoch) and predicted its own fold, which it never saw. "
              f"Backbone {backbone_title(cfg.model.backbone)}, trainable blocks {cfg.model.trainable_blocks}, {cfg.train.epochs} epochs.")
    blocks: list[Any] = [Para(method)]
    oof_groups = estimate.oof.metrics.groups
    if grouped and oof_groups:
        blocks.append(Para(f"Images of one group resemble each other, so the intervals of the pooled out-of-fold "
                           f"results account for the {oof_groups:,} groups: a cluster bootstrap drawing whole groups, "
                           f"Wilson intervals on the design-effect-corrected number of images and Obuchowski's "
                           f"clustered AUC variance (the methods are under the results)."))
    if summary.get("folds_done", 0) < summary.get("folds_planned", 0):
        blocks.append(Para(f"Only {summary['folds_done']} of {summary['folds_planned']} folds finished; the figures "
                           "below cover those folds alone."))
    if summary.get("test_images_held_out"):
        blocks.append(Para(f"{summary['test_images_held_out']:,} test images were kept out of every fold."))
    names = ["accuracy", "balanced_accuracy", "macro_auc"]
    blocks.append(Table(["Fold", "Train", "Validation", "Held out", *(figure_label(n) for n in names)],
                        [[str(r["fold"]), str(r["train"]), str(r["val"]), str(r["held_out"]),
                          *(fmt(r["figures"].get(n), is_percent(n)) for n in names)] for r in summary["folds"]],
                        "Each fold's figures on its own held-out images."))
    rows = []
    for name, raw in summary.get("across_folds", {}).items():
        found, pct = AcrossFolds.from_dict(raw), is_percent(name)
        interval = "—" if found.low is None else f"{fmt(found.low, pct)} to {fmt(found.high, pct)}"
        rows.append([figure_label(name), fmt(found.mean, pct), "—" if found.sd is None else fmt(found.sd, pct),
                     interval, str(found.folds)])
    blocks.append(Table(["Figure", "Mean", "SD", "95% interval across folds", "Folds"], rows, INTERVAL_NOTE))
    return blocks
