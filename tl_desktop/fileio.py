"""Atomic file writes (a temp file in the same folder, flushed and fsynced, then renamed over), and the
rules for never replacing a user's file unasked: refuse, or propose names that are free."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO


class DiskWriteError(OSError):
    """Writing a file failed (disk full, no permission); the previous file, if any, is untouched."""


class OverwriteRefused(Exception):
    """A file that exists would be replaced without the user's say-so; the message names it."""


def refuse_to_replace(paths: list[Path], allowed: bool) -> None:
    """Raise OverwriteRefused naming the first of ``paths`` that exists, unless replacing is ``allowed``."""
    existing = existing_files(paths)
    if existing and not allowed:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OverwriteRefused(f"{existing[0]} exists{more}")


def existing_files(paths: Sequence[Path]) -> list[Path]:
    """The ones of ``paths`` that exist (a save would replace them)."""
    return [Path(p) for p in paths if Path(p).exists()]


def numbered_path(path: Path, number: int) -> Path:
    """``report.pdf`` → ``report-2.pdf`` (number 2); number 1 is the path itself."""
    path = Path(path)
    return path if number <= 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


def free_paths(paths: Sequence[Path], companions: Callable[[Path], list[Path]] | None = None,
               limit: int = 10000) -> list[Path]:
    """``paths`` if none of them (nor their ``companions``) exists, else the same names numbered alike
    (``-2``, ``-3``…) with the first number that makes every one of them new."""
    def taken(names: list[Path]) -> bool:
        return any(existing_files([name, *(companions(name) if companions else [])]) for name in names)

    for number in range(1, limit + 1):
        names = [numbered_path(p, number) for p in paths]
        if not taken(names):
            return names
    raise OverwriteRefused(f"no free name like {Path(paths[0]).name} in {Path(paths[0]).parent}")


def free_path(path: Path, companions: Callable[[Path], list[Path]] | None = None) -> Path:
    """``path`` if it (and its ``companions``) is new, else ``stem-2.suffix``, ``stem-3.suffix``…"""
    return free_paths([path], companions)[0]


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file object; on success it replaces ``path`` atomically, on failure nothing changes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise DiskWriteError(exc.errno, f"could not write {path}: {exc.strerror or exc}") from exc
    try:
        _chmod_like_new_file(fd)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _replace_with_retry(tmp_name, path)
    except OSError as exc:
        _remove_quietly(tmp_name)
        raise DiskWriteError(exc.errno, f"could not write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp_name)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _chmod_like_new_file(fd: int) -> None:
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask).
    if os.name != "posix":
        return
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def _replace_with_retry(src: str, dst: Path, attempts: int = 5) -> None:
    # On Windows a virus scanner can hold the destination open for a moment.
    for attempt in range(attempts):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _remove_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(name)
