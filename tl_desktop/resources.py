"""Find the application's resource files (icons, example config) from source and in the frozen app.

From a source checkout the files live in ``<repo>/resources``. In a PyInstaller bundle the spec
copies that folder to ``<bundle>/_internal/resources`` (``sys._MEIPASS``), so one call works in both.
"""

from __future__ import annotations

import sys
from pathlib import Path

RESOURCES_DIRNAME = "resources"


def is_frozen() -> bool:
    """True when running from a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resources_dir() -> Path:
    """The folder holding the application's resource files."""
    if is_frozen():
        return Path(sys._MEIPASS) / RESOURCES_DIRNAME  # type: ignore[attr-defined]
    return Path(__file__).resolve().parent.parent / RESOURCES_DIRNAME


def resource_path(relative: str | Path) -> Path:
    """Absolute path of a resource file, e.g. ``resource_path("icons/app.png")``.

    Raises ``FileNotFoundError`` naming the folder searched when the file is not there, so a
    broken bundle says what is missing instead of failing later with an empty icon.
    """
    relative = Path(relative)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"resource paths are relative to the resources folder, got {relative}")
    path = resources_dir() / relative
    if not path.exists():
        raise FileNotFoundError(f"resource {relative.as_posix()!r} not found in {resources_dir()}")
    return path
