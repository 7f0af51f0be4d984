"""The Results page's tables show each value with its 95% interval, the method in a tooltip, and mark
classes with too few images to judge."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _predictions(counts: dict[str, int]):
    from tl_desktop.engine.evaluation.evaluate import Predictions

    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts.values())])
    probs = np.full((labels.size, len(counts)), 0.1)
    probs[np.arange(labels.size), labels] = 0.8
    return Predictions([f"{i}.png" for i in range(labels.size)], labels, probs, list(counts))


def test_results_table_shows_intervals_and_marks_small_classes(qtbot, settings, tmp_path: Path, monkeypatch):
    from tl_desktop.engine.evaluation.evaluate import compute_metrics
    from tl_desktop.engine.evaluation.formatting import TOO_FEW
    from tl_desktop.gui.pages.results_page import TABLE_COLUMNS, ResultsPage
    from tl_desktop.gui.session import Session

    session = Session(settings)
    page = ResultsPage(session)
    qtbot.addWidget(page)
    monkeypatch.setattr(page, "_draw_matrix", lambda: None)  # no figure thread in this test
    predictions = _predictions({"healthy": 15, "sick": 6})
    session.run_dir = tmp_path / "20250101-120000-run"
    session.set_evaluation("val", predictions, compute_metrics(predictions, n_bootstrap=200))
    page.show_evaluation("val")

    cells = {(r, TABLE_COLUMNS[c]): page.table.item(r, c) for r in range(2) for c in range(len(TABLE_COLUMNS))}
    assert cells[0, "Class"].text() == "healthy" and cells[0, "Recall"].text() == "100.0%\n(79.6–100.0%)"
    assert cells[0, "Recall"].toolTip() == "95% interval: Wilson"
    assert cells[0, "F1"].text() == "100.0%\n(not estimable)"
    assert "every resample gave the same value" in cells[0, "F1"].toolTip()
    assert cells[1, "Class"].text() == f"sick\n({TOO_FEW})"
    headline = page.headline.text()
    assert "Accuracy 100.0%" in headline and "(95% interval 84.5–100.0%, Wilson)" in headline  # 21 of 21


def test_external_comparison_table_uses_the_same_interval_text(qtbot, tmp_path: Path):
    from tl_desktop.engine.evaluation.evaluate import compute_metrics
    from tl_desktop.gui.widgets.analysis import ExternalPanel

    predictions = _predictions({"healthy": 15, "sick": 15})
    metrics = compute_metrics(predictions, n_bootstrap=200)
    panel = ExternalPanel(tmp_path, {"validation": (predictions, metrics)})
    qtbot.addWidget(panel)
    texts = {panel.table.item(r, 0).text(): panel.table.item(r, 1).text() for r in range(panel.table.rowCount())}
    assert texts["Accuracy"] == "100.0% (88.6–100.0%)"  # 30 of 30: Wilson from 88.65%
    assert texts["Macro AUC"] == "1.000 (0.864–1.000)"  # two classes: the Hanley–McNeil score interval
    assert texts["Balanced accuracy"] == "100.0% (interval not estimable)"
    assert texts["Calibration error (ECE)"] == f"{metrics.ece:.3f}"  # no interval for ECE
