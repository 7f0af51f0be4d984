"""The document blocks a report is made of; the HTML and PDF writers render the same blocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import FigureBase

from tl_desktop.report.data import MistakeImage


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


# Draws a figure: ``draw()`` into a new Figure of its own size (HTML), ``draw(into=sub_figure)`` into a part of
# a PDF page, which keeps it vector. The builders in ``report.figures`` (bound with functools.partial) fit.
Draw = Callable[..., FigureBase]


@dataclass
class Fig:
    draw: Draw
    caption: str = ""
    width: float = 1.0  # fraction of the text width


@dataclass
class FigRow:
    """Figures side by side (each gets an equal share of the width)."""

    draws: list[Draw]
    caption: str = ""


@dataclass
class Gallery:
    items: list[MistakeImage]


@dataclass
class Preformatted:
    text: str


@dataclass
class PageBreak:
    pass


@dataclass
class Section:
    key: str
    title: str
    summary: str
    blocks: list[Any] = field(default_factory=list)
