"""The ``tl-desktop`` command line. Each sub-command lives in ``tl_desktop.commands.<name>`` and
exposes ``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run`` so
that ``tl-desktop`` with no arguments shows the window quickly. ``gui`` is defined here: the command
line is the one place that knows both front ends."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tl_desktop import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "train",
    "predict",
    "cache",
    "evaluate",
    "report",
    "export",
)
QUIT_AFTER_SHOW_ENV = "TL_DESKTOP_QUIT_AFTER_SHOW"


def add_gui_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gui", help="open the window (the default with no command)",
                                   description="Open the tl-desktop window.")
    parser.add_argument("--quit-after-show", action="store_true",
                        help=f"quit as soon as the window is shown (a start-up check; also {QUIT_AFTER_SHOW_ENV}=1)")
    parser.set_defaults(run=open_window)


def open_window(args: argparse.Namespace) -> int:
    """Start the Qt application; PySide6 is imported only here."""
    from tl_desktop.gui.app import main

    return main(quit_after_show=args.quit_after_show or os.environ.get(QUIT_AFTER_SHOW_ENV) == "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tl-desktop",
        description="Train image classifiers by transfer learning on your own workstation. "
        "With no command, the window opens.",
    )
    parser.add_argument("--version", action="version", version=f"tl-desktop {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="train, evaluate, export and predict on a small synthetic image set (offline, a minute "
        "or two), print each step's result and time, and exit with status 0 when everything works",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"tl_desktop.commands.{module_name}").add_parser(subparsers)
    add_gui_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tl-desktop`` console script."""
    from tl_desktop.engine.runtime.allocator import reuse_freed_memory

    reuse_freed_memory()  # before any thread starts, so every thread shares the tuned heap
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.self_test:
        from tl_desktop.selftest import run_self_test

        return run_self_test()
    if args.command is None:
        args = build_parser().parse_args(["gui"])
    return int(args.run(args))
