"""The Train page's runs that live elsewhere: "Follow a run folder…" (a run another process writes,
e.g. a torchrun job, shown live as if it trained here, then Results, Export and Report as for a local
run) and "Prepare for a server…" (a run's config.json plus the exact torchrun command).

Following is a background task around the engine's :func:`~tl_desktop.engine.workflows.watch.follow_run`:
the file is read off the GUI thread (a shared drive can stall), and its events reach the page's
``on_event`` exactly as a local run's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from tl_desktop.config import ConfigError
from tl_desktop.engine.training.events import Message
from tl_desktop.fileio import OverwriteRefused
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import PathPicker
from tl_desktop.gui.worker import QtRelay

if TYPE_CHECKING:
    from tl_desktop.engine.workflows.watch import Followed
    from tl_desktop.gui.pages.base import Page

FOLLOW_TEXT = "Follow a run folder…"


class RunsElsewhere(QWidget):
    """The buttons (and the following task) for runs trained on another machine; ``page`` is the Train
    page, whose view shows the followed run."""

    def __init__(self, page: Page) -> None:
        super().__init__()
        self.page = page
        self.follow_button = QPushButton(FOLLOW_TEXT)
        self.follow_button.setToolTip("Watch a run another computer or a torchrun job writes (e.g. on a shared "
                                      "drive): live curves and log, then Results, Export and Report")
        self.follow_button.clicked.connect(lambda: self.follow())
        self.stop_button = QPushButton("Stop following")
        self.stop_button.setToolTip("Stop watching the run folder; the run itself goes on")
        self.stop_button.clicked.connect(self.stop_following)
        self.stop_button.hide()
        self.server_button = QPushButton("Prepare for a server…")
        self.server_button.setToolTip("Write this run's config.json and the torchrun command that trains it on "
                                      "a GPU server or a cluster")
        self.server_button.clicked.connect(self.prepare_for_server)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for button in (self.follow_button, self.stop_button, self.server_button):
            layout.addWidget(button)
        layout.addStretch(1)
        self.worker = None

    # ----- following --------------------------------------------------------------------------------
    def follow(self, folder: str | None = None) -> None:
        """Follow ``folder`` (asked for when None): a run folder, or a runs folder a job will write to."""
        page = self.page
        if page.session.training or page.busy("follow"):
            return
        folder = folder or QFileDialog.getExistingDirectory(self, "Choose a run folder (or the folder a job "
                                                                  "writes its runs to)", page.out_dir.path())
        if not folder:
            return
        from tl_desktop.engine.workflows.watch import follow_run

        page.reset_view()

        def task(ctx):
            relay = QtRelay(ctx)
            return follow_run(folder, relay.on_event, ctx.stop,
                              on_waiting=lambda text: ctx.emit(Message("info", text)))

        self.worker = page.run_task(task, "follow", on_event=page.on_event, on_success=self._followed,
                                    on_done=self._done, error_title="The run folder could not be followed.",
                                    error_hint="Choose a run folder, or the folder a job writes its runs to.")
        if self.worker is None:
            return
        page.start_button.setEnabled(False)
        self.follow_button.setEnabled(False)
        self.stop_button.show()
        page.plan.setText(f"Following {folder}: this window shows the run as it is written; the run itself "
                          "trains elsewhere.")
        page.status.emit("Following a run folder…")

    def stop_following(self) -> None:
        if self.worker is not None and self.worker.running:
            self.worker.stop()

    def _followed(self, followed: Followed) -> None:
        """The run ended: it becomes the current run, for Results, Export and Report."""
        result = followed.fit_result()
        self.page.session.set_run(result.run_dir if result.model_path else None, result)
        self.page.run_finished.emit(result.status)

    def _done(self) -> None:
        self.worker = None
        self.stop_button.hide()
        self.follow_button.setEnabled(True)
        if not self.page.session.training:
            self.page.start_button.setEnabled(True)
        self.page.status.emit("Stopped following the run folder." if not self.page.status_of_run
                              else "The followed run ended.")

    # ----- a run for a server ------------------------------------------------------------------------
    def prepare_for_server(self) -> None:
        """Ask where and how many processes, then write config.json and the torchrun command there."""
        from tl_desktop.engine.workflows.watch_server import prepare_server_job

        page = self.page
        config = page.session.config.replace(out_dir=page.out_dir.path() or page.session.config.out_dir)
        form = ServerJobDialog(self, config.data.labels or config.data.root, config.out_dir)
        if form.exec() != QDialog.DialogCode.Accepted:
            return
        settings = form.values()
        try:
            try:
                job = prepare_server_job(config, **settings)
            except OverwriteRefused:
                existing = [Path(settings["folder"]) / name for name in ("config.json", "train_on_server.sh")]
                if not dialogs.confirm_replace(self, [p for p in existing if p.exists()]):
                    return
                job = prepare_server_job(config, **settings, replace=True)
        except (ConfigError, OSError) as exc:
            page.show_error(f"The files for the server could not be written: {exc}",
                            "Choose another folder or other settings, then try again.")
            return
        box = QMessageBox(self)
        box.setWindowTitle("Prepared for a server")
        box.setText(f"Wrote {job.config_file.name} and {job.script_file.name} in {job.config_file.parent}.")
        box.setInformativeText("Copy the folder to the server, then run there (in that folder):\n\n"
                               f"{job.command}\n\nFollow the run with “{FOLLOW_TEXT}” on its runs folder.")
        box.exec()


class ServerJobDialog(QDialog):
    """Where to write the job, how many processes, and where the images and runs are on the server."""

    def __init__(self, parent: QWidget, images: str, runs: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prepare for a server")
        self.folder = PathPicker("Folder for config.json and the command")
        self.processes = QSpinBox()
        self.processes.setRange(1, 64)
        self.processes.setToolTip("Processes per node: one per GPU (or a few CPU processes)")
        self.nodes = QSpinBox()
        self.nodes.setRange(1, 256)
        self.images = QLineEdit(images)
        self.runs = QLineEdit(runs)
        form = QFormLayout(self)
        form.addRow("Write to:", self.folder)
        form.addRow("Processes per node (GPUs):", self.processes)
        form.addRow("Nodes:", self.nodes)
        form.addRow("Images on the server:", self.images)
        form.addRow("Runs folder on the server:", self.runs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        if not self.folder.path():
            dialogs.show_error(self, "Choose a folder for the files first.", "Pick it with Browse….")
            return
        super().accept()

    def values(self) -> dict:
        return {"folder": self.folder.path(), "nproc_per_node": self.processes.value(),
                "nnodes": self.nodes.value(), "server_data": self.images.text().strip(),
                "server_runs": self.runs.text().strip()}
