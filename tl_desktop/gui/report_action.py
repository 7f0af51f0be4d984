"""The report dialog behind the Export page's "Create report…" button.

It evaluates the run in the background, shows a draft of the intended-use and limitations text (the
model card) for the user to edit, then writes the HTML and PDF in the background and offers to open
them. Nothing here blocks the GUI thread.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import hint
from tl_desktop.gui.worker import TaskContext, Worker

if TYPE_CHECKING:
    from tl_desktop.report.build import ReportFiles
    from tl_desktop.report.data import ReportData


class ReportDialog(QDialog):
    """Edit the model card, choose a folder, create report.html and report.pdf."""

    def __init__(self, parent: QWidget | None, run_dir: Path) -> None:
        super().__init__(parent)
        from tl_desktop.report.build import REPORT_DIR

        self.run_dir = Path(run_dir)
        self.data: ReportData | None = None
        self.files: ReportFiles | None = None
        self.tasks = Tasks(self)
        self.worker: Worker | None = None
        self.viewer_failed: OpenFailedBox | None = None
        self.setWindowTitle(f"Report of {self.run_dir.name}")
        self.resize(760, 620)
        self.status = QLabel("Evaluating the model for the report…")
        self.status.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.card = QPlainTextEdit()
        self.card.setEnabled(False)
        self.card.setPlaceholderText("The draft appears here once the model has been evaluated.")
        self.folder = QLineEdit(str(self.run_dir / REPORT_DIR))
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose_folder)
        self.create_button = QPushButton("Create report")
        self.create_button.setDefault(True)
        self.create_button.setEnabled(False)
        self.create_button.clicked.connect(self.create)
        self.open_button = QPushButton("Open report")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_report)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)

        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Save in:"))
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(choose)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.open_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(QLabel("<b>Intended use and limitations</b> (printed as the report's last section)"))
        layout.addWidget(hint("Replace every “[to be completed …]” with what you know: who should use the "
                              "model, on which images, and where it must not be used."))
        layout.addWidget(self.card, 1)
        layout.addLayout(folder_row)
        layout.addLayout(buttons)
        self.finished.connect(lambda _result: self.tasks.stop())
        self._gather()

    def _start(self, fn: Callable[[TaskContext], object], on_success: Callable[[Any], None], error_title: str,
               error_hint: str) -> None:
        def connect(worker: Worker) -> None:
            worker.event.connect(lambda event: self.status.setText(f"{getattr(event, 'text', event)}…"))
            worker.succeeded.connect(on_success)
            worker.failed.connect(lambda message, details: self._failed(error_title, message, error_hint, details))
            worker.finished.connect(self.busy.hide)

        self.busy.show()
        self.worker = self.tasks.start(fn, "report", connect)

    def _gather(self) -> None:
        run_dir = self.run_dir

        def gather(ctx: TaskContext) -> ReportData:
            from tl_desktop.engine.training.events import Message
            from tl_desktop.report.content import gather_report
            from tl_desktop.report.model_card import read_saved_card

            return gather_report(run_dir, model_card=read_saved_card(run_dir),
                                 progress=lambda text: ctx.emit(Message("info", text)), stop=ctx.stop)

        self._start(gather, self._gathered, "Could not evaluate the model for the report.",
                    "Check that the run's images are still where they were during training.")

    def _gathered(self, data: ReportData) -> None:
        self.data = data
        self.card.setPlainText(data.model_card)
        self.card.setEnabled(True)
        self.create_button.setEnabled(True)
        found = ", ".join(f"{e.title.lower()} ({e.metrics.num_samples} images)" for e in data.evaluations)
        self.status.setText(f"Evaluated on: {found or 'no images'}. Edit the text below, then create the report.")

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where should the report go?", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def create(self) -> None:
        """Write the report with the edited card text in the background."""
        if self.data is None:
            return

        from tl_desktop.fileio import existing_files
        from tl_desktop.report.build import REPORT_FILES

        if not self._placeholders_accepted():
            return
        out = Path(self.folder.text().strip())
        if not dialogs.confirm_replace(self, existing_files([out / name for name in REPORT_FILES])):
            self.status.setText("The report was not written; choose another folder to keep the one there.")
            return
        self.data.model_card = self.card.toPlainText()
        data, card_path = self.data, RunFolder(self.run_dir).card_file

        def write(_ctx: TaskContext) -> ReportFiles:
            from tl_desktop.fileio import atomic_write_text
            from tl_desktop.report.build import write_report

            atomic_write_text(card_path, data.model_card)
            return write_report(data, out)

        self.create_button.setEnabled(False)
        self.status.setText("Writing the HTML and PDF files…")
        self._start(write, self._written, f"Could not write the report to {out}.",
                    "Choose a folder you can write to, with enough free space.")

    def _placeholders_accepted(self) -> bool:
        """Warn before writing a card that still holds placeholders; False sends the user back to edit it."""
        from tl_desktop.report.model_card import PLACEHOLDER, unfinished_parts

        card = self.card.toPlainText()
        parts = unfinished_parts(card)
        if not parts:
            return True
        if dialogs.ask_yes_no(self, "Unfinished text", "The intended use and limitations still say "
                              f"“[to be completed …]” in: {', '.join(parts)}.",
                              "The report prints these placeholders as they are. Edit them first?",
                              yes_text="Create anyway", no_text="Edit first"):
            return True
        first = PLACEHOLDER.search(card)
        cursor = self.card.textCursor()
        cursor.setPosition(first.start() if first else 0)
        cursor.setPosition(first.end() if first else 0, QTextCursor.MoveMode.KeepAnchor)
        self.card.setTextCursor(cursor)
        self.card.setFocus()
        self.status.setText(f"Not written yet: complete {', '.join(parts)} (the first placeholder is selected), "
                            "then create the report.")
        return False

    def _written(self, files: ReportFiles) -> None:
        self.files = files
        self.create_button.setEnabled(True)
        self.open_button.setEnabled(True)
        self.status.setText(f"Saved <b>{files.html.name}</b> and <b>{files.pdf.name}</b> ({files.pdf_pages} pages) "
                            f"in {files.html.parent}.")
        self.status.setTextFormat(Qt.TextFormat.RichText)

    def _failed(self, title: str, message: str, next_step: str, details: str) -> None:
        self.status.setText(f"{title} {message}")
        self.create_button.setEnabled(self.data is not None)
        dialogs.show_error(self, f"{title}\n\n{message}", next_step, details)

    def open_report(self) -> None:
        """Open the HTML report in the system's browser (it works offline); say where it is when that fails."""
        if self.files is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.files.html))):
            self.viewer_failed = OpenFailedBox(self, self.files.html)
            self.viewer_failed.open()


class OpenFailedBox(QDialog):
    """No program opened the report: its path, to copy, and its folder, to open instead."""

    def __init__(self, parent: QWidget, path: Path) -> None:
        super().__init__(parent)
        self.path = path
        self.setWindowTitle("Could not open the report")
        self.message = QLabel("No program on this computer opened the report. It is saved as:<br>"
                              f"<b>{html.escape(str(path))}</b><br><br>"
                              "Open it with a web browser, copy its path, or open its folder.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = QPushButton("Copy path")
        self.copy_button.clicked.connect(self.copy_path)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self.open_folder)
        close = QPushButton("Close")
        close.setDefault(True)
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.copy_button, self.folder_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

    def copy_path(self) -> None:
        QGuiApplication.clipboard().setText(str(self.path))
        self.message.setText(f"The path is copied:<br><b>{html.escape(str(self.path))}</b><br><br>"
                             "Paste it into a web browser's address bar.")

    def open_folder(self) -> None:
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path.parent))):
            self.accept()
        else:
            self.message.setText("The folder could not be opened either. The report is saved as:<br>"
                                 f"<b>{html.escape(str(self.path))}</b><br><br>"
                                 "Copy the path and open it in a web browser.")


def create_report(parent: QWidget | None, run_dir: Path) -> ReportDialog:
    """Open the report dialog for ``run_dir`` (non-modal) and return it."""
    dialog = ReportDialog(parent, run_dir)
    dialog.show()
    return dialog
