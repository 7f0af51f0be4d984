"""Build the tl-desktop bundle with PyInstaller, archive it and print a size report.

    python packaging/build.py                 # dist/tl-desktop/ (+ .app on macOS) and the archive
    python packaging/build.py --no-archive    # the folder only
    python packaging/build.py --report-only   # sizes of an existing build

The archive is ``dist/tl-desktop-<version>-<platform>.tar.gz`` on Linux and ``.zip`` on Windows and
macOS (macOS zips the .app with ``ditto`` so its symbolic links survive).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "tl_desktop.spec"
APP_NAME = "tl-desktop"
MIN_FREE_GB = 15  # a Linux build with CUDA torch needs ~5 GB of work files plus ~4 GB of bundle


def app_version() -> str:
    """The version in tl_desktop/__init__.py, read without importing the package."""
    for line in (ROOT / "tl_desktop" / "__init__.py").read_text(encoding="utf-8").splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("no __version__ in tl_desktop/__init__.py")


def bundle_dir(dist: Path) -> Path:
    """The built folder: the .app on macOS, the one-folder build elsewhere."""
    return dist / f"{APP_NAME}.app" if sys.platform == "darwin" else dist / APP_NAME


def executable(dist: Path, console: bool = True) -> Path:
    """The frozen executable; on Windows ``console`` picks the variant that prints to a terminal."""
    if sys.platform == "win32":
        return dist / APP_NAME / (f"{APP_NAME}-console.exe" if console else f"{APP_NAME}.exe")
    if sys.platform == "darwin":
        return dist / f"{APP_NAME}.app" / "Contents" / "MacOS" / APP_NAME
    return dist / APP_NAME / APP_NAME


def run_pyinstaller(dist: Path, work: Path) -> float:
    """Run PyInstaller on the spec; return the seconds it took."""
    free_gb = shutil.disk_usage(dist.parent if not dist.exists() else dist).free / 1e9
    if free_gb < MIN_FREE_GB:
        print(f"warning: only {free_gb:.0f} GB free; a build may need about {MIN_FREE_GB} GB", flush=True)
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    print("running:", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def uncollected_xcb_libraries(dist: Path) -> list[str]:
    """The libraries Qt's xcb plugin needs that the bundle neither holds nor may take from the system
    (PyInstaller's own list of system libraries, e.g. libc, libGL, libxcb), resolved as the bundle's
    loader does: with its library folder first on the search path."""
    from PyInstaller.depend.dylib import include_library

    from tl_desktop.gui.xcb_check import PLUGIN_NAME, run_ldd

    internal = (bundle_dir(dist) / "_internal").resolve()
    plugin = internal / "PySide6" / "Qt" / "plugins" / "platforms" / PLUGIN_NAME
    if not plugin.is_file():
        return [f"{PLUGIN_NAME} itself (not in {plugin.parent})"]
    libraries = run_ldd(plugin, {"LD_LIBRARY_PATH": str(internal), "PATH": os.environ.get("PATH", "")})
    if libraries is None:
        raise SystemExit("packaging: ldd is needed to check the xcb plugin's libraries")
    problems = [f"{name} (not found)" for name, path in libraries.items() if path is None]
    problems += [f"{name} (would come from the system: {path})" for name, path in libraries.items()
                 if path is not None and include_library(name) and not Path(path).resolve().is_relative_to(internal)]
    return sorted(problems)


def check_xcb_libraries(dist: Path) -> None:
    """Stop the build (Linux) when a library the window's xcb plugin needs is missing from the bundle."""
    if not sys.platform.startswith("linux"):
        return
    problems = uncollected_xcb_libraries(dist)
    if problems:
        raise SystemExit("packaging: the bundle lacks libraries Qt's xcb plugin needs (install them on the build "
                         "machine, e.g. apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1, and build "
                         "again):\n  " + "\n  ".join(problems))
    print("xcb plugin: every library it needs is in the bundle or a system library", flush=True)


def make_archive(dist: Path) -> Path:
    """Compress the bundle: tar.gz on Linux (keeps permissions and links), zip elsewhere."""
    source = bundle_dir(dist)
    stem = dist / f"{APP_NAME}-{app_version()}-{platform.system().lower()}-{platform.machine().lower()}"
    if sys.platform.startswith("linux"):
        archive = stem.with_name(stem.name + ".tar.gz")
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(source, arcname=source.name)
    elif sys.platform == "darwin":
        archive = stem.with_name(stem.name + ".zip")
        subprocess.run(["ditto", "-c", "-k", "--keepParent", str(source), str(archive)], check=True)
    else:
        archive = Path(shutil.make_archive(str(stem), "zip", root_dir=dist, base_dir=source.name))
    return archive


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links are not followed or counted twice)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def largest_components(bundle: Path, count: int = 10) -> list[tuple[str, int]]:
    """Sizes grouped two folder levels deep under the bundle's library folder (e.g. ``torch/lib``)."""
    internal = next((p for p in (bundle / "_internal", bundle / "Contents") if p.is_dir()), bundle)
    sizes: dict[str, int] = defaultdict(int)
    for path in internal.rglob("*"):
        if path.is_file() and not path.is_symlink():
            parts = path.relative_to(internal).parts
            sizes["/".join(parts[:2])] += path.lstat().st_size
    return sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:count]


def print_report(dist: Path, build_seconds: float | None, archive: Path | None) -> None:
    """Build time, bundle and archive sizes, and the largest components."""
    bundle = bundle_dir(dist)
    if not bundle.is_dir():
        raise SystemExit(f"no bundle at {bundle}: build it first")
    if build_seconds is not None:
        print(f"build time: {build_seconds / 60:.1f} min")
    print(f"bundle: {bundle} — {tree_size(bundle) / 1e9:.2f} GB on disk")
    if archive is not None:
        print(f"archive: {archive} — {archive.stat().st_size / 1e9:.2f} GB")
    print("largest components:")
    for name, size in largest_components(bundle):
        print(f"  {size / 1e6:9.1f} MB  {name}")


def main(argv: list[str] | None = None) -> int:
    """Build (unless --report-only), archive (unless --no-archive) and report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist", help="where the bundle goes")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work files")
    parser.add_argument("--no-archive", action="store_true", help="skip the compressed archive")
    parser.add_argument("--report-only", action="store_true", help="only report on an existing build")
    args = parser.parse_args(argv)
    dist = args.dist_dir.resolve()
    seconds = None
    if not args.report_only:
        dist.mkdir(parents=True, exist_ok=True)
        seconds = run_pyinstaller(dist, args.work_dir.resolve())
        check_xcb_libraries(dist)
    archive = None
    if not args.no_archive and not args.report_only:
        started = time.perf_counter()
        archive = make_archive(dist)
        print(f"archive written in {time.perf_counter() - started:.0f} s")
    print_report(dist, seconds, archive)
    print(f"run it: {executable(dist)} --self-test")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
