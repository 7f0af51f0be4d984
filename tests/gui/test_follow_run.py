"""The Train page's runs that live elsewhere: following a run folder another process writes (live curves
and log, then the Results page evaluates it as a local run), stopping the following, and preparing a
run's config.json and torchrun command for a server."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

from tl_desktop.config import RunConfig
from tl_desktop.gui.pages.follow_run import ServerJobDialog


def _replay(trained: Path, target: Path) -> threading.Thread:
    """Write ``trained``'s run into ``target`` line by line, each line in two pieces, as a job would."""
    lines = (trained / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)

    def write() -> None:
        time.sleep(0.3)
        shutil.copytree(trained, target, ignore=shutil.ignore_patterns("events.jsonl", "model.tlmodel"))
        with open(target / "events.jsonl", "w", encoding="utf-8") as handle:
            for index, line in enumerate(lines):
                if index == len(lines) - 1:
                    shutil.copy(trained / "model.tlmodel", target / "model.tlmodel")
                for piece in (line[: len(line) // 2], line[len(line) // 2:]):
                    handle.write(piece)
                    handle.flush()
                    time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.fixture
def trained(tiny_runs, make_image_folder, tmp_path, tiny_backbone) -> Path:
    return tiny_runs.train_tiny_run(make_image_folder(tmp_path, {"a": 8, "b": 8}, size=36), tmp_path / "made")


def test_following_a_run_folder_shows_it_live_then_results_evaluate_it(qtbot, window, dialogs_shown, trained,
                                                                       tmp_path):
    page = window.train_page
    runs = tmp_path / "server-runs"
    runs.mkdir()
    window.go_to(2)
    writer = _replay(trained, runs / trained.name)
    page.elsewhere.follow(str(runs))  # the job's runs folder, before its run folder exists
    assert page.busy("follow") and not page.start_button.isEnabled() and page.elsewhere.stop_button.isVisible()
    qtbot.waitUntil(lambda: window.session.run_dir is not None, timeout=60000)
    writer.join()
    assert window.session.run_dir == runs / trained.name
    assert window.session.fit_result.status == "completed"
    assert page.plots.epoch_x == [1.0, 2.0]
    log = page.log.toPlainText()
    assert "Waiting for a run to start" in log and log.count("Epoch 1/2:") == 1 and "Training finished." in log
    qtbot.waitUntil(lambda: "val" in window.session.evaluations, timeout=60000)  # as after a local run
    qtbot.waitUntil(lambda: not page.busy(), timeout=30000)
    assert page.start_button.isEnabled() and not page.elsewhere.stop_button.isVisible()
    assert dialogs_shown == []


def test_stop_following_leaves_the_run_alone_and_restores_the_buttons(qtbot, window, dialogs_shown, tmp_path):
    page = window.train_page
    empty = tmp_path / "not-yet"
    empty.mkdir()
    window.go_to(2)
    page.elsewhere.follow(str(empty))
    qtbot.waitUntil(lambda: "Waiting for a run to start" in page.log.toPlainText(), timeout=30000)
    page.elsewhere.stop_button.click()
    qtbot.waitUntil(lambda: not page.busy("follow"), timeout=30000)
    assert page.start_button.isEnabled() and page.elsewhere.follow_button.isEnabled()
    assert window.session.run_dir is None and dialogs_shown == [] and list(empty.iterdir()) == []


def test_prepare_for_a_server_writes_the_config_and_the_torchrun_command(qtbot, window, dialogs_shown, tmp_path,
                                                                         monkeypatch):
    job = tmp_path / "job"

    def filled(dialog: ServerJobDialog) -> int:
        dialog.folder.set_path(str(job))
        dialog.processes.setValue(4)
        dialog.images.setText("/data/skin")
        dialog.runs.setText("/shared/runs")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ServerJobDialog, "exec", filled)
    window.train_page.elsewhere.server_button.click()
    config = RunConfig.load(job / "config.json")
    assert config.data.root == "/data/skin" and config.out_dir == "/shared/runs"
    assert config.model == window.session.config.model and config.train == window.session.config.train
    command = "torchrun --nproc-per-node 4 -m tl_desktop train --config config.json"
    assert command in (job / "train_on_server.sh").read_text(encoding="utf-8")
    assert len(dialogs_shown) == 1 and command in dialogs_shown[0]

    (job / "config.json").write_text("{}", encoding="utf-8")  # the user's file: asked before it is replaced
    window.train_page.elsewhere.server_button.click()
    assert "already exist" in dialogs_shown[-1] and (job / "config.json").read_text(encoding="utf-8") == "{}"
