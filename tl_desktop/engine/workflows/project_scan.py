"""A project's scan record: the last scan's probes (each file's size, modification time, content digest and
header facts) in ``scan.json``, so reopening a project shows its data without decoding every image again.
Only files that are new or changed (by size and modification time) are decoded; files gone are dropped.

Paths in the record are relative to the data folder (a table's folder), so a data folder that moved, or a
project copied with its images, still uses it. The record is a cache: when it is missing, damaged or
written by another version, the scan simply decodes every file and writes a new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.config import DataConfig, RunConfig
from tl_desktop.engine.data.images import ImageProperties
from tl_desktop.engine.data.scanning import Probe, ProbeMemo, ProgressFn
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.workflows.project import (
    DataFolderMissing,
    Project,
    ProjectError,
    check_data_place,
    update_project,
    with_config,
)
from tl_desktop.fileio import atomic_write_text

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import ScanResult

RECORD_FILE = "scan.json"
RECORD_KIND = "tl-desktop scan record"
RECORD_VERSION = 1
_FACT_FIELDS = tuple(f.name for f in dataclasses.fields(ImageProperties))


@dataclass(frozen=True)
class ProjectScan:
    """A scan made for a project: the project as saved after it, the scan, and how many files were
    taken from the record (``reused``) or decoded (``decoded``); ``problem`` says what could not be saved
    (a read-only project folder): the scan itself is still good."""

    project: Project
    scan: ScanResult
    reused: int
    decoded: int
    problem: str = ""


def scan_project(project: Project, config: RunConfig, progress: ProgressFn | None = None,
                 stop: StopToken | None = None) -> ProjectScan:
    """Scan ``config``'s data for ``project``, reusing the record when the data are the project's own; then
    save the record and make ``config`` (settings and data source) the project's."""
    from tl_desktop.engine.data.dataset import scan_dataset

    check_data_place(project.folder, config.data)
    base = data_base(config.data)
    memo = load_memo(project, base) if _is_project_source(project, config.data) else ProbeMemo()
    scan = scan_dataset(config.data, progress, stop, memo=memo)
    updated, problems = with_config(project, config), []
    for save in (lambda: save_memo(project, base, memo), lambda: update_project(project, config)):
        try:
            save()
        except ProjectError as exc:
            problems.append(str(exc))
    return ProjectScan(updated, scan, memo.reused, memo.decoded, "; ".join(problems))


def data_base(data: DataConfig) -> Path:
    """The folder record paths are relative to: the image folder, or the label table's folder."""
    return Path(data.labels).expanduser().resolve().parent if data.labels else Path(data.root).expanduser().resolve()


def _is_project_source(project: Project, data: DataConfig) -> bool:
    source = data.labels or data.root
    try:
        stored = project.data_path()
    except DataFolderMissing:
        return False
    return stored is not None and bool(source) and Path(source).expanduser().resolve() == stored


def load_memo(project: Project, base: Path) -> ProbeMemo:
    """The record's probes with paths under ``base``; an empty memo when there is no usable record."""
    try:
        raw = json.loads((project.folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return ProbeMemo()
    if not isinstance(raw, dict) or raw.get("kind") != RECORD_KIND or raw.get("version") != RECORD_VERSION \
            or not isinstance(raw.get("files"), dict):
        return ProbeMemo()
    probes = {}
    for key, entry in raw["files"].items():
        probe = _probe(entry)
        if probe is not None:
            probes[os.path.normpath(os.path.join(base, key))] = probe
    return ProbeMemo(probes)


def save_memo(project: Project, base: Path, memo: ProbeMemo) -> None:
    """Write the memo's probes as the project's record (atomically); ProjectError when it cannot be written."""
    files = {_key(path, base): [p.size, p.mtime_ns, p.digest, dataclasses.asdict(p.facts)]
             for path, p in memo.probes.items()}
    text = json.dumps({"kind": RECORD_KIND, "version": RECORD_VERSION, "files": files}, ensure_ascii=False)
    try:
        atomic_write_text(project.folder / RECORD_FILE, text)
    except OSError as exc:
        raise ProjectError(f"cannot save the scan record of project {project.name!r}: {exc.strerror or exc}") from exc


def _key(path: str, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form, or absolute when it lies elsewhere (a table's image)."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return path


def _probe(entry: Any) -> Probe | None:
    """A record entry [size, mtime_ns, digest, facts] as a Probe; None when it is malformed."""
    if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], dict)):
        return None
    size, mtime_ns, digest, facts = entry
    if not (isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(digest, str)) \
            or set(facts) != set(_FACT_FIELDS):
        return None
    return Probe(size, mtime_ns, digest, ImageProperties(**facts))
