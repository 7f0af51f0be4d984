"""The report as a PDF (matplotlib ``PdfPages``): A4 pages laid out top to bottom, a contents page first.

Text is wrapped by character count, tables are drawn cell by cell, and figures from the shared
builders are rasterised at 150 dpi and placed at a chosen width. Each section starts on a new page.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from PIL import Image

from tl_desktop.report.blocks import (
    Bullets,
    Fig,
    FigRow,
    Gallery,
    PageBreak,
    Para,
    Preformatted,
    Section,
    Table,
)

PAGE_W, PAGE_H = 8.27, 11.69  # A4 in inches
MARGIN = 0.7
TEXT_W = PAGE_W - 2 * MARGIN
BOTTOM = PAGE_H - MARGIN - 0.3  # leave room for the footer
BODY_PT, SMALL_PT, TABLE_PT = 9.5, 8.0, 7.5
RASTER_DPI = 150


def _chars_per_line(width_in: float, size_pt: float) -> int:
    # DejaVu Sans digits are 0.64 em wide; 0.6 em is a safe average for text full of numbers.
    return max(4, int(width_in * 72 / (size_pt * 0.6)))


def _line_h(size_pt: float) -> float:
    return size_pt * 1.4 / 72


def _figure_array(figure: Figure) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=RASTER_DPI)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


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
        n = len(block.columns)
        lengths = [max([len(block.columns[c])] + [len(r[c]) for r in block.rows]) for c in range(n)]
        widths = np.clip(np.array(lengths, float), 8, 40) + 2  # + padding
        widths = widths / widths.sum() * TEXT_W
        line = _line_h(TABLE_PT)

        def cells(values: list[str]) -> list[list[str]]:
            return [textwrap.wrap(v, _chars_per_line(w - 0.08, TABLE_PT)) or [""] for v, w in zip(values, widths)]

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

    def figure(self, block: Fig) -> None:
        array = _figure_array(block.figure)
        width = TEXT_W * block.width
        height = width * array.shape[0] / array.shape[1]
        max_h = BOTTOM - MARGIN - 0.6
        if height > max_h:
            width, height = width * max_h / height, max_h
        self.ensure(height + 0.4)
        self.image(array, MARGIN + (TEXT_W - width) / 2, self.y, width)
        self.y += height + 0.05
        if block.caption:
            self.wrapped(block.caption, SMALL_PT, color="#555555")
        self.y += 0.1

    def figure_row(self, block: FigRow) -> None:
        arrays = [_figure_array(f) for f in block.figures]
        gap = 0.15
        width = (TEXT_W - gap * (len(arrays) - 1)) / len(arrays)
        height = max(width * a.shape[0] / a.shape[1] for a in arrays)
        self.ensure(height + 0.4)
        for i, array in enumerate(arrays):
            self.image(array, MARGIN + i * (width + gap), self.y, width)
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
