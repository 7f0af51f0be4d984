"""``tl-desktop gui``: open the window (also what ``tl-desktop`` with no command does).

It sits beside the command line, above both front ends: the window is imported only when it opens,
so building the command-line parser never loads Qt.
"""

from __future__ import annotations

import argparse
import os
import sys

QUIT_AFTER_SHOW_ENV = "TL_DESKTOP_QUIT_AFTER_SHOW"


def add_gui_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gui", help="open the window (the default with no command)",
                                   description="Open the tl-desktop window.")
    parser.add_argument("--quit-after-show", action="store_true",
                        help=f"quit as soon as the window is shown (a start-up check; also {QUIT_AFTER_SHOW_ENV}=1)")
    parser.set_defaults(run=open_window)


def open_window(args: argparse.Namespace) -> int:
    """Start the Qt application; PySide6 is imported only here, after the X11 libraries it needs are found."""
    from tl_desktop.gui.xcb_check import xcb_problem

    problem = xcb_problem(os.environ)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from tl_desktop.gui.app import main

    return main(quit_after_show=args.quit_after_show or os.environ.get(QUIT_AFTER_SHOW_ENV) == "1")
