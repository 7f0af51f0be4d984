"""The report of a cross-validation folder: how the folds were made, the fold table, the figures across
folds and the pooled out-of-fold results; the same HTML and PDF writers as a run's report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tl_desktop.engine.models.backbones import backbone_title
from tl_desktop.engine.workflows.cv_folder import CVFolder
from tl_desktop.report.blocks import Section
from tl_desktop.report.build import REPORT_DIR, ReportFiles, write_files
from tl_desktop.report.cv_sections import cv_estimate, method_blocks
from tl_desktop.report.data import CVEstimate
from tl_desktop.report.fonts import choose_fonts, drawing_with
from tl_desktop.report.sections import evaluation_blocks, headline_table


def build_cv_report(path: str | Path, out_dir: str | Path | None = None, n_bootstrap: int = 1000,
                    seed: int = 0) -> ReportFiles:
    """Write ``report.html`` and ``report.pdf`` for the cross-validation folder ``path``."""
    estimate = cv_estimate(CVFolder(path), n_bootstrap, seed)
    fonts = choose_fonts(estimate.plan.data.classes)
    with drawing_with(fonts):
        return _write(estimate, out_dir, fonts.missing)


def _write(estimate: CVEstimate, out_dir: str | Path | None, missing_glyphs: str) -> ReportFiles:
    folder, plan, oof = estimate.folder, estimate.plan, estimate.oof
    sections = [
        Section("cv", "Cross-validation", "how the folds were made, each fold, the figures across folds",
                method_blocks(estimate)),
        Section("cv-oof", "Results: pooled out-of-fold predictions", "metrics with 95% intervals",
                [headline_table([oof]), *evaluation_blocks(oof)]),
    ]
    title = f"Cross-validation report: {len(plan.data.classes)} classes, {backbone_title(plan.config.model.backbone)}"
    out = Path(out_dir) if out_dir is not None else folder.path / REPORT_DIR
    return write_files(out, title, f"{folder.name} · generated {datetime.now():%Y-%m-%d %H:%M}", sections,
                       missing_glyphs)
