"""Before the window opens on Linux/X11: do the system libraries Qt's xcb platform plugin needs load?

Without them Qt aborts with "could not load the Qt platform plugin" and, often, names a library other
than the one missing. This check runs before any Qt library is loaded (it only locates PySide6's files)
and lists every missing library with the package that provides it on Debian/Ubuntu. The packaging build
uses the same reading of ``ldd`` to fail when a library the plugin needs was not collected into the bundle.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PLUGIN_NAME = "libqxcb.so"
# Debian/Ubuntu packages whose names do not follow from the library's file name
_PACKAGES = {"libxcb-util.so.1": "libxcb-util1", "libX11-xcb.so.1": "libx11-xcb1", "libGL.so.1": "libgl1",
             "libEGL.so.1": "libegl1", "libfontconfig.so.1": "libfontconfig1", "libdbus-1.so.3": "libdbus-1-3"}
_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(not found|\S+)")


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin file, or None where this PySide6 has none."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / PLUGIN_NAME
        if plugin.is_file():
            return plugin
    return None


def uses_xcb(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will pick the xcb plugin: on Linux, when asked for it, or by default in an X11 session."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":", 1)[0].split(";", 1)[0] == "xcb"
    return bool(environ.get("DISPLAY")) and environ.get("XDG_SESSION_TYPE") != "wayland"


def ldd_libraries(ldd_output: str) -> dict[str, str | None]:
    """``ldd``'s answer as {library name: resolved path, or None when it was not found}."""
    found: dict[str, str | None] = {}
    for line in ldd_output.splitlines():
        match = _LDD_LINE.match(line)
        if match:
            found[match.group(1)] = None if match.group(2) == "not found" else match.group(2)
    return found


def run_ldd(library: Path, environ: Mapping[str, str] | None = None) -> dict[str, str | None] | None:
    """The libraries ``library`` needs (transitively) as ``ldd`` resolves them; None without ``ldd``."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    done = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=60,
                          env=None if environ is None else dict(environ))
    return ldd_libraries(done.stdout)


def missing_libraries(plugin: Path) -> list[str]:
    """The libraries ``plugin`` needs that the system cannot load (ldd, or the loader's own message)."""
    libraries = run_ldd(plugin)
    if libraries is not None:
        return sorted(name for name, path in libraries.items() if path is None)
    try:
        ctypes.CDLL(str(plugin))
    except OSError as exc:
        match = re.search(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
        return [match.group(1) if match else str(exc)]
    return []


def debian_package(library: str) -> str:
    """The Debian/Ubuntu package that provides ``library`` (``libxcb-cursor.so.0`` → ``libxcb-cursor0``)."""
    if library in _PACKAGES:
        return _PACKAGES[library]
    match = re.fullmatch(r"(lib[\w+-]+?)\.so\.(\d+).*", library)
    if not match:
        return library
    stem, version = match.group(1).lower(), match.group(2)
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def xcb_problem(environ: Mapping[str, str]) -> str | None:
    """What to tell the user when the window cannot open on X11 for missing libraries, or None."""
    if not uses_xcb(environ):
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    if not missing:
        return None
    packages = sorted({debian_package(name) for name in missing})
    return ("The window cannot open: Qt's X11 (xcb) display plugin needs system libraries that are not "
            f"installed: {', '.join(missing)}.\n"
            f"On Debian or Ubuntu install them with:\n    sudo apt-get install {' '.join(packages)}\n"
            "(on other systems, install the packages that provide these files), then start tl-desktop again. "
            "The command line (tl-desktop --help) works without them.")
