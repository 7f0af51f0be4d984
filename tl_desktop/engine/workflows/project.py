"""Projects: a folder holding its data source (an image folder or a label table), its settings and its runs.

Layout::

    <project>/
      project.json      kind, schema version, name, the data source, the settings (RunConfig without its data path)
      scan.json         the last scan's probes, so reopening rescans only what changed (project_scan.py)
      overrides.csv     the images the user marked mislabelled or excluded (engine/data/overrides.py)
      runs/             the project's training runs

The data source is stored relative to the project folder where that is possible (so a project copied
together with its images opens on another computer) and as an absolute path as well (so a project
moved away from images on a shared drive still finds them). When neither leads to the data,
:class:`DataFolderMissing` names the stored path; :func:`update_project` saves the new location.
Every write is atomic. Importing this module is cheap (no torch).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tl_desktop.config import ConfigError, DataConfig, RunConfig
from tl_desktop.engine.data.overrides import OVERRIDES_FILE
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.workflows.run_history import (
    RUNS_SUBFOLDER,
    RunHistoryError,
    run_date,
    run_folders,
)
from tl_desktop.fileio import atomic_write_text

PROJECT_FILE = "project.json"
PROJECT_KIND = "tl-desktop project"
PROJECT_SCHEMA = 1
RECENT_LIMIT = 10
DATA_KINDS = ("folder", "table")


class ProjectError(Exception):
    """A folder that is not a usable project (missing, foreign or damaged project.json, no permission)."""


class DataFolderMissing(ProjectError):
    """The project's images are not where it says; ``stored`` is the path it keeps for them."""

    def __init__(self, project: "Project", stored: str) -> None:
        what = "label table" if project.data_kind == "table" else "data folder"
        super().__init__(f"{what} missing: project {project.name!r} keeps its images in {stored}, which does not "
                         f"exist on this computer; choose where the {what} is now")
        self.project = project
        self.stored = stored


@dataclass(frozen=True)
class Project:
    """An opened project: where it is, what it is called, where its data are and its settings."""

    folder: Path
    name: str
    created: str = ""
    data_kind: str = ""  # "folder", "table", or "" before any data was chosen
    data_relative: str = ""  # POSIX path relative to the project folder ("" when there is none, e.g. another drive)
    data_absolute: str = ""
    settings: RunConfig = field(default_factory=RunConfig)

    @property
    def file(self) -> Path:
        return self.folder / PROJECT_FILE

    @property
    def runs_dir(self) -> Path:
        return self.folder / RUNS_SUBFOLDER

    @property
    def marks_file(self) -> Path:
        """The table of the user's marks (it exists once an image was marked)."""
        return self.folder / OVERRIDES_FILE

    def marks_setting(self) -> str:
        """``DataConfig.overrides`` for this project: its marks table, or "" before any image was marked."""
        return str(self.marks_file) if self.marks_file.is_file() else ""

    def data_base(self) -> Path | None:
        """The folder marks are relative to: the image folder, or the label table's folder (None without data)."""
        path = self.data_path()
        return None if path is None else (path.parent if self.data_kind == "table" else path)

    def data_path(self) -> Path | None:
        """Where the data are now (relative path first, then absolute), None without data; DataFolderMissing
        when neither exists."""
        if not self.data_kind:
            return None
        exists = Path.is_file if self.data_kind == "table" else Path.is_dir
        candidates = ([self.folder / self.data_relative] if self.data_relative else []) + (
            [Path(self.data_absolute)] if self.data_absolute else [])
        for candidate in candidates:
            if exists(candidate):
                return candidate.resolve()
        raise DataFolderMissing(self, self.data_absolute or str(self.folder / self.data_relative))

    def run_config(self) -> RunConfig:
        """The settings with the data source and the user's marks filled in and the project's runs folder as the
        output folder (DataFolderMissing when the data are not found)."""
        path = self.data_path()
        source = {} if path is None else {"labels" if self.data_kind == "table" else "root": str(path),
                                          "overrides": self.marks_setting()}
        return self.settings.replace(data=dataclasses.replace(self.settings.data, **source),
                                     out_dir=str(self.runs_dir))

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings.to_dict()
        settings.pop("out_dir", None)
        return {"kind": PROJECT_KIND, "schema_version": PROJECT_SCHEMA, "name": self.name, "created": self.created,
                "data": {"kind": self.data_kind, "relative": self.data_relative, "absolute": self.data_absolute}
                if self.data_kind else None,
                "settings": settings}


def create_project(folder: str | Path, config: RunConfig | None = None) -> Project:
    """Make ``folder`` a project (created if needed) with ``config``'s settings and data source; refuses a
    folder that already is one."""
    root = Path(folder).expanduser()
    if (root / PROJECT_FILE).exists():
        raise ProjectError(f"{root} already is a project (it has {PROJECT_FILE}): open it instead")
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} is a file, not a folder: choose a folder for the project")
    try:
        config = (config or RunConfig()).validate()
    except ConfigError as exc:
        raise ProjectError(f"the settings cannot be used for a project: {exc}") from exc
    check_data_place(root, config.data)
    try:
        (root / RUNS_SUBFOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create the project folder {root}: {exc.strerror or exc}") from exc
    root = root.resolve()
    project = Project(folder=root, name=root.name or str(root), created=datetime.now().isoformat(timespec="seconds"))
    return save_project(with_config(project, config))


def open_project(path: str | Path) -> Project:
    """The project in folder ``path`` (or its project.json); ProjectError says what is wrong with it."""
    given = Path(path).expanduser()
    root = given.parent if given.name == PROJECT_FILE and given.is_file() else given
    if not root.is_dir():
        raise ProjectError(f"{root} does not exist" if not root.exists() else f"{root} is not a folder")
    file = root / PROJECT_FILE
    if not file.is_file():
        raise ProjectError(f"{root} is not a project folder (it has no {PROJECT_FILE}): "
                           "choose New project… to make one there")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{file} is damaged (not valid JSON at line {exc.lineno}, column {exc.colno}): "
                           "restore it from a backup, or make a new project and choose the images again") from exc
    return _from_dict(root.resolve(), file, raw)


def _from_dict(root: Path, file: Path, raw: Any) -> Project:
    if not isinstance(raw, dict) or raw.get("kind") != PROJECT_KIND:
        raise ProjectError(f"{file} is not a tl-desktop project file (it lacks \"kind\": \"{PROJECT_KIND}\"); "
                           "choose a folder made with New project…")
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectError(f"{file} is damaged: its schema_version is {version!r}, not a whole number from 1")
    if version > PROJECT_SCHEMA:
        raise ProjectError(f"{file} was written by a newer tl-desktop (project schema {version}; this version "
                           f"reads schema {PROJECT_SCHEMA}): update tl-desktop to open it")
    data = raw.get("data") or {}
    texts = {key: data.get(key, "") if isinstance(data, dict) else None for key in ("kind", "relative", "absolute")}
    if not all(isinstance(value, str) for value in texts.values()) or texts["kind"] not in ("", *DATA_KINDS):
        raise ProjectError(f"{file} is damaged: its \"data\" entry must have a kind ({' or '.join(DATA_KINDS)}) "
                           "and text paths")
    try:
        settings = RunConfig.from_dict(raw.get("settings", {})).validate()
    except ConfigError as exc:
        raise ProjectError(f"{file} has settings that cannot be used: {exc}") from exc
    name = raw.get("name")
    return Project(folder=root, name=name if isinstance(name, str) and name.strip() else root.name,
                   created=str(raw.get("created", "")), data_kind=texts["kind"], data_relative=texts["relative"],
                   data_absolute=texts["absolute"], settings=_without_source(settings))


def check_data_place(folder: Path, data: DataConfig) -> None:
    """Refuse an image folder that holds the project folder: its runs/ would be read as a class of images."""
    if data.root and folder.expanduser().resolve().is_relative_to(Path(data.root).expanduser().resolve()):
        raise ProjectError(f"the project folder {folder} lies inside its image folder {data.root}, so its runs/ "
                           "would be read as images of a class; keep the project beside the images, or in the "
                           "folder above them")


def save_project(project: Project) -> Project:
    """Write project.json atomically; ProjectError when the folder cannot be written."""
    try:
        atomic_write_text(project.file, json.dumps(project.to_dict(), indent=2, sort_keys=True, ensure_ascii=False))
    except OSError as exc:  # DiskWriteError included
        raise ProjectError(f"cannot save the project {project.name!r}: {exc.strerror or exc}") from exc
    return project


def update_project(project: Project, config: RunConfig) -> Project:
    """``project`` with the settings and data source of ``config`` (a folder or table path, or none),
    saved when anything changed (a moved data folder's new place included)."""
    updated = with_config(project, config)
    return updated if updated == project else save_project(updated)


def with_config(project: Project, config: RunConfig) -> Project:
    """``project`` with the settings and data source of ``config`` (not saved)."""
    source = config.data.labels or config.data.root
    kind = ("table" if config.data.labels else "folder") if source else project.data_kind
    relative, absolute = (_source_paths(project.folder, source) if source
                          else (project.data_relative, project.data_absolute))
    return dataclasses.replace(project, data_kind=kind, data_relative=relative, data_absolute=absolute,
                               settings=_without_source(config))


def _without_source(config: RunConfig) -> RunConfig:
    """The settings as stored: no data path or marks (the project keeps them) and the default output folder name."""
    return config.replace(data=dataclasses.replace(config.data, root="", labels="", overrides=""),
                          out_dir=RunConfig().out_dir)


def _source_paths(folder: Path, source: str) -> tuple[str, str]:
    """(path relative to ``folder`` in POSIX form, or "" where there is none; absolute path)."""
    absolute = Path(source).expanduser().resolve()
    try:
        relative = Path(os.path.relpath(absolute, folder)).as_posix()
    except ValueError:  # another drive on Windows
        relative = ""
    return relative, str(absolute)


def latest_run(project: Project) -> Path | None:
    """The project's newest run that has a model file, or None."""
    try:
        complete = [path for path in run_folders(project.runs_dir) if RunFolder(path).is_complete()]
    except RunHistoryError:  # no runs/ folder (yet)
        return None
    dated = [(run_date(path), path) for path in complete]
    return max(dated, key=lambda item: (item[0] or datetime.min, item[1].name))[1] if dated else None


def recent_after_opening(recent: list[str], folder: str | Path) -> list[str]:
    """The recent-projects list with ``folder`` first, without repeats, at most RECENT_LIMIT long."""
    first = str(Path(folder).expanduser().resolve())
    return [first, *[path for path in recent if path != first]][:RECENT_LIMIT]

