"""Find candidate image files under a data folder and check each one by decoding it.

File-system details live here: hidden files, ``__MACOSX``, unreadable folders, symlink loops, the
train/val/test folder names, and files that are not plain files (a pipe would block a read forever,
a link to a device would never end) or links that lead out of the data folder: those are reported,
never read, and every read stops at the size the file had when it was listed. Each image is decoded (draft-reduced) and hashed once on a small thread
pool; failures become ``(path, reason)`` entries, never exceptions. The same decode gathers each file's
header facts (:class:`images.ImageProperties`) for the shortcut audit, so no file is opened twice.
With a :class:`ProbeMemo` of an earlier scan, a file whose size and modification time are unchanged is
not decoded again: its earlier probe is reused.
A file whose name has no image extension is an image only when it carries the DICOM preamble.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tl_desktop.engine.data.images import (
    ImageLoadError,
    ImageProperties,
    is_supported_file,
    probe_properties,
)
from tl_desktop.engine.runtime.stop import StopRequested, StopToken

ProgressFn = Callable[[int, int], None]

# Decoding releases the GIL, so two threads nearly halve the scan time without starving the window.
PROBE_WORKERS = 2
SPLIT_DIR_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_IGNORED_NAMES = frozenset({"__macosx", "@eadir", "$recycle.bin", "system volume information", "thumbs.db", "desktop.ini"})


class DataError(Exception):
    """The data cannot be used at all; the message names the folder and says what to fix."""


@dataclass(frozen=True)
class FoundImage:
    """A candidate image file: its class folder name and, for the folders layout, its split."""

    path: str
    class_name: str
    split: str | None


@dataclass
class FolderListing:
    """What one folder of class sub-folders holds."""

    split: str | None
    class_names: list[str] = field(default_factory=list)
    found: list[FoundImage] = field(default_factory=list)
    ignored: int = 0
    loose_images: int = 0


@dataclass(frozen=True)
class Probe:
    """What decoding one file found, with the size and modification time the file had when it was read."""

    size: int
    mtime_ns: int
    digest: str
    facts: ImageProperties


@dataclass
class ProbeMemo:
    """The good probes of the last scan by path; a scan given one reuses unchanged files and records
    what it read (files gone since are dropped). ``reused`` and ``decoded`` count the last scan's files."""

    probes: dict[str, Probe] = field(default_factory=dict)
    reused: int = 0
    decoded: int = 0


def existing_folder(root: str | Path) -> Path:
    """``root`` as an absolute folder path, or DataError saying what is wrong with it."""
    if not str(root):
        raise DataError("no data folder was given")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist")
    return folder.resolve()


def subfolders(folder: Path, unreadable: list[tuple[str, str]]) -> list[Path]:
    """Visible sub-folders, sorted; an unreadable folder is reported, not fatal."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        unreadable.append((str(folder), f"folder cannot be read: {_os_reason(exc)}"))
        return []
    return [Path(e.path) for e in entries if _visible(e.name) and _is_dir(e)]


def find_split_dirs(root: Path) -> dict[str, Path]:
    """The train/val/test folders when the root is laid out that way, else empty."""
    subdirs = subfolders(root, [])
    names = {d.name.lower(): d for d in subdirs}
    if "train" not in names:
        return {}
    others = [d.name for d in subdirs if d.name.lower() not in SPLIT_DIR_NAMES]
    if others:
        raise DataError(
            f"{root} mixes a train/ folder with other folders ({', '.join(others[:5])}): use either "
            "one sub-folder per class, or train/ and val/ (and test/) each holding one sub-folder per class"
        )
    found: dict[str, Path] = {}
    for lower, folder in sorted(names.items()):
        split = SPLIT_DIR_NAMES[lower]
        if split in found:
            raise DataError(f"{root} has two {split} folders ({found[split].name}/ and {folder.name}/): keep one")
        found[split] = folder
    return found


def find_class_images(folder: Path, split: str | None, unreadable: list[tuple[str, str]]) -> FolderListing:
    """Candidate images in each class sub-folder of ``folder``, plus what was left out."""
    listing = FolderListing(split=split)
    for class_dir in subfolders(folder, unreadable):
        listing.class_names.append(class_dir.name)
        files = sorted(walk_files(class_dir, unreadable))
        supported = [p for p in files if is_supported_file(p)]  # may read a preamble: once per file
        listing.found += [FoundImage(p, class_dir.name, split) for p in supported]
        listing.ignored += len(files) - len(supported)
    try:
        with os.scandir(folder) as entries:
            loose = [e.path for e in entries if _visible(e.name) and e.is_file()]
    except OSError:
        loose = []
    listing.loose_images = sum(1 for path in loose if is_supported_file(path))
    listing.ignored += len(loose)
    return listing


def walk_files(folder: Path, unreadable: list[tuple[str, str]]) -> list[str]:
    """Every visible file under ``folder`` (symlinked folders not followed, so no loops)."""
    files: list[str] = []

    def on_error(exc: OSError) -> None:
        unreadable.append((str(exc.filename), f"folder cannot be read: {_os_reason(exc)}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        files += [os.path.join(dirpath, f) for f in filenames if _visible(f)]
    return files


def probe_all(
    paths: list[str], unreadable: list[tuple[str, str]], progress: ProgressFn | None, stop: StopToken | None,
    root: Path | None = None, properties: dict[str, ImageProperties] | None = None, memo: ProbeMemo | None = None,
) -> dict[str, tuple[tuple[int, int], str]]:
    """Decode and hash every file on a small thread pool; return path -> ((w, h), digest) for the good ones.

    Only plain files are read; with ``root``, a link that leads outside it is reported instead. Each good
    file's header facts go into ``properties`` when it is given. With ``memo``, files unchanged since the
    memo's scan (same size and modification time) are not read again, and the memo is updated.
    """
    stamps: dict[str, tuple[int, int]] = {}
    for path in paths:
        reason = not_a_plain_file(path, root, stamps)
        if reason:
            unreadable.append((path, reason))
    paths = [path for path in paths if path in stamps]
    earlier = memo.probes if memo is not None else {}
    known = {path: earlier[path] for path in paths
             if path in earlier and (earlier[path].size, earlier[path].mtime_ns) == stamps[path]}
    total = len(paths)
    if progress:
        progress(0, total)
    found: dict[str, Probe] = {}
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="tl-scan") as pool:
        futures = {path: pool.submit(_probe_one, path, stop) for path in paths if path not in known}
        try:
            for done, path in enumerate(paths, start=1):
                outcome = known[path] if path in known else futures[path].result()
                if isinstance(outcome, str):
                    unreadable.append((path, outcome))
                else:
                    found[path] = outcome if isinstance(outcome, Probe) else Probe(*stamps[path], outcome[1], outcome[0])
                if progress and (path not in known or done == total):
                    progress(done, total)
                if stop is not None:
                    stop.raise_if_requested()
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    if memo is not None:
        memo.probes, memo.reused, memo.decoded = found, len(known), total - len(known)
    if properties is not None:
        properties.update({path: probe.facts for path, probe in found.items()})
    return {path: ((probe.facts.width, probe.facts.height), probe.digest) for path, probe in found.items()}


def _probe_one(path: str, stop: StopToken | None) -> tuple[ImageProperties, str] | str:
    """(header facts with the upright size, content digest), or the reason the file is unusable."""
    if stop is not None and stop.requested:
        raise StopRequested()
    try:
        digest = _file_digest(path)
    except OSError as exc:
        return f"cannot be read: {_os_reason(exc)}"
    try:
        return probe_properties(path), digest
    except ImageLoadError as exc:
        return exc.reason


def not_a_plain_file(path: str, root: Path | None = None, stamps: dict[str, tuple[int, int]] | None = None) -> str:
    """Why ``path`` must not be read (empty when it is a plain file inside ``root``; then its size and
    modification time go into ``stamps`` when it is given)."""
    try:
        info = os.stat(path)  # follows links: a link to a pipe or a device is one
    except OSError as exc:
        return f"cannot be read: {_os_reason(exc)}"
    if not stat.S_ISREG(info.st_mode):
        return "not a plain file (a pipe, device or socket); skipped"
    if root is not None and os.path.islink(path):
        target = Path(path).resolve()
        if not target.is_relative_to(Path(root).resolve()):
            return f"a link to {target}, outside the data folder; skipped"
    if stamps is not None:
        stamps[path] = (info.st_size, info.st_mtime_ns)
    return ""


def _file_digest(path: str) -> str:
    hasher = hashlib.blake2b()
    with open(path, "rb") as handle:
        left = os.fstat(handle.fileno()).st_size  # a file that grows while it is read is read as it was
        while left > 0:
            chunk = handle.read(min(1 << 20, left))
            if not chunk:
                break
            hasher.update(chunk)
            left -= len(chunk)
    return hasher.hexdigest()


def _visible(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in _IGNORED_NAMES


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _os_reason(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or type(exc).__name__).lower()
