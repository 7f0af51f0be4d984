"""``tl-desktop gui``: open the window (also what ``tl-desktop`` with no command does)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gui", help="open the window (the default with no command)",
                                   description="Open the tl-desktop window.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start the Qt application; PySide6 is imported only here."""
    from tl_desktop.gui.app import main

    return main()
