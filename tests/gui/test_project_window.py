"""Projects in the window: the File menu, creating a project, and a relaunch that reopens it with its data
shown without Scan (nothing decoded again) and Results on its latest run; a moved data folder asked once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence

from tl_desktop.engine.data import scanning
from tl_desktop.engine.workflows.project import PROJECT_FILE
from tl_desktop.gui.pages.base import Step


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every image file a scan really decodes (the real decoder runs; this only records the names)."""
    seen: list[str] = []
    real = scanning.probe_properties

    def recording(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(scanning, "probe_properties", recording)
    return seen


def _relaunch(qtbot, settings):
    """A new window on the same settings, as at the next start; waits until the last project is open."""
    from tl_desktop.gui.main_window import MainWindow

    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.session.project is not None, timeout=10000)
    return win


def _wait_for_scan(qtbot, win) -> None:
    qtbot.waitUntil(lambda: win.session.scan is not None and not win.data_page.busy("scan"), timeout=30000)


def _close(qtbot, win) -> None:
    from tl_desktop.gui.tasks import Tasks

    win.close()
    assert all(tasks.closed for tasks in win.findChildren(Tasks))


def test_file_menu_offers_projects_runs_and_quit(window, dialogs_shown, tmp_path) -> None:
    menu = window.projects
    texts = [action.text() for action in menu.menu.actions() if not action.isSeparator()]
    assert texts == ["&New project…", "&Open project…", "Open &recent", "Open r&un…", "&Quit"]
    assert menu.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    assert window.session.project is None and window.windowTitle().startswith("tl-desktop ")  # as before projects
    assert [a.text() for a in menu.recent_menu.actions() if not a.isSeparator()] == \
        ["No recent projects", "Clear recent list"]

    (tmp_path / "plain").mkdir()
    assert menu.open_project(tmp_path / "plain") is None
    assert "is not a project folder (it has no project.json)" in dialogs_shown[-1]
    assert window.session.project is None


def test_a_project_reopens_on_relaunch_with_its_data_unscanned_and_its_latest_run(
        window, qtbot, settings, scan_folder, make_image_folder, tiny_runs, decodes, tmp_path) -> None:
    images = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=36)
    scan_folder(window, images)
    project = window.projects.new_project(tmp_path / "Leaf spots")
    _wait_for_scan(qtbot, window)
    assert window.windowTitle().startswith("Leaf spots — tl-desktop")
    assert window.train_page.out_dir.path() == str(project.runs_dir)
    assert json.loads((project.folder / PROJECT_FILE).read_text(encoding="utf-8"))["data"]["relative"] == "../images"
    assert (project.folder / "scan.json").is_file()
    qtbot.waitUntil(lambda: window.projects.recent_menu.actions()[0].text() == f"Leaf spots  —  {project.folder}")

    run = tiny_runs.train_tiny_run(images, project.runs_dir)  # a run saved in the project's runs/
    _close(qtbot, window)

    decodes.clear()
    again = _relaunch(qtbot, settings)
    try:
        _wait_for_scan(qtbot, again)
        assert decodes == []  # shown from the scan record: no image decoded again
        assert again.windowTitle().startswith("Leaf spots — tl-desktop")
        assert again.data_page.summary.text().startswith("<b>2 classes, 16 images</b>")
        assert "Found 16 images in 2 classes (unchanged since the last scan)" in again.status_label.text()
        assert "Project <b>Leaf spots</b>" in again.data_page.project_line.text()
        assert again.session.run_dir == run
        again.go_to(Step.RESULTS)
        qtbot.waitUntil(lambda: bool(again.session.evaluations), timeout=30000)
        assert run.name in again.results_page.headline.text()
        assert again.session.config.out_dir == str(project.runs_dir)
    finally:
        _close(qtbot, again)


def test_a_moved_data_folder_is_asked_for_once_and_its_new_place_saved(
        window, qtbot, settings, scan_folder, make_image_folder, monkeypatch, tmp_path) -> None:
    from PySide6.QtWidgets import QFileDialog

    from tl_desktop.gui.widgets import dialogs

    images = make_image_folder(tmp_path)
    scan_folder(window, images)
    project = window.projects.new_project(tmp_path / "project")
    _wait_for_scan(qtbot, window)
    _close(qtbot, window)
    moved = shutil.move(images, tmp_path / "images moved")

    questions: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda _parent, _title, question, *a, **k: questions.append(question)
                        or True)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(moved))
    again = _relaunch(qtbot, settings)
    try:
        _wait_for_scan(qtbot, again)
        assert len(questions) == 1 and str(images.resolve()) in questions[0]
        assert again.data_page.folder.path() == str(Path(moved).resolve())
        stored = json.loads((project.folder / PROJECT_FILE).read_text(encoding="utf-8"))["data"]
        assert stored["relative"] == "../images moved"
    finally:
        _close(qtbot, again)
    third = _relaunch(qtbot, settings)
    try:
        _wait_for_scan(qtbot, third)
        assert len(questions) == 1  # the new place was saved: nothing asked again
    finally:
        _close(qtbot, third)


def test_recent_list_opens_and_clears_and_open_run_shows_a_run(
        window, qtbot, tiny_runs, make_image_folder, monkeypatch, tmp_path) -> None:
    from PySide6.QtWidgets import QFileDialog

    first = window.projects.new_project(tmp_path / "first")
    second = window.projects.new_project(tmp_path / "second")
    menu = window.projects.recent_menu

    def entries() -> list[str]:
        return [a.text() for a in menu.actions() if not a.isSeparator()]

    qtbot.waitUntil(lambda: entries() == [f"second  —  {second.folder}", f"first  —  {first.folder}",
                                          "Clear recent list"])
    menu.actions()[1].trigger()
    assert window.session.project.folder == first.folder and window.windowTitle().startswith("first — ")
    qtbot.waitUntil(lambda: entries()[0] == f"first  —  {first.folder}")
    menu.actions()[-1].trigger()  # Clear recent list
    qtbot.waitUntil(lambda: entries() == ["No recent projects", "Clear recent list"])
    assert not menu.actions()[-1].isEnabled()

    run = tiny_runs.train_tiny_run(make_image_folder(tmp_path), tmp_path / "elsewhere")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(run))
    window.projects.run_action.trigger()
    assert window.stack.currentWidget() is window.results_page and window.session.run_dir == run
    qtbot.waitUntil(lambda: bool(window.session.evaluations), timeout=30000)


def test_opening_a_project_while_another_is_being_scanned_shows_the_second(window, qtbot, make_image_folder,
                                                                            tmp_path) -> None:
    from tl_desktop.config import DataConfig
    from tl_desktop.engine.workflows.project import create_project

    first = create_project(tmp_path / "first", window.session.config.replace(
        data=DataConfig(root=str(make_image_folder(tmp_path / "A", classes={"a": 20, "b": 20})))))
    second = create_project(tmp_path / "second", window.session.config.replace(
        data=DataConfig(root=str(make_image_folder(tmp_path / "B", classes={"x": 4, "y": 4, "z": 4})))))
    window.projects.open_project(first.folder)
    assert window.data_page.busy("scan")
    window.projects.open_project(second.folder)  # before the first scan could report
    qtbot.waitUntil(lambda: window.session.scan is not None and not window.data_page.busy("scan"), timeout=30000)
    assert window.session.project.folder == second.folder
    assert window.session.scan.split.classes == ["x", "y", "z"]
    assert window.data_page.folder.path() == str((tmp_path / "B" / "images").resolve())


def test_opening_a_project_puts_its_settings_on_the_model_page(window, qtbot, tmp_path) -> None:
    import dataclasses

    from tl_desktop.engine.workflows.project import create_project

    config = window.session.config
    project = create_project(tmp_path / "seven epochs", config.replace(
        train=dataclasses.replace(config.train, epochs=7, batch_size=12)))
    window.projects.open_project(project.folder)
    form = window.model_page.settings_form
    assert (form.epochs.value(), form.batch_size.value()) == (7, 12)
    assert (window.session.config.train.epochs, window.session.config.train.batch_size) == (7, 12)
    assert window.session.scan is None and window.data_page.summary.text() == "No folder scanned yet."
