"""The report of a cross-validation folder: how the folds were made, the fold table, the figures across
folds and the pooled out-of-fold results; the same HTML and PDF writers as a run's report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tl_desktop.engine.data.groups import COPY_PREFIX
from tl_desktop.engine.evaluation.evaluate import EvaluationError, compute_metrics
from tl_desktop.engine.evaluation.folds import INTERVAL_NOTE, AcrossFolds, figure_label
from tl_desktop.engine.evaluation.formatting import fmt, is_percent
from tl_desktop.engine.workflows.cv_folder import CVFolder, CVPlan
from tl_desktop.engine.workflows.cv_results import fold_predictions, pooled
from tl_desktop.report.blocks import Para, Section, Table
from tl_desktop.report.build import REPORT_DIR, ReportFiles, write_files
from tl_desktop.report.data import EvaluationSection
from tl_desktop.report.fonts import choose_fonts, drawing_with
from tl_desktop.report.sections import evaluation_blocks, headline_table


def build_cv_report(path: str | Path, out_dir: str | Path | None = None, n_bootstrap: int = 1000,
                    seed: int = 0) -> ReportFiles:
    """Write ``report.html`` and ``report.pdf`` for the cross-validation folder ``path``."""
    folder = CVFolder(path)
    plan = folder.plan()
    summary = folder.summary()
    done = {i: p for i in range(1, len(plan.folds) + 1) if (p := fold_predictions(folder.fold(i))) is not None}
    joined = pooled(done)
    if summary is None or joined is None:
        raise EvaluationError(f"{folder.path} has no finished fold yet: nothing to report")
    oof = EvaluationSection("oof", "Out-of-fold predictions", f"the {len(joined[0]):,} images of {len(done)} folds, "
                            "each predicted by the model that never saw it", joined[0],
                            compute_metrics(joined[0], n_bootstrap=n_bootstrap, seed=seed))
    fonts = choose_fonts(plan.data.classes)
    with drawing_with(fonts):
        return _write(folder, plan, summary, oof, out_dir, fonts.missing)


def _write(folder: CVFolder, plan: CVPlan, summary: Any, oof: EvaluationSection, out_dir: str | Path | None,
           missing_glyphs: str) -> ReportFiles:
    sections = [
        Section("cv", "Cross-validation", "how the folds were made, each fold, the figures across folds",
                _cv_blocks(plan, summary, oof.metrics.groups)),
        Section("cv-oof", "Results: pooled out-of-fold predictions", "metrics with 95% intervals",
                [headline_table([oof]), *evaluation_blocks(oof)]),
    ]
    title = f"Cross-validation report: {len(plan.data.classes)} classes, {plan.config.model.backbone}"
    out = Path(out_dir) if out_dir is not None else folder.path / REPORT_DIR
    return write_files(out, title, f"{folder.name} · generated {datetime.now():%Y-%m-%d %H:%M}", sections,
                       missing_glyphs)


def _cv_blocks(plan: CVPlan, summary: dict[str, Any], oof_groups: int | None) -> list[Any]:
    cfg = plan.config
    # Identical copies share a group of their own; only groups the user's data named make the folds grouped.
    grouped = any(s.group and not s.group.startswith(COPY_PREFIX) for fold in plan.folds for s in fold.test)
    method = (f"{len(plan.folds)} folds, stratified by class{' and grouped (every group wholly in one fold)' if grouped else ''}"
              f", seed {cfg.data.seed}. Each fold's model trained on the other folds less a validation part "
              f"({cfg.data.val_fraction:.0%}, used for the best epoch) and predicted its own fold, which it never saw. "
              f"Backbone {cfg.model.backbone}, trainable blocks {cfg.model.trainable_blocks}, {cfg.train.epochs} epochs.")
    blocks: list[Any] = [Para(method)]
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
