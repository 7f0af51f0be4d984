"""Each page on its own, driven through its real widgets."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings


def test_data_page_lists_classes_thumbnails_and_readable_warnings(qtbot, window, make_image_folder, tmp_path,
                                                                  scan_folder):
    root = make_image_folder(tmp_path, {"healthy": 6, "sick": 6}, size=40)
    (root / "sick" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    scan_folder(window, root)
    page = window.data_page
    assert [page.table.item(r, 0).text() for r in range(page.table.rowCount())] == ["healthy", "sick"]
    totals = [int(page.table.item(r, 4).text()) for r in range(2)]
    assert totals == [6, 6]
    strips = [page.thumbs_layout.itemAt(i).widget() for i in (1, 3)]
    assert [s.count() for s in strips] == [6, 6]
    assert all(not s.item(0).icon().isNull() for s in strips)
    texts = [page.warnings.item(i).text() for i in range(page.warnings.count())]
    assert any("could not be read" in t for t in texts), texts
    assert page.val_pct.isEnabled()
    assert "split at random" in page.split_info.text()


def test_data_page_uses_the_folders_own_split(qtbot, window, make_image_folder, tmp_path, scan_folder):
    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40, layout="split"))
    page = window.data_page
    assert not page.val_pct.isEnabled()
    assert "own train / val / test" in page.split_info.text()


def test_data_page_explains_a_missing_folder(window, tmp_path, dialogs_shown):
    window.data_page.open_folder(str(tmp_path / "nowhere"))
    assert dialogs_shown and "does not exist" in dialogs_shown[0]


def test_data_page_reports_a_folder_without_classes(qtbot, window, tmp_path, dialogs_shown):
    empty = tmp_path / "empty"
    empty.mkdir()
    window.data_page.open_folder(str(empty))
    qtbot.waitUntil(lambda: bool(dialogs_shown), timeout=20000)
    assert "Could not read the image folder" in dialogs_shown[0]
    assert "Traceback" not in dialogs_shown[0].split(" | ")[0]


def test_model_page_freezing_control_and_settings(qtbot, window, choose_tiny_model):
    choose_tiny_model(window, epochs=3, trainable=0)
    page = window.model_page
    freeze = page.freeze
    qtbot.waitUntil(lambda: "will train" in freeze.summary.text(), timeout=20000)
    head_only = freeze.summary.text()
    assert "only the new head" in freeze.value_label.text()
    freeze.slider.setValue(freeze.slider.maximum())
    assert freeze.value() == "all"
    qtbot.waitUntil(lambda: "will train" in freeze.summary.text() and freeze.summary.text() != head_only,
                    timeout=20000)
    assert "Frozen (kept as pretrained): nothing" in freeze.summary.text()
    assert not page.settings_form.advanced.body.isVisible()
    page.settings_form.advanced.toggle.click()
    assert page.settings_form.advanced.body.isVisible()
    cfg = page.run_config()
    assert cfg.model.backbone == "tiny_cnn" and cfg.model.trainable_blocks == "all"
    assert cfg.train.epochs == 3 and cfg.train.device == "cpu" and cfg.train.augmentation == "none"
    row = next(r for r in range(page.table.rowCount()) if page.table.item(r, 0).text() == "Tiny CNN (tests)")
    assert page.table.item(row, 4).text() == "Included"
    assert page.table.item(row, 2).text() == "32 px"


def test_settings_are_remembered(qtbot, window, settings, choose_tiny_model, tmp_path):
    from tl_desktop.gui.main_window import MainWindow

    choose_tiny_model(window, epochs=7, trainable=0)
    window.model_page.run_config()
    window.close()
    again = MainWindow(QSettings(settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.model_page.settings_form.epochs.value() == 7
    assert again.model_page.settings_form.device() == "cpu"


def test_model_page_measures_speed(qtbot, window, choose_tiny_model):
    choose_tiny_model(window)
    page = window.model_page
    page.measure_speeds(["tiny_cnn"])
    qtbot.waitUntil(lambda: not page.busy("speed"), timeout=20000)
    row = next(r for r in range(page.table.rowCount()) if page.table.item(r, 0).text() == "Tiny CNN (tests)")
    assert page.table.item(row, 3).text().endswith("images/s")


def test_predict_page_without_a_model_says_what_to_do(window, tmp_path: Path, dialogs_shown):
    window.go_to(5)
    window.predict_page.open_paths([str(tmp_path)])
    assert dialogs_shown and "No model is loaded" in dialogs_shown[0]


def test_keyboard_shortcuts_switch_pages(qtbot, window):
    from PySide6.QtCore import Qt

    qtbot.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.results_page
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.data_page


def test_window_fits_1280_by_800(window):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 800


def test_load_weights_from_file_checks_the_file(qtbot, window, choose_tiny_model, tiny_backbone, tmp_path,
                                                 dialogs_shown):
    choose_tiny_model(window)
    page = window.model_page
    bad = tmp_path / "not_weights.safetensors"
    bad.write_bytes(b"definitely not a safetensors file")
    page.use_weights_file(tiny_backbone, str(bad))
    qtbot.waitUntil(lambda: not page.busy("weights-file"), timeout=20000)
    assert dialogs_shown and "cannot be used as weights" in dialogs_shown[0]
    assert page.run_config().model.weights_file is None


def test_cached_copies_setting_maps_to_the_config_and_is_remembered(qtbot, window, settings, choose_tiny_model):
    from tl_desktop.gui.main_window import MainWindow

    choose_tiny_model(window, trainable=0)
    form = window.model_page.settings_form
    assert not form.views.isEnabled() and "augmentation is off" in form.views_hint.text()
    assert window.model_page.run_config().train.cached_views == 1
    form._set_combo(form.augmentation, "light")
    assert form.views.isEnabled() and form.views.isVisible()
    form.views.setValue(6)
    assert "balanced" in form.views_hint.text() and "1 = fastest" in form.views_hint.text()
    assert "once per copy" in form.views.toolTip()
    assert window.model_page.run_config().train.cached_views == 6
    window.close()
    again = MainWindow(QSettings(settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.model_page.settings_form.views.value() == 6
    assert again.model_page.settings_form.views.isEnabled()


def test_cached_copies_are_unused_only_when_every_block_trains_from_the_start(qtbot, window, choose_tiny_model):
    choose_tiny_model(window, trainable="all")
    form = window.model_page.settings_form
    form._set_combo(form.augmentation, "light")
    form.head_epochs.setValue(2)
    assert form.views.isEnabled()  # the head-first epochs still train on cached copies
    form.head_epochs.setValue(0)
    assert not form.views.isEnabled() and "every block trains" in form.views_hint.text()
    window.model_page.freeze.set_value(1)
    assert form.views.isEnabled() and "1 = fastest" in form.views_hint.text()


def _fill_cache(root: Path) -> tuple[Path, Path]:
    entry = root / "features" / "0123abcd"
    entry.mkdir(parents=True)
    (entry / "entry.json").write_text('{"key": "0123abcd", "description": "test entry"}')
    (entry / "features.npy").write_bytes(b"\0" * 50_000)
    weights = root / "weights" / "tiny.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"\0" * 20_000)
    return entry, weights


def _answer_clear_dialog(monkeypatch, shown: list[str], confirm: bool, tick_weights: bool) -> None:
    from PySide6.QtWidgets import QMessageBox

    def answer(box: QMessageBox) -> int:
        shown.append(f"{box.text()} | {box.informativeText()} | {box.checkBox().text()}")
        box.checkBox().setChecked(tick_weights)
        wanted = "Clear cache" if confirm else "Cancel"
        next(b for b in box.buttons() if b.text() == wanted).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)


def test_clear_cache_shows_what_it_holds_and_keeps_weights_unless_asked(qtbot, window, monkeypatch):
    from tl_desktop.engine.caching.store import CacheStore, human_size, user_cache_dir

    page = window.model_page
    window.go_to(1)
    entry, weights = _fill_cache(user_cache_dir())
    features_size = human_size(CacheStore().info().evictable_bytes)
    shown: list[str] = []
    _answer_clear_dialog(monkeypatch, shown, confirm=False, tick_weights=False)
    page.clear_button.click()
    qtbot.waitUntil(lambda: bool(shown) and not page.busy(), timeout=10000)
    assert entry.exists() and weights.exists()
    assert str(user_cache_dir()) in shown[0] and f"time): {features_size}" in shown[0]
    assert "weights (19.5 KB;" in shown[0]
    assert "Size limit" in shown[0]

    _answer_clear_dialog(monkeypatch, shown, confirm=True, tick_weights=False)
    page.clear_button.click()
    qtbot.waitUntil(lambda: "Cache cleared" in window.status_label.text(), timeout=10000)
    assert not entry.exists() and weights.exists()
    assert f"{features_size} freed" in window.status_label.text()
    qtbot.waitUntil(lambda: page.clear_button.isEnabled(), timeout=5000)

    _answer_clear_dialog(monkeypatch, shown, confirm=True, tick_weights=True)
    page.clear_button.click()
    qtbot.waitUntil(lambda: not weights.exists(), timeout=10000)
    qtbot.waitUntil(lambda: page._loaded and not page.busy(), timeout=20000)


def test_export_computes_metrics_on_the_split_results_shows(window):
    for split in ("test", "val"):
        window.go_to(3)
        window.results_page.split_box.setCurrentIndex(window.results_page.split_box.findData(split))
        window.go_to(4)
        assert window.export_page.split_box.currentData() == split
