"""The File menu and what opening a project does to the window.

New project…, Open project…, Open recent ▸ (with Clear), Open run…, Quit. Opening a project puts its
settings on the Model page, its data on the Data page (scanned through the project's scan record, so
only what changed is read), sends training runs to its ``runs/`` folder, makes its newest run the one
Results shows, and names it in the window title. A data folder that is not where the project says is
asked for once, and its new place is saved. The last project is reopened when the window starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from PySide6.QtCore import QObject, QSettings, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from tl_desktop.config import RunConfig
from tl_desktop.engine.workflows.project import (
    PROJECT_FILE,
    DataFolderMissing,
    Project,
    ProjectError,
    create_project,
    latest_run,
    open_project,
    recent_after_opening,
    update_project,
)
from tl_desktop.gui.pages.base import Step
from tl_desktop.gui.stored_config import (
    last_project,
    load_recent,
    remember_last_project,
    save_recent,
)
from tl_desktop.gui.widgets import dialogs

if TYPE_CHECKING:
    from PySide6.QtWidgets import QLabel, QMenuBar

    from tl_desktop.gui.pages.data_page import DataPage
    from tl_desktop.gui.pages.model_page import ModelPage
    from tl_desktop.gui.pages.results_page import ResultsPage
    from tl_desktop.gui.pages.train_page import TrainPage
    from tl_desktop.gui.session import Session

OPEN_HINT = "Choose a folder made with File ▸ New project… (it holds a project.json)."


class ProjectWindow(Protocol):
    """What the File menu uses of the main window."""

    session: Session
    data_page: DataPage
    model_page: ModelPage
    train_page: TrainPage
    results_page: ResultsPage
    status_label: QLabel

    def go_to(self, step: Step | int) -> None: ...
    def isVisible(self) -> bool: ...
    def menuBar(self) -> QMenuBar: ...
    def close(self) -> bool: ...


class ProjectMenu(QObject):
    """The window's File menu and its project actions."""

    def __init__(self, window: ProjectWindow) -> None:
        super().__init__(cast(QObject, window))
        self.window = window
        self.session = window.session
        menu = window.menuBar().addMenu("&File")
        self.menu = menu
        self.new_action = self._action("&New project…", self.new_project, QKeySequence.StandardKey.New,
                                       "Make a folder into a project: its images, settings and runs together")
        self.open_action = self._action("&Open project…", self.open_project, QKeySequence.StandardKey.Open,
                                        "Open a project folder made earlier")
        self.recent_menu = menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        menu.addSeparator()
        self.run_action = self._action("Open r&un…", self.open_run, None,
                                       "Show a training run folder on the Results page")
        menu.addSeparator()
        self.quit_action = self._action("&Quit", window.close, QKeySequence("Ctrl+Q"), "Close tl-desktop")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.fill_recent()

    def _action(self, text: str, slot, shortcut, tip: str) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        return action

    @staticmethod
    def last_settings(settings: QSettings) -> RunConfig | None:
        """The settings of the last project, to build the pages with (None without a readable one); the
        project itself is opened by :meth:`reopen_last` once the window shows."""
        folder = last_project(settings)
        try:
            return open_project(folder).settings if folder else None
        except ProjectError:
            return None  # reopen_last says why

    # ----- the menu's actions -------------------------------------------------------------------
    def new_project(self, folder: Path | None = None) -> Project | None:
        """Make ``folder`` (asked for when None) a project holding the current images and settings, and open it."""
        if self._refused_while_training():
            return None
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(
                self.window, "New project: choose or create an empty folder for it", str(Path.home()))
            if not chosen:
                return None
            folder = Path(chosen)
        if (folder / PROJECT_FILE).is_file():
            if dialogs.ask_yes_no(self.window, "Already a project", f"{folder} already is a project.",
                                  "Open it instead? Nothing in it is changed.", yes_text="Open it"):
                return self.open_project(folder)
            return None
        try:
            project = create_project(folder, self.session.config)
        except ProjectError as exc:
            dialogs.show_error(self.window, f"Could not make the project: {exc}.",
                               "Choose a folder you can write to, for example in your Documents.")
            return None
        self.activate(project)
        self.window.status_label.setText(f"Project {project.name} created in {project.folder}. Its runs go to "
                                         f"{project.runs_dir}.")
        return project

    def open_project(self, folder: Path | None = None) -> Project | None:
        """Open the project in ``folder`` (asked for when None); a folder that is no project is refused in a dialog."""
        if self._refused_while_training():
            return None
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self.window, "Open project: choose its folder",
                                                      str(self._start_folder()))
            if not chosen:
                return None
            folder = Path(chosen)
        try:
            project = open_project(folder)
        except ProjectError as exc:
            if not Path(folder).exists():
                save_recent(self.session.settings, [p for p in load_recent(self.session.settings) if p != str(folder)])
            dialogs.show_error(self.window, f"Could not open the project: {exc}.", OPEN_HINT)
            return None
        self.activate(project)
        return project

    def reopen_last(self) -> Project | None:
        """Reopen the project that was open when the window last closed (nothing when there was none)."""
        folder = last_project(self.session.settings)
        if not folder or not self.window.isVisible():  # a window closed before it started opens nothing
            return None
        try:
            project = open_project(folder)
        except ProjectError as exc:
            remember_last_project(self.session.settings, "")
            dialogs.show_error(self.window, f"Could not reopen the last project: {exc}.",
                               "Open it with File ▸ Open project… once it is back, or start a new one.")
            return None
        self.activate(project)
        return project

    def open_run(self) -> None:
        """Choose a run folder and show it on the Results page."""
        self.window.go_to(Step.RESULTS)
        self.window.results_page.choose_run()

    def fill_recent(self) -> None:
        """The Open recent submenu: one entry per recent project, then Clear."""
        self.recent_menu.clear()
        recent = load_recent(self.session.settings)
        for folder in recent:
            action = self.recent_menu.addAction(f"{Path(folder).name}  —  {folder}")
            action.triggered.connect(lambda _checked=False, path=folder: self.open_project(Path(path)))
        if not recent:
            self.recent_menu.addAction("No recent projects").setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear recent list")
        clear.setEnabled(bool(recent))
        clear.triggered.connect(lambda _checked=False: self.clear_recent())

    def clear_recent(self) -> None:
        save_recent(self.session.settings, [])
        self._refill_recent()

    def _refill_recent(self) -> None:
        # Later, not now: the action being triggered belongs to the submenu, and refilling deletes it.
        QTimer.singleShot(0, self.fill_recent)

    # ----- opening ------------------------------------------------------------------------------
    def activate(self, project: Project) -> None:
        """Make ``project`` the window's: its settings, its data (asked for when moved), its runs, its latest run."""
        try:
            config = project.run_config()
        except DataFolderMissing as missing:
            project, config = self._ask_for_data(missing)
        self._show_settings(config)
        self.session.set_project(project)
        settings = self.session.settings
        save_recent(settings, recent_after_opening(load_recent(settings), project.folder))
        remember_last_project(settings, str(project.folder))
        self.session.remember("folders/runs", str(project.runs_dir))
        self.window.train_page.out_dir.set_path(str(project.runs_dir))
        self.window.data_page.show_source(config.data)
        newest = latest_run(project)
        if newest != self.session.run_dir:
            self.session.set_run(newest)
        self._refill_recent()
        self.window.status_label.setText(
            f"Project {project.name}" + (f": latest run {newest.name} is on the Results page." if newest
                                         else ": no training runs yet."))

    def _ask_for_data(self, missing: DataFolderMissing) -> tuple[Project, RunConfig]:
        """Ask once where a moved data folder (or table) is now; save its new place. Without an answer the
        project opens without data."""
        project = missing.project
        table = project.data_kind == "table"
        what = "label table" if table else "image folder"
        without = project.settings.replace(out_dir=str(project.runs_dir))
        if not dialogs.ask_yes_no(
                self.window, "Images not found",
                f"The {what} of project “{project.name}” is not where it was:\n{missing.stored}",
                f"If it was moved or the project was copied from another computer, choose where the {what} is "
                "now; the project remembers the new place.",
                yes_text="Choose table…" if table else "Choose folder…", no_text="Open without images"):
            return project, without
        caption = f"Where is the {what} of {project.name} now?"
        if table:
            chosen, _ = QFileDialog.getOpenFileName(self.window, caption, str(project.folder),
                                                    "Label tables (*.csv *.tsv);;All files (*)")
        else:
            chosen = QFileDialog.getExistingDirectory(self.window, caption, str(project.folder))
        if not chosen:
            return project, without
        config = without.replace(data=dataclasses.replace(without.data, **{"labels" if table else "root": chosen}))
        try:
            project = update_project(project, config)
        except ProjectError as exc:
            dialogs.show_error(self.window, f"The new place of the {what} could not be saved: {exc}.",
                               "The images are used for now; check that the project folder can be written.")
        return project, config

    def _show_settings(self, config: RunConfig) -> None:
        """Put ``config`` in the session and on the Model page (which writes its part back)."""
        self.session.set_config(config)
        page = self.window.model_page
        page.table.select(config.model.backbone)  # nothing before the backbone list is loaded
        if page.table.current_spec() is not None:
            page.freeze.set_value(config.model.trainable_blocks)
        page.settings_form.load(config.train, config.model.dropout)

    def _refused_while_training(self) -> bool:
        if self.session.training:
            dialogs.show_error(self.window, "Training is running.",
                               "Wait until it finishes, or stop it on the Train page, then open or create the project.")
        return self.session.training

    def _start_folder(self) -> Path:
        project = self.session.project
        return project.folder.parent if project is not None else Path.home()
