"""The per-user cache folder: where cached features live, how big it may grow, and how to clear it.

Layout::

    <cache dir>/                      TL_DESKTOP_CACHE_DIR, or the platform's per-user cache folder
      weights/                        downloaded backbone weights (engine/weights.py; never evicted)
      features/<key>/                 one entry per cache key: data files + entry.json
      images/                         decoded-image spill files of running trainings
      onnx/<key>/                     model files converted for onnxruntime (engine/caching/onnx_models.py)

Entries are written to a temporary folder and renamed into place, so a crash never leaves a
half-written entry under its key. A writer holds a lock on its temporary folder; folders (and spill
files) that a killed process left behind are swept when a store is opened, once they are an hour old
and nothing holds them, and ``info`` counts those still there. Each use touches ``entry.json``; when the total size of the
evictable kinds passes the limit, the least recently used entries go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_DIR_NAME = "tl_desktop"
CACHE_DIR_ENV = "TL_DESKTOP_CACHE_DIR"
CACHE_LIMIT_ENV = "TL_DESKTOP_CACHE_LIMIT_MB"
DEFAULT_LIMIT_BYTES = 4 * 1024**3
ENTRY_FILE = "entry.json"
EVICTABLE_KINDS = ("features", "images", "onnx")
LOCK_FILE = ".lock"
STALE_AFTER_S = 3600.0
# Raised whenever the pixels or features computed for the same inputs change (2: torch's uint8 resize).
KEY_FORMAT_VERSION = 2


class CacheError(OSError):
    """The cache folder cannot be used (no permission, disk full); the message names the folder."""


def user_cache_dir() -> Path:
    """The cache folder: ``TL_DESKTOP_CACHE_DIR`` if set, else the platform's per-user cache folder."""
    override = os.environ.get(CACHE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / APP_DIR_NAME / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / APP_DIR_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / APP_DIR_NAME


def cache_limit_bytes() -> int:
    """The size limit for evictable entries: ``TL_DESKTOP_CACHE_LIMIT_MB`` if set, else 4 GiB."""
    raw = os.environ.get(CACHE_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_LIMIT_BYTES
    try:
        megabytes = float(raw)
    except ValueError as exc:
        raise CacheError(f"{CACHE_LIMIT_ENV} must be a number of megabytes, got {raw!r}") from exc
    if megabytes < 0:
        raise CacheError(f"{CACHE_LIMIT_ENV} must be >= 0, got {raw!r}")
    return int(megabytes * 1024**2)


def files_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Hash of each file's absolute path, size and modification time, in order."""
    digest = hashlib.sha256()
    for path in paths:
        absolute = os.path.abspath(os.fspath(path))
        try:
            stat = os.stat(absolute)
            digest.update(f"{absolute}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{absolute}\0missing\n".encode())
    return digest.hexdigest()


def cache_key(components: Mapping[str, Any]) -> str:
    """A stable key for JSON-safe ``components``: any change to any component gives a new key."""
    canonical = json.dumps(
        {"format": KEY_FORMAT_VERSION, "components": dict(components)}, sort_keys=True, separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _file_size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class CacheEntryInfo:
    """One stored entry: its kind, key, size on disk, last use and what it describes."""

    kind: str
    key: str
    path: Path
    size_bytes: int
    last_used: float
    description: str


@dataclass(frozen=True)
class CacheInfo:
    """What the cache folder holds."""

    root: Path
    limit_bytes: int
    entries: list[CacheEntryInfo] = field(default_factory=list)
    other_bytes: dict[str, int] = field(default_factory=dict)
    unfinished: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def evictable_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries)

    def summary_lines(self) -> list[str]:
        """Human lines for the CLI and the window."""
        lines = [f"cache folder: {self.root}", f"size limit: {human_size(self.limit_bytes)}"]
        for kind in EVICTABLE_KINDS:
            entries = [e for e in self.entries if e.kind == kind]
            size = sum(e.size_bytes for e in entries)
            lines.append(f"{kind}: {len(entries)} entries, {human_size(size)}")
        if self.unfinished:
            size = sum(size for _path, size in self.unfinished)
            lines.append(f"unfinished writes: {len(self.unfinished)}, {human_size(size)} (left by a stopped or "
                         "killed run; removed once an hour old and no longer being written)")
        for name, size in sorted(self.other_bytes.items()):
            lines.append(f"{name}: {human_size(size)} (kept by 'clear' unless asked)")
        return lines


def human_size(num_bytes: float) -> str:
    """Bytes as "12.3 MB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GB"


class CacheStore:
    """Keyed entries (folders of files) under the cache folder, with LRU eviction past a size limit."""

    def __init__(self, root: Path | None = None, limit_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else user_cache_dir()
        self.limit_bytes = cache_limit_bytes() if limit_bytes is None else int(limit_bytes)
        self.sweep_stale()

    def unfinished(self) -> list[Path]:
        """Temporary entry folders and spill files: being written now, or left by a killed process."""
        found = []
        for kind in EVICTABLE_KINDS:
            with contextlib.suppress(OSError):
                found += [p for p in (self.root / kind).iterdir()
                          if p.name.startswith(".") and (p.name.endswith(".part") or p.name.startswith(".spill-"))]
        return sorted(found)

    def sweep_stale(self, older_than_s: float = STALE_AFTER_S) -> int:
        """Delete unfinished writes older than ``older_than_s`` that no live writer holds; return how many."""
        swept = 0
        for path in self.unfinished():
            try:
                if time.time() - path.stat().st_mtime < older_than_s or _held(path):
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                continue  # held open on Windows, or removed meanwhile
            swept += 1
        return swept

    def drop(self, kind: str, key: str) -> None:
        """Delete the entry for ``key`` (e.g. one found damaged)."""
        shutil.rmtree(self.entry_dir(kind, key), ignore_errors=True)

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def lookup(self, kind: str, key: str) -> Path | None:
        """The folder of a complete entry (touched as used now), or None."""
        folder = self.entry_dir(kind, key)
        marker = folder / ENTRY_FILE
        if not marker.is_file():
            return None
        with contextlib.suppress(OSError):
            os.utime(marker)
        return folder

    @contextlib.contextmanager
    def writing(self, kind: str, key: str, meta: Mapping[str, Any]) -> Iterator[Path]:
        """Yield a temporary folder to fill; on success it becomes the entry for ``key``."""
        parent = self.root / kind
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".part", dir=parent))
        except OSError as exc:
            raise CacheError(f"cannot write to the cache folder {parent}: {exc}") from exc
        lock = _hold(tmp)
        try:
            yield tmp
            lock.close()
            (tmp / LOCK_FILE).unlink(missing_ok=True)
            (tmp / ENTRY_FILE).write_text(json.dumps({"key": key, **meta}, default=str), encoding="utf-8")
            final = self.entry_dir(kind, key)
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            lock.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.evict(keep={(kind, key)})

    def entries(self) -> list[CacheEntryInfo]:
        """All complete evictable entries, least recently used first."""
        found = []
        for kind in EVICTABLE_KINDS:
            parent = self.root / kind
            if not parent.is_dir():
                continue
            for folder in parent.iterdir():
                marker = folder / ENTRY_FILE
                if folder.name.startswith(".") or not marker.is_file():
                    continue
                try:
                    meta = json.loads(marker.read_text(encoding="utf-8"))
                    last_used = marker.stat().st_mtime
                except (OSError, ValueError):
                    meta, last_used = {}, 0.0
                found.append(
                    CacheEntryInfo(kind, folder.name, folder, _tree_size(folder), last_used,
                                   str(meta.get("description", "")))
                )
        return sorted(found, key=lambda e: e.last_used)

    def evict(self, keep: Collection[tuple[str, str]] = ()) -> int:
        """Remove least recently used entries until the total fits the limit; return bytes freed."""
        entries = self.entries()
        total = sum(e.size_bytes for e in entries)
        freed = 0
        for entry in entries:
            if total - freed <= self.limit_bytes:
                break
            if (entry.kind, entry.key) in keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            freed += entry.size_bytes
        return freed

    def info(self) -> CacheInfo:
        """Entries and sizes, plus the size of non-evictable folders (downloaded weights)."""
        other = {}
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and child.name not in EVICTABLE_KINDS:
                    other[child.name] = _tree_size(child)
        unfinished = [(p, _tree_size(p) if p.is_dir() else _file_size(p)) for p in self.unfinished()]
        return CacheInfo(self.root, self.limit_bytes, self.entries(), other, unfinished)

    def clear(self, include_weights: bool = False) -> int:
        """Delete cached features and images (and downloaded weights if asked); return bytes freed."""
        names = list(EVICTABLE_KINDS) + (["weights"] if include_weights else [])
        freed = 0
        for name in names:
            folder = self.root / name
            if folder.is_dir():
                freed += _tree_size(folder)
                shutil.rmtree(folder, ignore_errors=True)
        return freed

    def scratch_file(self, kind: str, suffix: str) -> Path:
        """A new empty file under ``<root>/<kind>`` for spill data; the caller deletes it."""
        parent = self.root / kind
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".spill-{os.getpid()}-{int(time.time())}-", suffix=suffix,
                                        dir=parent)
        except OSError as exc:
            raise CacheError(f"cannot write to the cache folder {parent}: {exc}") from exc
        os.close(fd)
        return Path(name)


def _hold(folder: Path) -> Any:
    """Open and lock ``folder``'s lock file for as long as the returned handle stays open."""
    handle = open(folder / LOCK_FILE, "a+b")
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _held(path: Path) -> bool:
    """Whether a live process still writes ``path``: a folder's lock is taken, or a spill file's process runs."""
    if path.is_dir():
        try:
            import fcntl
        except ImportError:
            return False  # Windows: a folder with an open file cannot be deleted, so rmtree fails instead
        lock_file = path / LOCK_FILE
        if not lock_file.is_file():
            return False
        with open(lock_file, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
    pid = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
    if not pid.isdigit() or sys.platform.startswith("win"):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True
