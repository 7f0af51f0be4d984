"""Entry script of the frozen application (PyInstaller runs this file as ``__main__``)."""

import multiprocessing

if __name__ == "__main__":
    # A frozen app that starts worker processes (DataLoader workers on Windows and macOS spawn)
    # would otherwise start a second copy of itself for every worker.
    multiprocessing.freeze_support()
    from tl_desktop.cli import main

    raise SystemExit(main())
