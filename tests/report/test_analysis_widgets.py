"""Issue-4 widgets driven for real: threshold slider, mistakes with saliency, calibration, external folder."""

from __future__ import annotations

import os

import numpy as np

from tl_desktop.engine.training.runfolder import RunFolder

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_threshold_panel_updates_binary_metrics(qtbot):
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.gui.widgets.analysis import ThresholdPanel

    p_sick = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.1])
    preds = Predictions(list("abcdef"), [1, 1, 1, 0, 0, 0], np.stack([1 - p_sick, p_sick], 1), ["healthy", "sick"])
    panel = ThresholdPanel(preds)
    qtbot.addWidget(panel)
    assert "2 of 3 sick images found" in panel.result.text()
    with qtbot.waitSignal(panel.changed) as blocker:
        panel.slider.setValue(30)
    assert blocker.args == ["sick", 0.3]
    assert "3 of 3 sick images found" in panel.result.text()
    assert "Specificity</b> 66.7%" in panel.result.text()
    panel.positive.setCurrentIndex(0)
    assert "healthy images found" in panel.result.text()


def test_analysis_bar_dialogs_on_a_real_run(qtbot, tiny_run, external_folder, tmp_path):
    from PySide6.QtCore import QSettings

    from tl_desktop.engine.evaluation.evaluate import evaluate_run
    from tl_desktop.engine.models.bundle import load_bundle
    from tl_desktop.gui.session import Session
    from tl_desktop.gui.widgets.analysis import AnalysisBar

    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    session.set_run(tiny_run)
    refreshed = []
    bar = AnalysisBar(session, lambda: "val", lambda: refreshed.append(True))
    qtbot.addWidget(bar)
    assert not bar.mistakes_button.isEnabled()
    session.set_evaluation("val", *evaluate_run(tiny_run, "val", n_bootstrap=50))
    assert bar.mistakes_button.isEnabled() and not bar.threshold_button.isEnabled()  # three classes

    predictions, _ = session.evaluations["val"]
    mistakes = bar.show_mistakes()
    if mistakes.mistakes:
        qtbot.waitUntil(lambda: mistakes.view.overlay_label.pixmap() is not None
                        and not mistakes.view.overlay_label.pixmap().isNull(), timeout=60_000)
        assert "the model said" in mistakes.view.caption.text()
    else:
        assert (predictions.predicted() == predictions.labels).all()
    mistakes.close()

    external = bar.show_external()
    external.panel.folder.set_path(str(external_folder))
    external.panel.button.click()
    qtbot.waitUntil(lambda: external.panel.table.columnCount() == 3, timeout=60_000)
    assert "No images of rust" in external.panel.message.text()
    assert (RunFolder(tiny_run).external_evaluation_dir(external_folder) / "metrics.json").is_file()
    external.close()

    calibration = bar.show_calibration()
    calibration.panel.fit_button.click()
    qtbot.waitUntil(lambda: bool(refreshed), timeout=60_000)
    assert "Stored temperature" in calibration.panel.result.text()

    assert load_bundle(RunFolder(tiny_run).model_file).meta.temperature != 1.0
    calibration.close()


def test_predict_page_shows_saliency_of_the_last_image(qtbot, tiny_run, tmp_path):
    import json

    from PySide6.QtCore import QSettings

    from tl_desktop.gui.pages.predict_page import PredictPage
    from tl_desktop.gui.session import Session

    session = Session(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    page = PredictPage(session)
    qtbot.addWidget(page)
    session.set_run(tiny_run)
    qtbot.waitUntil(lambda: page.loaded is not None, timeout=60_000)
    split = json.loads((tiny_run / "split.json").read_text(encoding="utf-8"))
    image = tiny_run.parent.parent / "images" / split["val"][0][0]
    assert not page.saliency_button.isEnabled()
    page.predict_image(image)
    qtbot.waitUntil(page.saliency_button.isEnabled, timeout=60_000)
    dialog = page.show_saliency()
    qtbot.waitUntil(lambda: dialog.view.overlay_label.pixmap() is not None
                    and not dialog.view.overlay_label.pixmap().isNull(), timeout=60_000)
    assert "Map for" in dialog.view.caption.text()
    dialog.close()
