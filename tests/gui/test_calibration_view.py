"""The Results page's calibration view on a real tiny run: the chart and its ECE follow "Calibrate" and
"Undo" at once, the reliability diagram draws the gap between confidence and accuracy, and the mistakes
gallery follows the chosen two-class threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tl_desktop.engine.training.runfolder import RunFolder


@pytest.fixture(scope="module")
def two_class_run(tmp_path_factory: pytest.TempPathFactory, tiny_runs, make_image_folder) -> Path:
    """A completed run of the tiny CNN on two synthetic classes; the backbone stays registered meanwhile."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("calibration_run")
    tiny_runs.register_tiny_backbone(base)
    root = make_image_folder(base, classes={"healthy": 14, "sick": 14}, size=40)
    yield tiny_runs.train_tiny_run(root, base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


def _stored_temperature(run: Path) -> float:
    from tl_desktop.engine.workflows.evaluation import stored_temperature

    return stored_temperature(run)


def _page(qtbot, tmp_path: Path, run: Path, monkeypatch):
    from PySide6.QtCore import QSettings

    from tl_desktop.gui.pages.results_page import ResultsPage
    from tl_desktop.gui.session import Session

    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    page = ResultsPage(session)
    qtbot.addWidget(page)
    monkeypatch.setattr(page, "_draw_matrix", lambda: None)  # no confusion-matrix thread in these tests
    session.set_run(run)
    page.evaluate_current_run()
    qtbot.waitUntil(lambda: "val" in session.evaluations, timeout=60_000)
    return page, session


def _drain(qtbot, *owners) -> None:
    from tl_desktop.gui.tasks import shutdown_tasks_within

    for owner in owners:
        assert shutdown_tasks_within(owner)
    qtbot.wait(10)


def test_chart_follows_calibrate_and_undo_at_once(qtbot, two_class_run, tmp_path, monkeypatch):
    from tl_desktop.engine.evaluation.formatting import fmt

    page, session = _page(qtbot, tmp_path, two_class_run, monkeypatch)
    before = session.evaluations["val"][1]
    dialog = page.analysis.show_calibration()
    panel = dialog.panel
    assert panel.shown is before and f"<b>{fmt(before.ece, percent=False)}</b>" in panel.summary.text()
    qtbot.waitUntil(lambda: panel.temperature == 1.0, timeout=30_000)
    assert "not calibrated" in panel.summary.text() and not panel.undo_button.isEnabled()

    panel.fit_button.click()
    # Calibrate stores a temperature, the page evaluates again, and the open chart shows that evaluation.
    qtbot.waitUntil(lambda: panel.shown is not before and "val" in session.evaluations
                    and panel.shown is session.evaluations["val"][1], timeout=60_000)
    calibrated = panel.shown
    temperature = _stored_temperature(two_class_run)
    assert temperature != 1.0 and panel.temperature == pytest.approx(temperature)
    assert f"<b>{fmt(calibrated.ece, percent=False)}</b>" in panel.summary.text()
    assert f"temperature {temperature:.2f}" in panel.summary.text()
    assert calibrated.ece != before.ece
    assert panel.undo_button.isEnabled() and panel.undo_button.text() == "Undo calibration"

    panel.undo_button.click()
    qtbot.waitUntil(lambda: panel.shown is not calibrated and "val" in session.evaluations
                    and panel.shown is session.evaluations["val"][1], timeout=60_000)
    assert _stored_temperature(two_class_run) == 1.0
    assert panel.shown.ece == pytest.approx(before.ece, abs=1e-9)  # back to the uncalibrated probabilities
    assert "not calibrated" in panel.summary.text()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=10_000)
    assert not panel.undo_button.isEnabled()
    dialog.close()
    shown = panel.shown
    session.set_evaluation("val", *session.evaluations["val"][:1], before)
    assert panel.shown is shown  # a closed calibration window no longer redraws
    _drain(qtbot, page, dialog)


def test_a_model_calibrated_earlier_can_be_uncalibrated(qtbot, two_class_run, tmp_path, monkeypatch):
    from tl_desktop.engine.models.bundle import update_bundle_meta

    update_bundle_meta(RunFolder(two_class_run).model_file, temperature=1.7)
    try:
        page, session = _page(qtbot, tmp_path, two_class_run, monkeypatch)
        dialog = page.analysis.show_calibration()
        panel = dialog.panel
        qtbot.waitUntil(lambda: panel.temperature == pytest.approx(1.7), timeout=30_000)
        assert "temperature 1.70" in panel.summary.text()
        assert panel.undo_button.isEnabled() and panel.undo_button.text() == "Remove calibration"
        panel.undo_button.click()
        qtbot.waitUntil(lambda: _stored_temperature(two_class_run) == 1.0 and "val" in session.evaluations
                        and panel.shown is session.evaluations["val"][1], timeout=60_000)
        assert "not calibrated" in panel.summary.text()
        dialog.close()
        _drain(qtbot, page, dialog)
    finally:
        update_bundle_meta(RunFolder(two_class_run).model_file, temperature=1.0)


def test_reliability_diagram_draws_the_gap_between_confidence_and_accuracy():
    from matplotlib.container import BarContainer

    from tl_desktop.engine.evaluation.calibration import reliability_bins
    from tl_desktop.report.figures import GAP_LABEL, reliability_figure

    probs = np.array([[0.9, 0.1]] * 10 + [[0.35, 0.65]] * 10)
    labels = np.array([0] * 5 + [1] * 5 + [1] * 8 + [0] * 2)  # 90% confident, half right; 65%, 80% right
    bins = reliability_bins(probs, labels)
    figure = reliability_figure(bins, 0.2)
    gaps = [c for c in figure.axes[0].containers if isinstance(c, BarContainer) and c.get_label() == GAP_LABEL]
    assert len(gaps) == 1
    bars = sorted(gaps[0].patches, key=lambda bar: bar.get_x())
    # Under-confident bin (65% claimed, 80% right): the gap goes down from accuracy; over-confident goes up.
    assert [round(bar.get_y(), 6) for bar in bars] == [0.8, 0.5]
    assert [round(bar.get_height(), 6) for bar in bars] == [-0.15, 0.4]


def test_mistakes_follow_the_chosen_threshold(qtbot, two_class_run, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QLabel

    from tl_desktop.engine.evaluation.evaluate import (
        Predictions,
        compute_metrics,
        evaluate_run,
    )
    from tl_desktop.gui.session import Session
    from tl_desktop.gui.widgets.analysis import AnalysisBar

    real, _ = evaluate_run(two_class_run, "val", n_bootstrap=0)
    assert len(real) >= 5
    n = len(real)
    labels = np.array([1, 1, 0, 0, 1] + [0] * (n - 5))
    p_sick = np.array([0.45, 0.2, 0.6, 0.35, 0.9] + [0.05] * (n - 5))
    predictions = Predictions(real.paths, labels, np.c_[1 - p_sick, p_sick], ["healthy", "sick"])
    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    session.set_run(two_class_run)
    session.set_evaluation("val", predictions, compute_metrics(predictions, n_bootstrap=0))
    bar = AnalysisBar(session, lambda: "val")
    qtbot.addWidget(bar)

    plain = bar.show_mistakes()  # no threshold chosen: the most probable class decides
    assert [m.index for m in plain.mistakes] == [1, 2, 0]  # 80%, 60%, 55% confident
    assert any("most confident first" in label.text() for label in plain.findChildren(QLabel))
    plain.close()

    threshold = bar.show_threshold()
    threshold.panel.slider.setValue(30)
    threshold.close()
    assert bar.decision == ("sick", 0.3)
    at_threshold = bar.show_mistakes()
    # At 0.30: 0.60 and 0.35 are false alarms (0.30 and 0.05 past it), 0.20 a missed sick image (0.10 short).
    assert [m.index for m in at_threshold.mistakes] == [2, 1, 3]
    assert [round(m.beyond_threshold, 6) for m in at_threshold.mistakes] == [0.3, 0.1, 0.05]
    assert at_threshold.list.item(0).text().startswith("p(sick) 60%")
    texts = [label.text() for label in at_threshold.findChildren(QLabel)]
    assert any("threshold you chose (sick when its probability is at least 0.30)" in t for t in texts)
    qtbot.waitUntil(lambda: "Map for" in at_threshold.view.caption.text()
                    or "No saliency map" in at_threshold.view.caption.text(), timeout=60_000)
    assert "decision threshold 0.30 for sick" in at_threshold.view.caption.text()
    at_threshold.close()

    session.set_run(None)  # another run: the threshold chosen for this one no longer applies
    assert bar.decision is None
    _drain(qtbot, plain, at_threshold)
