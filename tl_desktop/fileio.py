"""Atomic file writes: a temp file in the same folder, flushed and fsynced, then renamed over."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator


class DiskWriteError(OSError):
    """Writing a file failed (disk full, no permission); the previous file, if any, is untouched."""


class OverwriteRefused(Exception):
    """A file that exists would be replaced without the user's say-so; the message names it."""


def refuse_to_replace(paths: list[Path], allowed: bool) -> None:
    """Raise OverwriteRefused naming the first of ``paths`` that exists, unless replacing is ``allowed``."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not allowed:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OverwriteRefused(f"{existing[0]} exists{more}")


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
