"""Marking images from the Results page: "mislabelled, its right class is X" or "leave it out of training".

The marks go into the open project's ``overrides.csv`` (engine/data/overrides.py); the user's image files
are never touched. Marks need a project, because they belong to its images and apply to its next run:
without one the user is asked to create or open one. Every change emits ``Session.marks_changed``, so the
Data page rescans (the next run trains on the marks) and every mark bar and list shows the new state.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QWidget,
)

from tl_desktop.engine.data.overrides import (
    EXCLUDE,
    RELABEL,
    Mark,
    OverridesError,
    add_mark,
    mark_key,
    new_mark,
    read_marks,
    remove_marks,
)
from tl_desktop.engine.workflows.project import ProjectError
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs

NO_PROJECT = ("Marks are kept in a project, and this window has none open.",
              "Choose File ▸ New project… for these images (or File ▸ Open project…), then mark the image again: "
              "the mark is saved in the project's overrides.csv and used by its next run.")


class Marker:
    """Reads and changes the open project's marks; every problem becomes a dialog on ``parent``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _place(self, parent: QWidget | None, path: str | None = None) -> tuple[Path, str] | None:
        """(marks file, key of ``path``) of the open project, or None after saying why there is none."""
        project = self.session.project
        if project is None:
            dialogs.show_error(parent, *NO_PROJECT)
            return None
        try:
            base = project.data_base()
        except ProjectError as exc:
            dialogs.show_error(parent, f"The project's images cannot be found: {exc}.",
                               "Choose where the images are now on the Data page, then mark again.")
            return None
        if base is None:
            dialogs.show_error(parent, "The project has no images yet.", "Choose its images on the Data page first.")
            return None
        key = "" if path is None else mark_key(path, base)
        if path is not None and Path(key).is_absolute():
            dialogs.show_error(parent, f"{Path(path).name} is not one of the project's images (they are in {base}).",
                               "Open the project these images belong to, then mark the image there.")
            return None
        return project.marks_file, key

    def marks(self, parent: QWidget | None = None) -> list[Mark]:
        """Every mark of the open project (none without one; a damaged table is reported)."""
        project = self.session.project
        if project is None:
            return []
        try:
            return read_marks(project.marks_file)
        except OverridesError as exc:
            if parent is not None:
                dialogs.show_error(parent, str(exc), "Fix the table in a text editor, or undo every mark.")
            return []

    def mark_of(self, path: str) -> Mark | None:
        """The mark of image ``path`` in the open project, if any."""
        return self.marks_of([path]).get(path)

    def marks_of(self, paths: list[str]) -> dict[str, Mark]:
        """The marks of those of ``paths`` that are marked in the open project (the table is read once)."""
        project = self.session.project
        try:
            base = project.data_base() if project is not None else None
        except ProjectError:
            return {}
        if base is None:
            return {}
        marks = {m.path: m for m in self.marks()}
        return {path: marks[key] for path in paths if (key := mark_key(path, base)) in marks}

    def mark(self, parent: QWidget | None, path: str, action: str, label: str = "", note: str = "") -> bool:
        """Mark image ``path`` (relabel to ``label``, or exclude); False when it could not be saved."""
        place = self._place(parent, path)
        if place is None:
            return False
        file, key = place
        return self._change(parent, lambda: add_mark(file, new_mark(key, action, label, note)))

    def undo(self, parent: QWidget | None, keys: set[str] | None = None) -> bool:
        """Undo the marks of ``keys`` (as stored), or every mark when None."""
        place = self._place(parent)
        return place is not None and self._change(parent, lambda: remove_marks(place[0], keys))

    def undo_image(self, parent: QWidget | None, path: str) -> bool:
        """Undo the mark of image ``path``."""
        place = self._place(parent, path)
        return place is not None and self._change(parent, lambda: remove_marks(place[0], {place[1]}))

    def _change(self, parent: QWidget | None, change) -> bool:  # noqa: ANN001 - a callable writing the table
        try:
            change()
        except OverridesError as exc:
            dialogs.show_error(parent, str(exc), "Fix the table in a text editor, or undo every mark.")
            return False
        except OSError as exc:
            dialogs.show_error(parent, f"The mark could not be saved: {exc.strerror or exc}.",
                               "Check that the project folder can be written (not on a CD or a read-only share).")
            return False
        self.session.marks_changed.emit()
        return True


class MarkBar(QWidget):
    """The mark state of one image and the buttons to change it: Mislabelled… (the right class), Exclude, Undo."""

    def __init__(self, marker: Marker, classes: list[str]) -> None:
        super().__init__()
        self.marker = marker
        self.classes = list(classes)
        self.path: str | None = None
        self.true_class = ""
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.note = QLineEdit()
        self.note.setPlaceholderText("note (optional)")
        self.note.setToolTip("Why you marked it, saved with the mark (no patient names)")
        self.relabel_button = QPushButton("Mislabelled…")
        self.relabel_button.setToolTip("Its true class is another one: the next run trains it with the class you "
                                       "choose (the file stays where it is)")
        self.relabel_menu = QMenu(self)
        self.relabel_button.setMenu(self.relabel_menu)
        self.exclude_button = QPushButton("Exclude")
        self.exclude_button.setToolTip("Leave it out of the next run (blurred, wrong organ, not a sample…); "
                                       "the file stays where it is")
        self.exclude_button.clicked.connect(lambda: self._mark(EXCLUDE))
        self.undo_button = QPushButton("Undo mark")
        self.undo_button.clicked.connect(self._undo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state, 1)
        layout.addWidget(self.note)
        for button in (self.relabel_button, self.exclude_button, self.undo_button):
            layout.addWidget(button)
        marker.session.marks_changed.connect(self.refresh)
        marker.session.project_changed.connect(self.refresh)
        self.refresh()

    def set_image(self, path: str | None, true_class: str = "") -> None:
        """Show and act on the mark of image ``path`` (labelled ``true_class`` in the run)."""
        self.path, self.true_class = path, true_class
        self.relabel_menu.clear()
        for name in self.classes:
            if name != true_class:
                action = self.relabel_menu.addAction(f"Its right class is {name}")
                action.triggered.connect(lambda _checked=False, name=name: self._mark(RELABEL, name))
        self.refresh()

    def refresh(self) -> None:
        mark = self.marker.mark_of(self.path) if self.path else None
        for button in (self.relabel_button, self.exclude_button):
            button.setEnabled(self.path is not None)
        self.undo_button.setEnabled(mark is not None)
        if self.path is None:
            self.state.setText("Select an image to mark it.")
        elif mark is None:
            self.state.setText("Not marked. If its label is wrong, or it should not be used, mark it: "
                               "the next run follows your mark.")
        elif mark.action == EXCLUDE:
            self.state.setText("<b>Marked: excluded</b> — the next run leaves it out.")
        else:
            self.state.setText(f"<b>Marked: mislabelled, really {mark.label}</b> — the next run trains it as "
                               f"{mark.label}.")

    def _mark(self, action: str, label: str = "") -> None:
        if self.path is not None and self.marker.mark(self.window(), self.path, action, label, self.note.text()):
            self.note.clear()

    def _undo(self) -> None:
        if self.path is not None:
            self.marker.undo_image(self.window(), self.path)
