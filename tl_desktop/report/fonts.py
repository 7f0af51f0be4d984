"""Fonts for a report: text in any script (class names in Chinese, Japanese, Korean, emoji) is drawn
with a font on this computer that has its glyphs, instead of boxes.

matplotlib's default font (DejaVu Sans) draws Latin, Greek and Cyrillic. For every other character the
report needs, matplotlib's font manager is asked for an installed font that has it; the fonts found
are added behind DejaVu Sans as fallbacks (matplotlib uses the first family that has each glyph).
Characters that no installed font has are returned, so the report can say so.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

BASE_FAMILY = "DejaVu Sans"
# Fonts that "have" every character only as a placeholder box naming its Unicode block.
PLACEHOLDER_FONTS = ("Last Resort",)


@dataclass(frozen=True)
class FontChoice:
    """The font families to draw with, in order, and the characters none of them has."""

    families: tuple[str, ...]
    missing: str

    def missing_note(self) -> str:
        """A sentence for the report when some characters cannot be drawn ("" when all can)."""
        if not self.missing:
            return ""
        return (f"No font on this computer has the characters {' '.join(self.missing)}, so the PDF and the figures "
                "show them as empty boxes. Install a font that has them (for Chinese, Japanese and Korean, e.g. "
                "Noto Sans CJK; for emoji, Noto Emoji) and write the report again.")


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def choose_fonts(texts: Iterable[str]) -> FontChoice:
    """The families that draw every character of ``texts`` that can be drawn here, DejaVu Sans first."""
    from matplotlib import font_manager

    needed = {ord(c) for text in texts for c in text if c.isprintable() and not c.isspace()}
    missing = needed - _charmap(font_manager.findfont(BASE_FAMILY))
    families = [BASE_FAMILY]
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname)):
        if not missing:
            break
        if entry.name in families or entry.name.startswith(PLACEHOLDER_FONTS):
            continue
        covered = missing & _charmap(entry.fname)
        if covered:
            families.append(entry.name)
            missing -= covered
    return FontChoice(tuple(families), "".join(chr(c) for c in sorted(missing)))


@contextlib.contextmanager
def drawing_with(choice: FontChoice) -> Iterator[None]:
    """Figures and pages made inside use ``choice``'s families (text keeps the fonts it was created with)."""
    import matplotlib

    with matplotlib.rc_context({"font.family": list(choice.families)}):
        yield
