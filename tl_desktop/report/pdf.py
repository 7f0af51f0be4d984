"""The report as a PDF (matplotlib ``PdfPages``): A4 pages laid out top to bottom, a contents page first.

Text is wrapped by character count, tables are drawn cell by cell (wrapped at word boundaries), and the
shared figure builders draw straight into a sub-figure of the page, so figures stay vector: sharp at any
zoom, their text searchable. Each section starts on a new page.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure, SubFigure

from tl_desktop.report.blocks import (
    Bullets,
    Draw,
    Fig,
    FigRow,
    Gallery,
    PageBreak,
    Para,
    Preformatted,
    Section,
    Table,
)
from tl_desktop.report.figures import wrap_words

PAGE_W, PAGE_H = 8.27, 11.69  # A4 in inches
MARGIN = 0.7
TEXT_W = PAGE_W - 2 * MARGIN
BOTTOM = PAGE_H - MARGIN - 0.3  # leave room for the footer
BODY_PT, SMALL_PT, TABLE_PT = 9.5, 8.0, 7.5
LONGEST_WHOLE_WORD = 24  # a table column is made wide enough for words up to this many characters


def _chars_per_line(width_in: float, size_pt: float) -> int:
    # DejaVu Sans digits are 0.64 em wide; 0.6 em is a safe average for text full of numbers.
    return max(4, int(width_in * 72 / (size_pt * 0.6)))


def _line_h(size_pt: float) -> float:
    return size_pt * 1.4 / 72


def _aspect(draw: Draw) -> tuple[float, float]:
    """(width, height) in inches of the figure ``draw`` makes on its own."""
    width, height = draw().get_size_inches()
    return float(width), float(height)


def _lay_out_figures(page: Figure) -> None:
    """Give the page constrained layout (once), which lays out the axes inside each of its sub-figures."""
    if page.get_layout_engine() is None:
        page.set_layout_engine("constrained")
        # No spacing between the page's own grid cells (they place the sub-figures exactly); pads stay for the
        # axes inside each sub-figure.
        page.get_layout_engine().set(w_pad=4 / 72, h_pad=4 / 72, wspace=0, hspace=0)


def _column_widths(block: Table) -> np.ndarray:
    """Inches per column: shares by content length, but wide enough for each column's longest word."""
    n = len(block.columns)
    values = [[block.columns[c]] + [r[c] for r in block.rows] for c in range(n)]
    lengths = np.array([max(len(v) for v in column) for column in values], float)
    widths = np.clip(lengths, 8, 40) + 2  # + padding
    widths = widths / widths.sum() * TEXT_W
    words = np.array([max((len(w) for v in column for w in v.replace("_", " ").split()), default=1)
                      for column in values], float)
    needed = (np.minimum(words, LONGEST_WHOLE_WORD) + 1) * TABLE_PT * 0.6 / 72 + 0.08
    widths = np.maximum(widths, needed)
    excess, slack = widths.sum() - TEXT_W, widths - np.minimum(widths, needed)
    if excess > 0 and slack.sum() > 0:
        widths -= slack * min(1.0, excess / slack.sum())
    return widths * min(1.0, TEXT_W / widths.sum())


class _Layout:
    """Places blocks on A4 figures, top to bottom, starting a page when one is full."""

    def __init__(self) -> None:
        self.pages: list[Figure] = []
        self.y = BOTTOM

    def new_page(self) -> None:
        self.pages.append(Figure(figsize=(PAGE_W, PAGE_H)))
        self.y = MARGIN

    def ensure(self, height: float) -> None:
        if self.y + height > BOTTOM and self.y > MARGIN + 0.01:
            self.new_page()

    def text(self, x: float, y: float, s: str, size: float, **kw: Any) -> None:
        self.pages[-1].text(x / PAGE_W, 1 - y / PAGE_H, s, fontsize=size, va="top", ha="left", **kw)

    def heading(self, title: str, size: float = 15) -> None:
        self.ensure(0.6)
        for line in textwrap.wrap(title, _chars_per_line(TEXT_W, size * 1.15)):
            self.text(MARGIN, self.y, line, size, weight="bold", color="#1f3b57")
            self.y += size * 1.5 / 72
        self.y += size * 0.3 / 72

    def wrapped(self, text: str, size: float = BODY_PT, indent: float = 0.0, prefix: str = "", **kw: Any) -> None:
        width = _chars_per_line(TEXT_W - indent - (0.18 if prefix else 0), size)
        lines = textwrap.wrap(text, width) or [""]
        for i, line in enumerate(lines):
            self.ensure(_line_h(size))
            if prefix and i == 0:
                self.text(MARGIN + indent, self.y, prefix, size, **kw)
            self.text(MARGIN + indent + (0.18 if prefix else 0), self.y, line, size, **kw)
            self.y += _line_h(size)
        self.y += size * 0.5 / 72

    def table(self, block: Table) -> None:
        widths = _column_widths(block)
        line = _line_h(TABLE_PT)

        def cells(values: list[str]) -> list[list[str]]:
            return [wrap_words(v, _chars_per_line(w - 0.08, TABLE_PT), split_words=True) or [""]
                    for v, w in zip(values, widths)]

        def draw_row(values: list[str], header: bool) -> None:
            wrapped = cells(values)
            height = max(len(c) for c in wrapped) * line + 0.06
            self.ensure(height)
            fig, x = self.pages[-1], MARGIN
            top = 1 - self.y / PAGE_H
            fig.add_artist(_rect(fig, MARGIN, self.y, TEXT_W, height, "#eef3f8" if header else "white"))
            for text_lines, w in zip(wrapped, widths):
                for k, t in enumerate(text_lines):
                    fig.text((x + 0.04) / PAGE_W, top - (0.03 + k * line) / PAGE_H, t, fontsize=TABLE_PT,
                             va="top", weight="bold" if header else "normal")
                x += w
            self.y += height

        draw_row(block.columns, True)
        for row in block.rows:
            draw_row(row, False)
        self.y += 0.05
        if block.caption:
            self.wrapped(block.caption, SMALL_PT, color="#555555")
        self.y += 0.08

    def image(self, array: np.ndarray, x: float, y: float, width: float) -> float:
        height = width * array.shape[0] / array.shape[1]
        ax = self.pages[-1].add_axes((x / PAGE_W, 1 - (y + height) / PAGE_H, width / PAGE_W, height / PAGE_H))
        ax.imshow(array, interpolation="lanczos")
        ax.set_axis_off()
        return height

    def drawing(self, draw: Draw, x: float, y: float, width: float, height: float, natural_width: float) -> None:
        """Draw a figure into the page's rectangle (x, y, width, height) in inches, its text scaled like the
        figure itself (as if its own-size version were shrunk to ``width``)."""
        page = self.pages[-1]
        _lay_out_figures(page)
        grid = page.add_gridspec(3, 3, width_ratios=[x, width, max(PAGE_W - x - width, 1e-3)],
                                 height_ratios=[y, height, max(PAGE_H - y - height, 1e-3)])
        part: SubFigure = page.add_subfigure(grid[1, 1])
        scale = width / natural_width
        with matplotlib.rc_context({"font.size": matplotlib.rcParams["font.size"] * scale,
                                    "lines.linewidth": matplotlib.rcParams["lines.linewidth"] * scale,
                                    "lines.markersize": matplotlib.rcParams["lines.markersize"] * scale}):
            draw(into=part)

    def figure(self, block: Fig) -> None:
        natural_w, natural_h = _aspect(block.draw)
        width = TEXT_W * block.width
        height = width * natural_h / natural_w
        max_h = BOTTOM - MARGIN - 0.6
        if height > max_h:
            width, height = width * max_h / height, max_h
        self.ensure(height + 0.4)
        self.drawing(block.draw, MARGIN + (TEXT_W - width) / 2, self.y, width, height, natural_w)
        self.y += height + 0.05
        if block.caption:
            self.wrapped(block.caption, SMALL_PT, color="#555555")
        self.y += 0.1

    def figure_row(self, block: FigRow) -> None:
        sizes = [_aspect(draw) for draw in block.draws]
        gap = 0.15
        width = (TEXT_W - gap * (len(sizes) - 1)) / len(sizes)
        height = max(width * h / w for w, h in sizes)
        self.ensure(height + 0.4)
        for i, (draw, (w, h)) in enumerate(zip(block.draws, sizes)):
            self.drawing(draw, MARGIN + i * (width + gap), self.y, width, width * h / w, w)
        self.y += height + 0.05
        if block.caption:
            self.wrapped(block.caption, SMALL_PT, color="#555555")
        self.y += 0.1

    def gallery(self, block: Gallery) -> None:
        tile_w, gap = (TEXT_W - 0.3) / 2, 0.3
        side = min(tile_w / 2 - 0.05, 1.45)  # four rows of two tiles fit on a page
        for start in range(0, len(block.items), 2):
            row = block.items[start:start + 2]
            height = side + 0.55
            self.ensure(height)
            for col, item in enumerate(row):
                x = MARGIN + col * (tile_w + gap)
                for k, picture in enumerate((item.image, item.overlay)):
                    square = np.asarray(picture.convert("RGB").resize((320, 320)))
                    self.image(square, x + k * (side + 0.05), self.y, side)
                name = Path(item.path).name
                self.text(x, self.y + side + 0.04, f"{textwrap.shorten(name, 40)}   [{item.source.lower()}]",
                          SMALL_PT, weight="bold")
                self.text(x, self.y + side + 0.22, f"true: {item.true_class}   model: {item.predicted_class} "
                          f"({item.confidence:.0%})", SMALL_PT)
            self.y += height


def _rect(fig: Figure, x: float, y: float, w: float, h: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x / PAGE_W, 1 - (y + h) / PAGE_H), w / PAGE_W, h / PAGE_H, transform=fig.transFigure,
                     facecolor=colour, edgecolor="#bbbbbb", linewidth=0.5)


def _place(layout: _Layout, block: Any) -> None:
    if isinstance(block, Para):
        layout.wrapped(block.text)
    elif isinstance(block, Bullets):
        for item in block.items:
            layout.wrapped(item, indent=0.1, prefix="•")
    elif isinstance(block, Table):
        layout.table(block)
    elif isinstance(block, Fig):
        layout.figure(block)
    elif isinstance(block, FigRow):
        layout.figure_row(block)
    elif isinstance(block, Gallery):
        layout.gallery(block)
    elif isinstance(block, Preformatted):
        for paragraph in block.text.splitlines():
            layout.wrapped(paragraph, weight="bold" if paragraph and not paragraph.startswith("-")
                           and len(paragraph) < 40 and not paragraph.endswith(".") else "normal")
    elif isinstance(block, PageBreak):
        layout.new_page()
    else:
        raise TypeError(f"unknown report block {type(block).__name__}")


def render_pdf(path: Path | BinaryIO, title: str, subtitle: str, sections: list[Section]) -> list[int]:
    """Write the PDF to ``path`` (a path or a binary file); return each section's first page (1-based).

    Page 1 is the title and contents page.
    """
    layout = _Layout()
    starts = []
    for section in sections:
        layout.new_page()
        starts.append(len(layout.pages) + 1)  # +1: the contents page comes first
        layout.heading(section.title)
        for block in section.blocks:
            _place(layout, block)
    contents = _Layout()
    contents.new_page()
    contents.heading(title, 18)
    contents.wrapped(subtitle, color="#555555")
    contents.y += 0.2
    contents.heading("Contents", 13)
    for section, page in zip(sections, starts):
        contents.text(MARGIN, contents.y, f"{section.title}", BODY_PT + 1, weight="bold")
        contents.text(PAGE_W - MARGIN - 0.5, contents.y, f"page {page}", BODY_PT)
        contents.y += _line_h(BODY_PT + 1)
        contents.wrapped(section.summary, SMALL_PT, indent=0.15, color="#555555")
    pages = contents.pages + layout.pages
    with PdfPages(path) as pdf:
        for number, page in enumerate(pages, start=1):
            page.text(0.5, MARGIN / 2 / PAGE_H, f"{title} — page {number} of {len(pages)}", fontsize=7,
                      ha="center", color="#777777")
            pdf.savefig(page)
    return starts + [len(pages) + 1]
