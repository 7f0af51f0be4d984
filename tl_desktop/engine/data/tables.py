"""Label tables: a CSV or TSV file with one row per image (``path,label``, optionally ``group`` and ``split``).

Paths are relative to the table's folder or absolute. Every problem is reported with its line number,
and all problems are collected before failing, so a user fixes the table in one pass. Extra columns
are kept: ``--group-by COLUMN`` may name any of them.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from tl_desktop.engine.data.images import is_supported_file
from tl_desktop.engine.data.scanning import SPLIT_DIR_NAMES, DataError

REQUIRED_COLUMNS = ("path", "label")
GROUP_COLUMN = "group"
SPLIT_COLUMN = "split"
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".txt"})
# A table this large is certainly not a label table (and would not fit in memory as one).
MAX_TABLE_BYTES = 200_000_000
_LISTED_LINES = 8


@dataclass(frozen=True)
class TableRow:
    """One image of the table: its line number (the header is line 1), absolute path, label, group, split."""

    line: int
    path: str
    label: str
    group: str = ""
    split: str = ""


@dataclass(frozen=True)
class LabelTable:
    """A checked label table; ``split`` values are "train", "val" or "test" when the table has that column."""

    path: str
    folder: str
    columns: list[str]
    rows: list[TableRow]
    has_split: bool = False
    group_column: str = ""
    notes: list[str] = field(default_factory=list)


class TableError(DataError):
    """A label table that cannot be used; ``problems`` holds every (line, text) found, in line order."""

    def __init__(self, table: str | Path, problems: list[tuple[int, str]]) -> None:
        self.table = str(table)
        self.problems = sorted(problems)
        line, text = self.problems[0]
        message = f"{table}, line {line}: {text}"
        rest = self.problems[1:]
        if rest:
            lines = ", ".join(str(n) for n, _ in rest[:_LISTED_LINES]) + (", ..." if len(rest) > _LISTED_LINES else "")
            message += f" ({len(rest)} more {'problem' if len(rest) == 1 else 'problems'}, on lines {lines})"
        super().__init__(message)


def is_table_file(path: str | Path) -> bool:
    """True for a file whose name says it is a table (.csv, .tsv, .tab, .txt)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def table_columns(path: str | Path) -> list[str]:
    """The column names of a table's header line (lower case); [] when it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline(1 << 16)
    except (OSError, UnicodeDecodeError):
        return []
    header = next(csv.reader([first], delimiter=_delimiter(Path(path), first)), [])
    return [name.strip().lower() for name in header if name.strip()]


def read_table(path: str | Path, group_column: str = "") -> LabelTable:
    """Read and check a label table; groups come from ``group_column`` (default: a ``group`` column if any).

    Raises DataError when the file cannot be read and TableError listing every bad line otherwise."""
    table = Path(path).expanduser()
    if not table.is_file():
        raise DataError(f"{table} does not exist" if not table.exists() else f"{table} is not a file")
    table = table.resolve()
    text = _read_text(table)
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(table, text)))
    numbered = [(n, [cell.strip() for cell in record]) for n, record in enumerate(records, start=1)
                if any(cell.strip() for cell in record)]
    if not numbered:
        raise TableError(table, [(1, "the table is empty; its first line must name the columns, e.g. path,label")])
    header_line, header = numbered[0]
    columns = [name.lower() for name in header]
    _check_header(table, header_line, columns, group_column)
    chosen_group = group_column.lower() if group_column else (GROUP_COLUMN if GROUP_COLUMN in columns else "")
    problems: list[tuple[int, str]] = []
    rows = [row for line, cells in numbered[1:]
            if (row := _row(table.parent, line, cells, columns, chosen_group, problems)) is not None]
    rows, notes = _drop_repeats(rows, problems)
    if not rows and not problems:
        problems.append((header_line, "the table names no images (it has a header line only)"))
    if problems:
        raise TableError(table, problems)
    return LabelTable(path=str(table), folder=str(table.parent), columns=columns, rows=rows,
                      has_split=SPLIT_COLUMN in columns, group_column=chosen_group, notes=notes)


def _read_text(table: Path) -> str:
    try:
        if table.stat().st_size > MAX_TABLE_BYTES:
            raise DataError(f"{table} is larger than {MAX_TABLE_BYTES // 1_000_000} MB: it is not a label table")
        return table.read_bytes().decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        line = table.read_bytes()[: exc.start].count(b"\n") + 1
        raise TableError(table, [(line, "the table is not UTF-8 text; save it as CSV (UTF-8)")]) from None
    except OSError as exc:
        raise DataError(f"{table} cannot be read: {exc.strerror or exc}") from None


def _delimiter(table: Path, text: str) -> str:
    """Tab for .tsv/.tab; otherwise what the header line uses (Excel writes ';' in some countries)."""
    if table.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    first = text.lstrip().partition("\n")[0]
    for delimiter in (",", "\t", ";"):
        if delimiter in first:
            return delimiter
    return ","


def _check_header(table: Path, line: int, columns: list[str], group_column: str) -> None:
    problems: list[tuple[int, str]] = []
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        problems.append((line, f"the header has no {' or '.join(repr(m) for m in missing)} column "
                               f"(it names {', '.join(repr(c) for c in columns)}); the first line must name "
                               "the columns, e.g. path,label"))
    repeated = sorted({name for name in columns if columns.count(name) > 1 and name})
    if repeated:
        problems.append((line, f"the header names {', '.join(repr(r) for r in repeated)} twice"))
    if group_column and group_column.lower() not in columns:
        problems.append((line, f"the table has no column {group_column!r} to take groups from "
                               f"(its columns: {', '.join(columns)})"))
    if problems:
        raise TableError(table, problems)


def _row(folder: Path, line: int, cells: list[str], columns: list[str], group_column: str,
         problems: list[tuple[int, str]]) -> TableRow | None:
    """One checked row, or None after adding its problems."""
    if len(cells) != len(columns):
        problems.append((line, f"has {len(cells)} fields, the header has {len(columns)} "
                               "(a comma inside a file name needs quotes around the name)"))
        return None
    values = dict(zip(columns, cells))
    found = len(problems)
    path = _image_path(folder, line, values["path"], problems)
    if not values["label"]:
        problems.append((line, "the label is empty"))
    split = ""
    if SPLIT_COLUMN in columns:
        split = SPLIT_DIR_NAMES.get(values[SPLIT_COLUMN].lower(), "")
        if not split:
            problems.append((line, f"unknown split {values[SPLIT_COLUMN]!r}; use train, val or test"))
    if len(problems) > found or path is None:
        return None
    return TableRow(line=line, path=path, label=values["label"], group=values.get(group_column, ""), split=split)


def _image_path(folder: Path, line: int, text: str, problems: list[tuple[int, str]]) -> str | None:
    """The absolute, normalised path a cell names, or None after adding the problem."""
    if not text:
        problems.append((line, "the path is empty"))
        return None
    path = os.path.normpath(os.path.join(folder, os.path.expanduser(text)))
    if not os.path.lexists(path):
        problems.append((line, f"file {text!r} not found (looked for {path})"))
    elif os.path.isdir(path):
        problems.append((line, f"{text!r} is a folder; each row names one image file"))
    elif not is_supported_file(path):
        problems.append((line, f"{text!r} is not a supported image file"))
    else:
        return path
    return None


def _drop_repeats(rows: list[TableRow], problems: list[tuple[int, str]]) -> tuple[list[TableRow], list[str]]:
    """One row per file: a repeat that agrees is dropped (with a note), one that disagrees is a problem."""
    first: dict[str, TableRow] = {}
    kept: list[TableRow] = []
    repeats = 0
    for row in rows:
        seen = first.get(row.path)
        if seen is None:
            first[row.path] = row
            kept.append(row)
        elif seen.label != row.label:
            problems.append((row.line, f"{_name(row)} is also on line {seen.line} with another label "
                                       f"({seen.label!r} there, {row.label!r} here)"))
        elif (seen.group, seen.split) != (row.group, row.split):
            problems.append((row.line, f"{_name(row)} is also on line {seen.line} with another group or split"))
        else:
            repeats += 1
    notes = [f"{repeats:,} rows repeat a file listed earlier with the same label; each file is used once."
             ] if repeats else []
    return kept, notes


def _name(row: TableRow) -> str:
    return repr(os.path.basename(row.path))
