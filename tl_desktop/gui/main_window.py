"""The main window: a step list on the left (Data → Model → Train → Results → Export → Predict)
and the current page on the right. Pages are cheap to build: torch, matplotlib and the engine are
imported only when a page needs them, so the window appears quickly."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from tl_desktop import __version__
from tl_desktop.engine.workflows.project import PROJECT_FILE
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.pages.data_page import DataPage
from tl_desktop.gui.pages.export_page import ExportPage
from tl_desktop.gui.pages.model_page import ModelPage
from tl_desktop.gui.pages.predict_page import PredictPage
from tl_desktop.gui.pages.results_page import ResultsPage
from tl_desktop.gui.pages.train_page import TrainPage
from tl_desktop.gui.project_menu import ProjectMenu
from tl_desktop.gui.session import Session
from tl_desktop.gui.tasks import shutdown_tasks_within
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import local_paths

STEPS_STYLE = """
QListWidget#steps { font-size: 11pt; }
QListWidget#steps::item { padding: 8px 6px; border-bottom: 1px solid palette(midlight); }
QListWidget#steps::item:selected { background: palette(highlight); color: palette(highlighted-text); }
"""


class MainWindow(QMainWindow):
    """The application window."""

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.session = Session(settings or QSettings("tl-desktop", "tl-desktop"), self)
        self._close_when_stopped = False
        start_settings = ProjectMenu.last_settings(self.session.settings)
        if start_settings is not None:  # the pages show the last project's settings from the start
            self.session.set_config(start_settings)

        self.data_page = DataPage(self.session)
        self.model_page = ModelPage(self.session)
        self.train_page = TrainPage(self.session)
        self.results_page = ResultsPage(self.session)
        self.export_page = ExportPage(self.session)
        self.predict_page = PredictPage(self.session)
        self.pages: list[Page] = [self.data_page, self.model_page, self.train_page,
                                  self.results_page, self.export_page, self.predict_page]
        assert [page.step for page in self.pages] == list(Step)

        self.steps = QListWidget()
        self.steps.setObjectName("steps")
        self.steps.setAccessibleName("Steps")
        self.steps.setFixedWidth(180)
        self.steps.setStyleSheet(STEPS_STYLE)
        self.stack = QStackedWidget()
        for number, page in enumerate(self.pages, start=1):
            item = QListWidgetItem(f"{number}. {page.title}\n{page.step_hint}")
            item.setToolTip(f"{page.hint}  (Ctrl+{number})")
            self.steps.addItem(item)
            self.stack.addWidget(page)
            action = QAction(self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, i=number - 1: self.go_to(i))
            self.addAction(action)
        self.steps.currentRowChanged.connect(self._show_page)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.steps)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.status_label = QLabel("Start by choosing a folder of images (one sub-folder per class).")
        self.statusBar().addWidget(self.status_label, 1)

        self.projects = ProjectMenu(self)
        self.session.project_changed.connect(self._show_title)
        self._show_title()
        self.train_page.run_finished.connect(self._after_training)
        self.session.training_state_changed.connect(self._on_training_state)
        for page in self.pages:
            page.status.connect(self.status_label.setText)
            page.go_to_step.connect(self.go_to)
        self._restore_geometry()
        self.go_to(Step.DATA)
        QTimer.singleShot(0, self.projects.reopen_last)

    def go_to(self, step: Step | int) -> None:
        """Show the page of ``step`` (``Step.DATA`` = 0 … ``Step.PREDICT`` = 5)."""
        self.steps.setCurrentRow(int(step))

    def _show_title(self) -> None:
        project = self.session.project
        self.setWindowTitle(f"{project.name} — tl-desktop {__version__}" if project is not None
                            else f"tl-desktop {__version__} — train image classifiers")

    def _show_page(self, index: int) -> None:
        if index < 0:
            return
        self.stack.setCurrentIndex(index)
        self.pages[index].on_shown()

    def _after_training(self, status: str) -> None:
        if self._close_when_stopped:
            QTimer.singleShot(0, self.close)
        elif status in ("completed", "stopped") and self.session.model_path() is not None:
            self.status_label.setText(f"Training {status}. Evaluating the best model…")
            self.results_page.evaluate_current_run()

    def _on_training_state(self, running: bool) -> None:
        for step in (Step.DATA, Step.MODEL):
            self.pages[step].setEnabled(not running)

    def _restore_geometry(self) -> None:
        geometry = self.session.recall("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 760)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            return
        if (Path(paths[0]) / PROJECT_FILE).is_file():
            self.projects.open_project(Path(paths[0]))
        elif self.stack.currentWidget() is self.predict_page:
            self.predict_page.open_paths(paths)
        else:
            self.go_to(Step.DATA)
            self.data_page.open_folder(paths[0])
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.training:
            if self._close_when_stopped or dialogs.ask_yes_no(
                self, "Training is running",
                "Training is still running. Stop it and close tl-desktop?",
                "The best model so far is kept in the run folder.",
                yes_text="Stop and close", no_text="Keep training"):
                self._close_when_stopped = True
                self.status_label.setText("Stopping training, then closing…")
                self.train_page.stop_training()
            event.ignore()
            return
        shutdown_tasks_within(self)  # every page's and dialog's tasks: a closed window reports nothing later
        problem = self.session.save_config()
        if problem:
            dialogs.show_error(self, f"The project's settings could not be saved: {problem}.",
                               "They are kept on this computer for the next start; check that the project "
                               "folder can be written.")
        self.session.remember("window/geometry", self.saveGeometry())
        self.session.settings.sync()
        event.accept()
