"""The report as one self-contained HTML file: images inline as base64, no scripts, no external URLs."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from matplotlib.figure import FigureBase
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

FIGURE_DPI = 110

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .88em; padding-top: .3em; }
figure { margin: 1em 0; }
figcaption { color: #555; font-size: .88em; }
figure img { max-width: 100%; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 1em; }
.tile img { width: 49%; }
.tile p { margin: .2em 0; font-size: .88em; }
pre.card { white-space: pre-wrap; background: #f7f7f7; border: 1px solid #ddd; padding: 1em; font-family: inherit; }
nav ol { columns: 2; }
"""


def _png_data_uri(figure: FigureBase) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _jpeg_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(block: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gallery(block: Gallery) -> str:
    tiles = []
    for item in block.items:
        name = html.escape(item.path.replace("\\", "/").rsplit("/", 1)[-1])
        tiles.append(
            f'<div class="tile"><img alt="{name}" src="{_jpeg_data_uri(item.image)}"> '
            f'<img alt="saliency of {name}" src="{_jpeg_data_uri(item.overlay)}">'
            f"<p><b>{name}</b>: true <b>{html.escape(item.true_class)}</b>, model said "
            f"<b>{html.escape(item.predicted_class)}</b> ({item.confidence:.0%} confident) — "
            f"{html.escape(item.source.lower())}</p></div>")
    return f'<div class="gallery">{"".join(tiles)}</div>'


def _block(block: Any) -> str:
    if isinstance(block, Para):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Fig):
        width = int(block.width * 100)
        return (f'<figure><img style="width:{width}%" alt="{html.escape(block.caption)}" '
                f'src="{_png_data_uri(block.draw())}"><figcaption>{html.escape(block.caption)}</figcaption></figure>')
    if isinstance(block, FigRow):
        width = 100 // len(block.draws) - 1
        images = "".join(f'<img style="width:{width}%" alt="{html.escape(block.caption)}" '
                         f'src="{_png_data_uri(draw())}">' for draw in block.draws)
        return f"<figure>{images}<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    if isinstance(block, Gallery):
        return _gallery(block)
    if isinstance(block, Preformatted):
        return f'<pre class="card">{html.escape(block.text)}</pre>'
    if isinstance(block, PageBreak):
        return ""
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(title: str, sections: list[Section]) -> str:
    """The whole report as an HTML document."""
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a> — {html.escape(s.summary)}</li>'
                  for s in sections)
    body = "".join(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>'
                   + "".join(_block(b) for b in s.blocks) + "</section>" for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>{body}</body></html>\n")
