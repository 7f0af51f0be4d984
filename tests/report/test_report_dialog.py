"""The window's report dialog: evaluates in the background, lets the user edit the card, writes both files."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_report_dialog_creates_html_and_pdf_with_the_edited_card(qtbot, tiny_run, tmp_path):
    from tl_desktop.gui.report_action import create_report

    (tiny_run / "model_card.md").unlink(missing_ok=True)
    dialog = create_report(None, tiny_run)
    qtbot.addWidget(dialog)
    assert not dialog.create_button.isEnabled()
    qtbot.waitUntil(dialog.create_button.isEnabled, timeout=180_000)
    assert "Intended use" in dialog.card.toPlainText()
    assert "validation split" in dialog.status.text()
    dialog.card.setPlainText("Intended use\nOnly for our own greenhouse photos.")
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.create_button.click()
    qtbot.waitUntil(dialog.open_button.isEnabled, timeout=180_000)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Only for our own greenhouse photos." in html
    assert (tmp_path / "out" / "report.pdf").stat().st_size > 10_000
    assert (tiny_run / "model_card.md").read_text(encoding="utf-8").startswith("Intended use")
    assert "report.pdf" in dialog.status.text()
    dialog.close()
    qtbot.waitUntil(lambda: not dialog.worker.running, timeout=30_000)
