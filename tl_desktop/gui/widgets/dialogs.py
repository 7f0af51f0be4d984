"""Error and question dialogs (what went wrong, what to do next, details on demand), and the one way every
save in the window avoids replacing a user's file unasked: a Save-as dialog that proposes a free name, and a
question before anything that exists is replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from tl_desktop.fileio import existing_files, free_path, free_paths

Companions = Callable[[Path], list[Path]]  # the other files a save to a path also writes (e.g. beside it)


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


def _names(paths: Sequence[Path], shown: int = 3) -> str:
    names = [p.name for p in paths[:shown]]
    if len(paths) > shown:
        return f"{', '.join(names)} and {len(paths) - shown} more"
    return " and ".join(names) if len(names) <= 2 else f"{', '.join(names[:-1])} and {names[-1]}"


def _exist_text(existing: Sequence[Path]) -> str:
    return f"{_names(existing)} already {'exist' if len(existing) > 1 else 'exists'} in {existing[0].parent}."


def confirm_replace(parent: QWidget | None, existing: Sequence[Path]) -> bool:
    """Ask before replacing ``existing`` files (nothing to ask when empty); True when they may be replaced."""
    if not existing:
        return True
    them = "them" if len(existing) > 1 else "it"
    return ask_yes_no(parent, "Replace files?", _exist_text(existing),
                      f"Replace {them} with the new file{'s' if len(existing) > 1 else ''}? "
                      "The old content cannot be recovered.", yes_text="Replace")


def with_suffix(chosen: Path, suffix: str) -> Path:
    """The name the user typed, ending in ``suffix`` (added when missing, lower-cased when typed otherwise)."""
    if chosen.suffix.lower() == suffix:
        return chosen.with_suffix(suffix)
    return chosen.with_name(chosen.name + suffix)


def ask_save_path(parent: QWidget | None, caption: str, proposed: Path, file_filter: str, suffix: str,
                  companions: Companions | None = None) -> Path | None:
    """A Save-as dialog that starts at a free name like ``proposed``; the chosen name ends in ``suffix``, and
    replacing it (or its ``companions``) is asked first. None when the user cancelled."""
    start = free_path(proposed, companions)
    # Asked below rather than by the dialog, which knows neither the suffix added nor the companions.
    chosen, _ = QFileDialog.getSaveFileName(parent, caption, str(start), file_filter,
                                            options=QFileDialog.Option.DontConfirmOverwrite)
    if not chosen:
        return None
    target = with_suffix(Path(chosen), suffix)
    existing = existing_files([target, *(companions(target) if companions else [])])
    return target if confirm_replace(parent, existing) else None


def choose_targets(parent: QWidget | None, targets: Sequence[Path]) -> list[Path] | None:
    """Where a save of several files goes: ``targets`` when none exists; else, as the user chooses, the same
    names (replacing), free names numbered alike (``metrics-2.json``…), or None (cancelled)."""
    existing = existing_files(targets)
    if not existing:
        return list(targets)
    renamed = free_paths(targets)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Replace files?")
    box.setText(_exist_text(existing))
    box.setInformativeText(f"Keep them and save the new files with new names ({_names(renamed)}), or replace "
                           "them? Replaced content cannot be recovered.")
    keep = box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole)
    replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.exec()
    if box.clickedButton() is keep:
        return renamed
    return list(targets) if box.clickedButton() is replace else None
