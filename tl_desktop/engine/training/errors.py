"""One description of a failure for every front end and every task: training, scanning, evaluating,
predicting, exporting. The command line prints it after "error:"; the window shows it in a dialog."""

from __future__ import annotations

from tl_desktop.config import ConfigError
from tl_desktop.engine.data.images import ImageLoadError
from tl_desktop.fileio import DiskWriteError


def describe_error(exc: BaseException) -> str:
    """One clear sentence for a user, whatever went wrong."""
    if isinstance(exc, ImageLoadError):
        return f"could not read image {exc.path}: {exc.reason}"
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:  # drop the "[Errno 28]" prefix, keep the file name
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "ran out of memory; try a smaller batch size or fewer trainable blocks"
    if "Original Traceback" in text:
        # Re-raised from a DataLoader worker process: the last line names the original error.
        name, _, detail = text.splitlines()[-1].partition(": ")
        if name.endswith("ImageLoadError"):
            return f"could not read image {detail}"
        return f"unexpected error ({name.rsplit('.', 1)[-1]}): {detail}"
    first_line = text.splitlines()[0] if text else ""
    if isinstance(exc, (DiskWriteError, ConfigError)) or type(exc).__module__.startswith("tl_desktop"):
        return first_line
    return f"unexpected error ({type(exc).__name__}): {first_line}"
