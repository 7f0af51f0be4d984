"""Before and after a run in the window: the engine's pre-training checks, resuming a stopped run, and
opening a run that was killed before it exported its model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.events import EpochEnded
from tl_desktop.engine.training.runfolder import RunFolder

EPOCHS = 4


class StopAfterEpoch(Callback):
    """Requests a stop once epoch ``epoch`` has ended (the run stops at its next batch)."""

    def __init__(self, stop: StopToken, epoch: int) -> None:
        self.stop, self.epoch = stop, epoch

    def on_event(self, event) -> None:
        if isinstance(event, EpochEnded) and event.epoch == self.epoch:
            self.stop.request()


def _stopped_run(root: Path, out: Path, stop_after: int) -> RunFolder:
    """A tiny run of EPOCHS epochs stopped after epoch ``stop_after`` (it keeps its resume point)."""
    from tl_desktop.engine.training.trainer import Trainer

    config = RunConfig(
        data=DataConfig(root=str(root)), out_dir=str(out),
        model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1),
        train=TrainConfig(epochs=EPOCHS, head_epochs=1, batch_size=4, augmentation="none", cached_views=1,
                          early_stopping_patience=0, device="cpu"),
    )
    stop = StopToken()
    result = Trainer(config, callbacks=[StopAfterEpoch(stop, stop_after)], stop=stop).fit()
    assert result.status == "stopped"
    run = RunFolder(result.run_dir)
    assert run.resume_file.is_file() and [e.epoch for e in run.epoch_history()] == list(range(1, stop_after + 1))
    return run


def _refusal(qtbot, window, dialogs_shown: list[str], config: RunConfig) -> str:
    """Start training with ``config``; the one dialog the checks showed."""
    window.session.set_config(config)
    window.go_to(2)
    window.train_page.start_button.click()
    qtbot.waitUntil(lambda: bool(dialogs_shown) and not window.train_page.busy("check"), timeout=30000)
    assert not window.session.training and window.train_page.worker is None
    assert window.train_page.start_button.isEnabled() and window.train_page.start_button.text() == "Start training"
    return dialogs_shown[-1]


def test_train_page_refuses_bad_settings_with_the_engines_message(qtbot, window, make_image_folder, tmp_path,
                                                                   dialogs_shown, choose_tiny_model, scan_folder):
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.models.weights import WeightsFileError
    from tl_desktop.engine.training.checks import check_settings

    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    choose_tiny_model(window, epochs=2, trainable=1)
    good = window.session.config
    smoothing = good.replace(train=dataclasses.replace(good.train, label_smoothing=1.5))
    with pytest.raises(ConfigError) as refused:
        check_settings(smoothing)
    shown = _refusal(qtbot, window, dialogs_shown, smoothing)
    assert shown.startswith(f"Training cannot start: {refused.value}.")
    assert "label_smoothing must be in [0, 1)" in shown and "Model page" in shown

    missing = good.replace(model=dataclasses.replace(good.model, weights_file=str(tmp_path / "gone.pt")))
    with pytest.raises(WeightsFileError) as refused:
        check_settings(missing)
    shown = _refusal(qtbot, window, dialogs_shown, missing)
    assert shown.startswith(f"Training cannot start: {refused.value}.")
    assert "weights file not found" in shown and "Load weights from file" in shown
    assert not list((tmp_path / "runs").glob("*"))  # nothing was started


def test_train_page_asks_before_a_download_and_declining_starts_nothing(qtbot, window, make_image_folder, tmp_path,
                                                                       dialogs_shown, monkeypatch, scan_folder):
    from tl_desktop.gui.widgets import dialogs

    asked: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *args, **kw: asked.append(args[2]) or False)
    scan_folder(window, make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40))
    config = window.session.config
    window.session.set_config(config.replace(model=dataclasses.replace(config.model, backbone="resnet18")))
    window.go_to(2)
    window.train_page.start_button.click()
    qtbot.waitUntil(lambda: bool(asked) and not window.train_page.busy("check"), timeout=30000)
    assert "are not on this computer. Download them now and train?" in asked[0]
    assert not dialogs_shown and not window.session.training and window.train_page.worker is None
    assert window.train_page.start_button.isEnabled()


def test_resuming_a_stopped_run_from_the_window_completes_it(qtbot, window, make_image_folder, tmp_path,
                                                            dialogs_shown):
    run = _stopped_run(make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40), tmp_path / "runs", stop_after=2)
    results, train = window.results_page, window.train_page
    window.go_to(3)
    results.open_run(run.path)
    assert window.session.run_dir == run.path
    assert results.resume_bar.isVisible()
    assert results.resume_bar.label.text().startswith(f"This run was stopped after epoch 2 of {EPOCHS}.")
    qtbot.waitUntil(lambda: not results.busy("evaluate"), timeout=30000)

    statuses: list[str] = []
    train.run_finished.connect(statuses.append)
    starts: list[tuple] = []  # what the window showed as the resumed run started
    window.session.training_state_changed.connect(lambda running: running and starts.append(
        (window.stack.currentWidget() is train, list(train.plots.epoch_x), train.resume_bar.isVisible(),
         results.resume_bar.isVisible())))
    with qtbot.waitSignal(train.run_finished, timeout=60000):
        results.resume_bar.button.click()
    # on the Train page, the epochs finished before shown from the start, no offer to resume while it runs
    assert starts == [(True, [1.0, 2.0], False, False)]
    assert statuses == ["completed"], dialogs_shown
    assert not dialogs_shown, dialogs_shown
    assert not run.resume_file.exists() and run.is_complete() and run.status() == "completed"
    assert [e.epoch for e in run.epoch_history()] == list(range(1, EPOCHS + 1))
    assert train.plots.epoch_x == [float(e) for e in range(1, EPOCHS + 1)]
    assert train.plots.finetune_x == 1.0
    log = train.log.toPlainText()
    assert f"Resuming after epoch 2 of {EPOCHS}" in log and "Training finished" in log
    assert train.plan.text().startswith(f"Finished: {EPOCHS} epoch(s), the last {EPOCHS - 2} in ")
    assert window.session.run_dir == run.path and not train.resume_bar.isVisible()
    qtbot.waitUntil(lambda: "val" in window.session.evaluations, timeout=30000)
    assert not results.resume_bar.isVisible()


def test_results_page_builds_the_model_file_of_a_killed_run(qtbot, window, make_image_folder, tmp_path,
                                                           dialogs_shown):
    run = _stopped_run(make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40), tmp_path / "runs", stop_after=1)
    run.model_file.unlink()  # as if the process was killed before it exported
    results = window.results_page
    window.go_to(3)
    results.open_run(run.path)
    assert window.session.run_dir is None  # not yet: the model file is built in the background
    qtbot.waitUntil(lambda: "val" in window.session.evaluations, timeout=30000)
    assert not dialogs_shown, dialogs_shown
    assert window.session.run_dir == run.path and run.is_complete()
    assert window.session.model_path() == run.model_file
    assert "built the model file from the best checkpoint" in window.status_label.text().lower()
    assert results.table.rowCount() == 2 and "Accuracy" in results.headline.text()
    assert results.resume_bar.isVisible()  # it can still go on training


def test_results_page_says_why_a_run_without_a_checkpoint_cannot_open(window, make_image_folder, tmp_path,
                                                                    dialogs_shown):
    run = _stopped_run(make_image_folder(tmp_path, {"a": 6, "b": 6}, size=40), tmp_path / "runs", stop_after=1)
    run.model_file.unlink()
    run.best_checkpoint.unlink()
    window.go_to(3)
    window.results_page.open_run(run.path)
    assert dialogs_shown and "has no model: it ended before its first epoch finished" in dialogs_shown[0]
    assert window.session.run_dir is None and not window.results_page.busy()
