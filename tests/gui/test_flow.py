"""The whole flow with real widgets on tiny data: folder → train → results → export → predict."""

from __future__ import annotations

import time
from pathlib import Path

from tl_desktop.engine.evaluation.evaluate import cell_members
from tl_desktop.engine.models.backbones import count_trainable_params
from tl_desktop.gui.widgets.common import human_count


def _train(qtbot, win, timeout: int = 60000) -> str:
    statuses: list[str] = []
    win.train_page.run_finished.connect(statuses.append)
    win.go_to(2)
    with qtbot.waitSignal(win.train_page.run_finished, timeout=timeout):
        win.train_page.start_button.click()
    return statuses[-1]


def test_full_flow_folder_train_results_export(qtbot, window, make_image_folder, tmp_path, dialogs_shown,
                                               choose_tiny_model, scan_folder, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    root = make_image_folder(tmp_path, {"cat": 6, "dog": 6}, size=40)
    scan_folder(window, root)
    data = window.data_page
    assert data.table.rowCount() == 2
    assert data.table.item(0, 0).text() == "cat"
    assert "12 images" in data.summary.text()
    assert data.thumbs_layout.count() == 5  # two (title, strip) pairs and the stretch

    choose_tiny_model(window, epochs=2, trainable=1)
    freeze = window.model_page.freeze
    assert freeze.value_label.text() == "last 1 of 3 blocks + head"
    qtbot.waitUntil(lambda: "will train" in freeze.summary.text(), timeout=20000)
    expected = count_trainable_params("tiny_cnn", 1)
    assert 0 < expected.trainable_params < expected.total_params
    assert (f"{human_count(expected.trainable_params)} of {human_count(expected.total_params)} parameters "
            "will train") in freeze.summary.text()
    assert f"Frozen (kept as pretrained): {', '.join(expected.frozen_names)}." in freeze.summary.text()

    assert _train(qtbot, window) == "completed"
    assert not dialogs_shown, dialogs_shown
    train = window.train_page
    assert train.plots.epoch_x == [1.0, 2.0]
    qtbot.waitUntil(lambda: train.plots.canvas is not None and not train.plots.rendering(), timeout=20000)
    assert train.plots.canvas.render_count >= 1
    assert train.plots.finetune_x == 1.0  # the head-only epoch 1, then fine-tuning from epoch 2
    finetune_line = train.plots.canvas.figure.tl_lines["finetune"][0]
    assert list(finetune_line.get_xdata()) == [1.0, 1.0]
    assert "Training finished" in train.log.toPlainText()
    assert train.plan.text().startswith("Finished: 2 epoch(s)") and "Results page" in train.plan.text()
    assert window.session.model_path() is not None

    results = window.results_page
    qtbot.waitUntil(lambda: "val" in window.session.evaluations, timeout=30000)
    window.go_to(3)
    qtbot.waitUntil(lambda: results.matrix_canvas is not None and results.matrix_canvas.render_count > 0,
                    timeout=20000)
    assert results.table.rowCount() == 2
    assert "Accuracy" in results.headline.text()
    counts_canvas = results.matrix_canvas
    results.normalised_button.setChecked(True)
    qtbot.waitUntil(lambda: results.matrix_canvas not in (None, counts_canvas), timeout=20000)
    predictions, _ = window.session.evaluations["val"]
    true_index, predicted_index = int(predictions.labels[0]), int(predictions.predicted()[0])  # a cell with images
    members = cell_members(predictions, predictions.classes[true_index], predictions.classes[predicted_index])
    dialog = results.show_cell(true_index, predicted_index)
    qtbot.waitUntil(lambda: not dialog.worker.running, timeout=10000)
    shown = [dialog.grid.item(i) for i in range(dialog.grid.count())]
    assert len(shown) == len(members) > 0
    assert [item.toolTip() for item in shown] == [predictions.paths[i] for i in members]
    assert all(not item.icon().isNull() for item in shown)  # the thumbnails came from the background task
    dialog.close()

    window.go_to(4)
    export = window.export_page
    out = tmp_path / "exported"
    export.folder.set_path(str(out))
    assert str(window.session.run_dir) in export.run_label.text()
    assert export.export_button.isEnabled() and export.report_button.isEnabled()
    qtbot.waitUntil(lambda: not export.busy(), timeout=5000)
    export.export_button.click()
    qtbot.waitUntil(lambda: (out / "metrics.json").exists() and not export.busy(), timeout=30000)
    names = {p.name for p in out.iterdir()}
    run_name = window.session.run_dir.name
    assert {f"{run_name}.tlmodel", "confusion_matrix.png", "confusion_matrix_normalised.png",
            "metrics_per_class.csv", "predictions.csv", "metrics.json"} <= names
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    window.go_to(5)
    predict = window.predict_page
    qtbot.waitUntil(lambda: predict.loaded is not None, timeout=20000)
    predict.open_paths([str(root / "cat" / "cat_000.jpg")])
    qtbot.waitUntil(lambda: predict.table.rowCount() == 2, timeout=20000)
    assert predict.table.horizontalHeaderItem(1).text() == "Probability"
    predict.open_paths([str(root / "dog")])
    qtbot.waitUntil(lambda: predict.folder_result is not None and not predict.busy(), timeout=20000)
    assert len(predict.folder_panel.model.rows) == 6 and predict.folder_panel.proxy.rowCount() == 6
    csv_path = root / "dog_predictions.csv"
    assert not csv_path.exists()  # saved only where the user says
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, caption, start, *a, **k: (start, ""))
    predict.folder_panel.save_button.click()
    qtbot.waitUntil(csv_path.exists, timeout=20000)
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("path,label,probability,cat,dog")
    assert len(lines) == 7
    assert not dialogs_shown, dialogs_shown


def test_stop_mid_run_keeps_a_usable_best_model(qtbot, window, make_image_folder, tmp_path, choose_tiny_model,
                                                 scan_folder):
    from tl_desktop.engine.models.bundle import load_bundle
    from tl_desktop.engine.training.events import EpochEnded

    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    choose_tiny_model(window, epochs=200, trainable=0)
    train = window.train_page
    statuses: list[str] = []
    train.run_finished.connect(statuses.append)
    window.go_to(2)
    train.start_button.click()
    qtbot.waitUntil(lambda: train.worker is not None, timeout=5000)
    worker = train.worker
    with qtbot.waitSignal(worker.event, timeout=30000, check_params_cb=lambda e: isinstance(e, EpochEnded)):
        pass
    assert train.stop_button.isEnabled()
    with qtbot.waitSignal(train.run_finished, timeout=30000):
        train.stop_button.click()
    assert statuses == ["stopped"]
    assert train.start_button.isEnabled() and not train.stop_button.isEnabled()
    assert "Training stopped" in train.progress.format()
    assert train.resume_bar.isVisible()  # the stopped run can go on
    assert train.resume_bar.label.text().startswith("This run was stopped after epoch ")
    assert "of 200." in train.resume_bar.label.text()
    model_path = window.session.model_path()
    assert model_path is not None
    loaded = load_bundle(model_path)
    assert loaded.classes == ["a", "b"]


def test_closing_during_training_asks_then_stops_cleanly(qtbot, window, make_image_folder, tmp_path,
                                                         monkeypatch, choose_tiny_model, scan_folder):
    from tl_desktop.engine.training.events import BatchEnded
    from tl_desktop.gui.widgets import dialogs

    asked: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *args, **kw: asked.append(args[2]) or True)
    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    choose_tiny_model(window, epochs=200, trainable=0)
    window.go_to(2)
    window.train_page.start_button.click()
    qtbot.waitUntil(lambda: window.train_page.worker is not None, timeout=30000)  # after the checks
    worker = window.train_page.worker
    with qtbot.waitSignal(worker.event, timeout=30000, check_params_cb=lambda e: isinstance(e, BatchEnded)):
        pass
    assert window.close() is False
    assert asked and "Stop it and close" in asked[0]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30000)
    assert not worker.running or worker.wait(10000)
    assert window.train_page.status_of_run == "stopped"


def test_training_without_data_points_to_the_data_page(qtbot, window, dialogs_shown):
    window.go_to(2)
    window.train_page.start_button.click()
    assert window.stack.currentWidget() is window.data_page
    assert dialogs_shown and "no images to train on" in dialogs_shown[0]


def test_results_page_refuses_a_folder_that_is_not_a_run(window, tmp_path: Path, dialogs_shown):
    window.go_to(3)
    window.results_page.open_run(tmp_path)
    assert dialogs_shown and "is not a training run folder (it has no config.json)" in dialogs_shown[0]
    assert window.session.run_dir is None


def test_train_page_shows_cache_progress(window):
    from tl_desktop.engine.training.events import CacheProgress

    train = window.train_page
    window.go_to(2)
    train.on_event(CacheProgress("decoding", 3, 12, "train"))
    assert train.progress.maximum() == 1000 and train.progress.value() == 250
    assert "Preparing: reading the training images — 3 of 12" in train.progress.format()
    train.on_event(CacheProgress("weights", 2_500_000, -1))
    assert train.progress.maximum() == 0 and "2.5 MB" in train.progress.format()
    train.on_event(CacheProgress("features", 0, 8, "train"))
    assert train.progress.maximum() == 1000 and train.progress.value() == 0
    assert train.log.toPlainText().count("Preparing:") == 3


def test_stop_while_caches_are_built(qtbot, window, make_image_folder, tmp_path, choose_tiny_model, scan_folder,
                                     monkeypatch):
    from tl_desktop.engine.training.events import CacheProgress
    from tl_desktop.gui.worker import TaskContext

    relay = TaskContext.emit

    def hold_on_first_cache_event(ctx: TaskContext, event) -> None:  # noqa: ANN001
        relay(ctx, event)
        if isinstance(event, CacheProgress):
            deadline = time.monotonic() + 20
            while not ctx.stop.requested and time.monotonic() < deadline:
                time.sleep(0.01)

    monkeypatch.setattr(TaskContext, "emit", hold_on_first_cache_event)
    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    choose_tiny_model(window, epochs=3, trainable=0)
    train = window.train_page
    window.go_to(2)
    assert train.plan.text().startswith("Ready:")
    train.start_button.click()
    qtbot.waitUntil(lambda: train.plan.text().startswith("Training:"), timeout=30000)  # after the checks
    assert train.plan.text().startswith("Training: Tiny CNN (tests), training only the new head, 3 epochs")
    qtbot.waitUntil(lambda: train.progress.format().startswith("Preparing:"), timeout=30000)
    assert train.stop_button.isEnabled()
    statuses: list[str] = []
    train.run_finished.connect(statuses.append)
    with qtbot.waitSignal(train.run_finished, timeout=30000):
        train.stop_button.click()
    assert statuses == ["stopped"]
    assert train.plan.text().startswith("Stopped before the first epoch finished")
    assert "Next:" in train.plan.text() and "Next run:" in train.plan.text()
    assert window.session.model_path() is None


def test_cache_stages_read_as_plain_words():
    from tl_desktop.engine.training.events import CacheProgress
    from tl_desktop.gui.pages.train_page import stage_text

    assert stage_text(CacheProgress("decoding", 0, 1, "val")) == "reading the validation images"
    assert stage_text(CacheProgress("activations", 0, 1, "train")) == "running the frozen layers on the training images"
    assert stage_text(CacheProgress("features", 0, 1, "val")) == "summarising the validation images for the new head"
    assert stage_text(CacheProgress("weights", 0, -1)) == "downloading weights"
