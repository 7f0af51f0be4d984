"""Build a run's report: one self-contained HTML file and one PDF, written atomically."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.fileio import atomic_write_text, atomic_writer
from tl_desktop.report.blocks import Section
from tl_desktop.report.content import gather_report
from tl_desktop.report.cv_sections import final_model_section
from tl_desktop.report.data import ReportData
from tl_desktop.report.fonts import choose_fonts, drawing_with
from tl_desktop.report.html import render_html
from tl_desktop.report.model_card import read_saved_card, unfinished_parts
from tl_desktop.report.pdf import render_pdf
from tl_desktop.report.sections import build_sections

REPORT_DIR = "report"
REPORT_FILES = ("report.html", "report.pdf")


@dataclass(frozen=True)
class ReportFiles:
    """Where the report went and what it holds."""

    html: Path
    pdf: Path
    pdf_pages: int
    sections: list[tuple[str, int, int]]  # (title, first PDF page, last PDF page)
    missing_glyphs: str = ""  # characters no font on this computer could draw
    unfinished: tuple[str, ...] = ()  # parts of the intended-use text still holding "[to be completed …]"


def report_title(data: ReportData) -> str:
    """'Model report: <n> classes, <backbone>'."""
    return f"Model report: {len(data.classes)} classes, {data.backbone_title}"


def write_report(data: ReportData, out_dir: str | Path) -> ReportFiles:
    """Render ``data`` to ``out_dir/report.html`` and ``out_dir/report.pdf``, with fonts that draw its text."""
    out = Path(out_dir)
    fonts = choose_fonts([*data.classes, data.model_card, data.run_name, str(data.run_dir), *data.notes,
                          *(e.title for e in data.evaluations), *(e.description for e in data.evaluations)])
    if fonts.missing:
        data = dataclasses.replace(data, notes=[*data.notes, fonts.missing_note()])
    sections = build_sections(data)
    if data.cross_validation is not None:  # right after the run's own results
        sections.insert([s.key for s in sections].index("mistakes"), final_model_section(data.cross_validation))
    with drawing_with(fonts):
        files = write_files(out, report_title(data), f"Run {data.run_name} · generated {data.generated}",
                            sections, fonts.missing)
    return dataclasses.replace(files, unfinished=tuple(unfinished_parts(data.model_card)))


def write_files(out: Path, title: str, subtitle: str, sections: list[Section], missing_glyphs: str) -> ReportFiles:
    """Write ``sections`` as ``out/report.html`` and ``out/report.pdf`` (with the fonts the caller chose)."""
    html_path, pdf_path = (out / name for name in REPORT_FILES)
    atomic_write_text(html_path, render_html(title, sections))
    with atomic_writer(pdf_path) as handle:
        starts = render_pdf(handle, title, subtitle, sections)
    spans = [(s.title, first, nxt - 1) for s, first, nxt in zip(sections, starts, starts[1:])]
    return ReportFiles(html_path, pdf_path, starts[-1] - 1, spans, missing_glyphs)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, model_card: str | None = None,
                 n_bootstrap: int = 1000, seed: int = 0, progress: Callable[[str], None] | None = None,
                 stop: Any = None) -> ReportFiles:
    """Evaluate ``run_dir`` and write its report (default folder ``<run>/report``).

    ``model_card`` is the user's edited intended-use text; it is saved as ``<run>/model_card.md`` so the
    next report starts from it. Without it the saved card, or else a generated draft, is used.
    """
    run_dir = Path(run_dir)
    card = model_card if model_card is not None else read_saved_card(run_dir)
    data = gather_report(run_dir, model_card=card, n_bootstrap=n_bootstrap, seed=seed, progress=progress, stop=stop)
    if model_card is not None:
        atomic_write_text(RunFolder(run_dir).card_file, model_card)
    if progress is not None:
        progress("Writing the HTML and PDF files")
    return write_report(data, Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR)
