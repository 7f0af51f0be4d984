"""The user's marks on images: "this one is mislabelled, its right class is X" or "leave this one out".

Marks live in a small CSV table (``overrides.csv`` in a project folder) that a person can read and edit:
one row per image with the columns ``path`` (relative to the data folder, or to a label table's folder,
with ``/`` separators; absolute for an image outside it), ``action`` (``relabel`` or ``exclude``),
``label`` (the right class, for a relabel), ``when`` (local time of the mark) and ``note``. The scan applies
them before the split (:func:`apply_marks`), so the command line and the window train on the same images;
the user's image files are never moved, renamed or changed. Every write is atomic.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tl_desktop.engine.data.scanning import DataError, FoundImage
from tl_desktop.fileio import atomic_write_text

OVERRIDES_FILE = "overrides.csv"
COLUMNS = ("path", "action", "label", "when", "note")
RELABEL, EXCLUDE = "relabel", "exclude"
ACTIONS = (RELABEL, EXCLUDE)
_LISTED = 5


class OverridesError(DataError):
    """An overrides table that cannot be used; the message names the file (and line) and what to fix."""


@dataclass(frozen=True)
class Mark:
    """One image's mark: ``path`` as stored (see the module notes), the action, the right class for a relabel."""

    path: str
    action: str
    label: str = ""
    when: str = ""
    note: str = ""

    def describe(self) -> str:
        """'mislabelled, really <label>' or 'excluded', for lists and captions."""
        return f"mislabelled, really {self.label}" if self.action == RELABEL else "excluded"


@dataclass
class AppliedMarks:
    """What a scan did with the marks: (path, class before, class after) per relabelled image, the excluded
    paths, and the marks naming images the data no longer holds (moved or deleted; ignored)."""

    file: str = ""
    relabelled: list[tuple[str, str, str]] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def new_mark(key: str, action: str, label: str = "", note: str = "") -> Mark:
    """A mark made now (``when`` is the local time to the second)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return Mark(key, action, label if action == RELABEL else "", datetime.now().isoformat(timespec="seconds"),
                " ".join(note.split()))


def mark_key(path: str | Path, base: str | Path) -> str:
    """How ``path`` is stored in the table: relative to ``base`` with ``/`` separators, absolute outside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.path.abspath(base))).as_posix()
    except ValueError:
        return str(absolute)


def marks_file(setting: str | Path) -> Path:
    """The overrides table a setting names: the file itself, or ``overrides.csv`` in a (project) folder."""
    given = Path(setting).expanduser()
    file = given / OVERRIDES_FILE if given.is_dir() else given
    if not file.is_file():
        where = f"{given} has no {OVERRIDES_FILE} (no image was marked there)" if given.is_dir() \
            else f"the overrides file {given} does not exist"
        raise OverridesError(f"{where}: give the {OVERRIDES_FILE} of a project, or leave the setting out")
    return file.resolve()


def read_marks(file: str | Path) -> list[Mark]:
    """Every mark in ``file`` (none when it does not exist); OverridesError names the damaged line."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise OverridesError(f"cannot read the overrides file {path}: {getattr(exc, 'strerror', None) or exc}; "
                             "save it as UTF-8 text, or remove it to drop every mark") from exc
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise OverridesError(f"{path} is damaged ({exc}): fix it in a text editor, or remove it") from exc
    if not rows:
        return []
    header = [name.strip().lower() for name in rows[0]]
    missing = [name for name in ("path", "action") if name not in header]
    if missing:
        raise OverridesError(f"{path}, line 1: the header must name the columns {', '.join(COLUMNS)} "
                             f"(missing: {', '.join(missing)})")
    marks: dict[str, tuple[int, Mark]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        mark = Mark(values["path"], values["action"].lower(), values.get("label", ""), values.get("when", ""),
                    values.get("note", ""))
        problem = _row_problem(mark)
        if not problem and mark.path in marks:
            problem = f"{mark.path} is marked again (first on line {marks[mark.path][0]}): keep one of the two lines"
        if problem:
            raise OverridesError(f"{path}, line {line}: {problem}")
        marks[mark.path] = (line, mark)
    return [mark for _, mark in marks.values()]


def _row_problem(mark: Mark) -> str:
    if not mark.path:
        return "the path is empty"
    if mark.action not in ACTIONS:
        return f"the action is {mark.action!r}; it must be {' or '.join(ACTIONS)}"
    if mark.action == RELABEL and not mark.label:
        return f"{mark.path} is marked relabel without a label: write the right class in the label column"
    return ""


def write_marks(file: str | Path, marks: list[Mark]) -> None:
    """Write ``marks`` to ``file`` atomically (a table with only its header when there are none)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([m.path, m.action, m.label, m.when, m.note] for m in marks)
    atomic_write_text(Path(file), out.getvalue())


def add_mark(file: str | Path, mark: Mark) -> list[Mark]:
    """Add ``mark`` to ``file`` (replacing an earlier mark of the same image); returns every mark now."""
    marks = [m for m in read_marks(file) if m.path != mark.path] + [mark]
    write_marks(file, marks)
    return marks


def remove_marks(file: str | Path, paths: set[str] | None = None) -> list[Mark]:
    """Undo the marks of ``paths`` (every mark when None); returns the marks left."""
    marks = [] if paths is None else [m for m in read_marks(file) if m.path not in paths]
    write_marks(file, marks)
    return marks


def apply_marks(found: list[FoundImage], base: Path, classes: list[str], setting: str) -> tuple[list[FoundImage], AppliedMarks]:
    """``found`` with the marks of the table ``setting`` names applied (relabelled, excluded) and what was done;
    a relabel to a class the data do not have is refused with OverridesError."""
    if not setting:
        return found, AppliedMarks()
    file = marks_file(setting)
    marks = {mark.path: mark for mark in read_marks(file)}
    unknown = [m for m in marks.values() if m.action == RELABEL and m.label not in classes]
    if unknown:
        listed = "; ".join(f"{m.path} → {m.label!r}" for m in unknown[:_LISTED])
        raise OverridesError(
            f"{file}: {len(unknown)} image(s) are marked with a class these images do not have ({listed}); the "
            f"classes are {', '.join(repr(c) for c in classes)}. Correct the label column, or undo those marks")
    applied = AppliedMarks(file=str(file))
    kept: list[FoundImage] = []
    seen: set[str] = set()
    for image in found:
        key = mark_key(image.path, base)
        mark = marks.get(key)
        if mark is None:
            kept.append(image)
            continue
        seen.add(key)
        if mark.action == EXCLUDE:
            applied.excluded.append(key)
        elif mark.label != image.class_name:
            applied.relabelled.append((key, image.class_name, mark.label))
            kept.append(FoundImage(image.path, mark.label, image.split))
        else:
            kept.append(image)  # already in the class the mark gives (the folder was corrected meanwhile)
    applied.unmatched = sorted(set(marks) - seen)
    return kept, applied
