"""Find the application's resource files (icons) from source, from an installed wheel and in the
frozen app.

The files live in this package's folder (``tl_desktop/resources/``), so they travel with the code:
an installed wheel carries them as package data, and the PyInstaller spec copies them to the same
place inside the bundle (``sys._MEIPASS/tl_desktop/resources``), where this module's ``__file__``
points when frozen. One call works everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path


def is_frozen() -> bool:
    """True when running from a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def resources_dir() -> Path:
    """The folder holding the application's resource files."""
    return Path(__file__).resolve().parent


def resource_path(relative: str | Path) -> Path:
    """Absolute path of a resource file, e.g. ``resource_path("icons/app.png")``.

    Raises ``FileNotFoundError`` naming the folder searched when the file is not there, so a
    broken install says what is missing instead of failing later with an empty icon.
    """
    relative = Path(relative)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"resource paths are relative to the resources folder, got {relative}")
    path = resources_dir() / relative
    if not path.exists():
        raise FileNotFoundError(f"resource {relative.as_posix()!r} not found in {resources_dir()}")
    return path
