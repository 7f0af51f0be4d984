"""The cross-validation dialog: started from the Data page, runs every fold off the GUI thread, fills the
fold table, stops between folds, and the report can be written."""

from __future__ import annotations

from pathlib import Path


def _open_dialog(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder):
    root = make_image_folder(tmp_path, {"cat": 8, "dog": 8}, size=40)
    scan_folder(window, root)
    choose_tiny_model(window, epochs=2, trainable=0)
    window.go_to(0)
    data = window.data_page
    assert data.cv_button.isEnabled()
    data.cv_button.click()
    dialog = data._cv_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    dialog.folds.setValue(3)
    return dialog


def test_cv_dialog_runs_the_folds_and_fills_the_table(qtbot, window, make_image_folder, tmp_path,
                                                      choose_tiny_model, scan_folder, dialogs_shown):
    dialog = _open_dialog(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder)
    dialog.start_button.click()
    assert dialog.stop_button.isEnabled() and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=120000)
    assert dialog.result.status == "completed", dialog.status.text()
    assert dialog.table.rowCount() == 3
    assert [dialog.table.item(r, 0).text() for r in range(3)] == ["1", "2", "3"]
    assert "Accuracy" in dialog.summary.text() and "Pooled out-of-fold accuracy" in dialog.summary.text()
    assert "All folds finished" in dialog.status.text()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=5000)
    assert dialog.report_button.isEnabled()
    assert Path(dialog.result.folder.path).parent == Path(window.session.config.out_dir)
    assert not dialogs_shown
    dialog.close()


def test_cv_dialog_stop_ends_the_run_and_keeps_finished_folds(qtbot, window, make_image_folder, tmp_path,
                                                              choose_tiny_model, scan_folder):
    dialog = _open_dialog(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: "Fold 1 of 3" in dialog.status.text(), timeout=30000)
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=120000)
    assert dialog.result.status == "stopped"
    assert dialog.result.summary["folds_done"] < 3
    assert "finished folds are kept" in dialog.status.text()
    dialog.close()


def test_cv_dialog_resumes_a_stopped_cross_validation(qtbot, window, make_image_folder, tmp_path,
                                                      choose_tiny_model, scan_folder, dialogs_shown, monkeypatch):
    dialog = _open_dialog(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=120000)  # fold 1 finished
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=120000)
    assert dialog.result.status == "stopped"
    folder = dialog.result.folder.path
    qtbot.waitUntil(lambda: dialog.resume_button.isEnabled(), timeout=5000)
    dialog.close()

    fresh = _open_dialog(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder)
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(tmp_path / "not-cv"))
    fresh.open_button.click()
    assert dialogs_shown and "not a cross-validation folder" in dialogs_shown[-1]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    fresh.open_button.click()
    qtbot.waitUntil(lambda: fresh.result is not None, timeout=120000)
    assert fresh.result.status == "completed", fresh.status.text()
    assert Path(fresh.result.folder.path) == Path(folder)
    assert [fresh.table.item(r, 0).text() for r in range(3)] == ["1", "2", "3"]
    assert all(int(fresh.table.item(r, 1).text()) > 0 for r in range(3))
    assert not fresh.resume_button.isEnabled()
    fresh.close()
