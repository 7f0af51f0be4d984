"""The ``tl-desktop`` command line. Each sub-command lives in ``tl_desktop.commands.<name>`` and
exposes ``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run`` so
that ``tl-desktop`` with no arguments shows the window quickly. ``gui`` comes from
``tl_desktop.window_command``, which alone imports the window (lazily), so this module never imports Qt."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tl_desktop import __version__
from tl_desktop.window_command import add_gui_parser

COMMAND_MODULES: tuple[str, ...] = (
    "train",
    "cv",
    "predict",
    "cache",
    "evaluate",
    "report",
    "export",
    "runs",
    "watch",
)
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
