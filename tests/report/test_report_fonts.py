"""Text in any script is drawn with an installed font that has its glyphs, or the report says which
characters no font here has (issue 14, item 9: CJK and emoji class names showed as boxes)."""

from __future__ import annotations

import dataclasses
import io

from matplotlib import font_manager
from matplotlib.figure import Figure

from tl_desktop.report.fonts import BASE_FAMILY, choose_fonts, drawing_with

# A letter DejaVu Sans lacks and matplotlib's own STIX fonts have: a fallback that exists on every machine.
STIX_ONLY = "\u1d81"
CJK = "猫"


def _installed_font_has(char: str) -> bool:
    from matplotlib.ft2font import FT2Font

    return any(ord(char) in FT2Font(f.fname).get_charmap() for f in font_manager.fontManager.ttflist
               if not f.name.startswith("Last Resort"))


def test_latin_text_needs_only_the_base_font():
    assert choose_fonts(["healthy", "Blätter", "Ελλάδα"]) == choose_fonts([])
    assert choose_fonts(["healthy"]).families == (BASE_FAMILY,) and choose_fonts(["x"]).missing == ""


def test_a_character_the_base_font_lacks_gets_a_fallback_that_the_pdf_embeds():
    choice = choose_fonts([f"class {STIX_ONLY}"])
    assert choice.missing == "" and choice.families[0] == BASE_FAMILY
    assert any(name.startswith("STIX") for name in choice.families[1:])
    with drawing_with(choice):
        figure = Figure()
        figure.text(0.1, 0.5, f"a {STIX_ONLY}")
    pdf = io.BytesIO()
    figure.savefig(pdf, format="pdf")
    assert b"STIX" in pdf.getvalue() and b"DejaVu" in pdf.getvalue()


def test_characters_no_font_has_are_named_in_a_note():
    choice = choose_fonts([CJK])
    assert (CJK in choice.missing) == (not _installed_font_has(CJK))
    unknown = "\U000e01ef"  # a variation selector no text font draws
    note = dataclasses.replace(choice, missing=unknown).missing_note()
    assert unknown in note and "Noto Sans CJK" in note and dataclasses.replace(choice, missing="").missing_note() == ""


def test_the_report_draws_with_the_fallback_and_says_what_it_cannot_draw(tiny_run, tmp_path):
    from tl_desktop.report.build import write_report
    from tl_desktop.report.content import gather_report

    data = gather_report(tiny_run, n_bootstrap=0)
    data = dataclasses.replace(data, model_card=f"Intended use: leaves {STIX_ONLY} and {CJK}.")
    files = write_report(data, tmp_path / "rep")
    assert b"STIX" in files.pdf.read_bytes()
    assert (CJK in files.missing_glyphs) == (not _installed_font_has(CJK))
    if files.missing_glyphs:
        assert f"No font on this computer has the characters {CJK}" in files.html.read_text(encoding="utf-8")
