"""The line at the top of the Data page that names the open project and the run Results shows."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QLabel

from tl_desktop.gui.session import Session


class ProjectLine(QLabel):
    """Hidden without a project; with one, where it is, what it keeps, and the run Results shows."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.setWordWrap(True)
        self.hide()
        session.project_changed.connect(self.refresh)
        session.run_changed.connect(self.refresh)

    def refresh(self) -> None:
        project, run_dir = self.session.project, self.session.run_dir
        self.setVisible(project is not None)
        if project is None:
            return
        run = f" Results shows run <i>{escape(run_dir.name)}</i>." if run_dir is not None else ""
        self.setText(f"Project <b>{escape(project.name)}</b> in {escape(str(project.folder))}: the images chosen "
                     "here, the settings and the training runs are kept together and come back when you open it "
                     f"again.{run}")
