"""Error and question dialogs: what went wrong, what to do next, details on demand."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, what: str, next_step: str, details: str = "") -> None:
    """Show a warning dialog: ``what`` went wrong, ``next_step`` says what to do; details are optional."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("tl-desktop")
    box.setText(what)
    box.setInformativeText(next_step)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


def ask_yes_no(parent: QWidget | None, title: str, question: str, detail: str = "",
               yes_text: str = "Yes", no_text: str = "Cancel") -> bool:
    """Ask a yes/no question with specific button labels; returns True for yes."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(question)
    if detail:
        box.setInformativeText(detail)
    yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
    no = box.addButton(no_text, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.exec()
    return box.clickedButton() is yes
