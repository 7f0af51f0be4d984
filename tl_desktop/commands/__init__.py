"""Sub-commands of ``tl-desktop``: each module has ``add_parser(subparsers)``; the parser it adds
sets ``run`` (via ``set_defaults(run=...)``) to a function taking the parsed arguments."""

import argparse
import sys
from pathlib import Path

EXIT_OK = 0  # done
EXIT_FAILED = 1  # the work itself failed (training failed, nothing could be written)
EXIT_BAD_INPUT = 2  # a bad file, folder or setting; the message names it
EXIT_STOPPED = 130  # stopped with Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # stopped by SIGTERM (128 + SIGTERM), e.g. a cluster's scheduler


def tell(text: str) -> None:
    """A note for the user on stderr (stdout stays for results)."""
    print(text, file=sys.stderr)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (argparse then exits 2 naming the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_force_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true", help=f"replace {what} if it exists (never done without it)")


def refuses_to_replace(paths: list[Path], force: bool) -> bool:
    """True (after saying which file and how to go on) when a file in ``paths`` exists and ``force`` is off."""
    from tl_desktop.fileio import OverwriteRefused, refuse_to_replace

    try:
        refuse_to_replace(paths, force)
    except OverwriteRefused as exc:
        say_overwrite_refused(exc)
        return True
    return False


def say_overwrite_refused(exc: Exception) -> None:
    """The message for a refused overwrite: which file, and how to go on."""
    print(f"error: {exc}; choose another name or add --force to replace it", file=sys.stderr)
