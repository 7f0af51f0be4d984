"""Start the window: a QApplication, the main window, and nothing heavy before it is visible."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QWidget

from tl_desktop.gui.worker import Worker, start_worker, stop_all_workers
from tl_desktop.resources import resource_path

APP_NAME = "tl-desktop"


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (existing one reused), with organisation names QSettings uses."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(APP_NAME)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(QIcon(str(resource_path("icons/app.png"))))
    app.aboutToQuit.connect(stop_all_workers)
    return app


def warm_up_imports() -> Worker:
    """Import the engine (torch, timm) in the background once the window shows, so the first
    click on Model or Train does not wait for it."""

    def imports(ctx: object) -> None:
        import matplotlib.backends.backend_qtagg  # noqa: F401
        import timm  # noqa: F401
        from torchvision.transforms import v2  # noqa: F401

        import tl_desktop.engine.evaluation.evaluate  # noqa: F401
        import tl_desktop.engine.models.backbones  # noqa: F401
        import tl_desktop.engine.training.trainer  # noqa: F401

    return start_worker(imports, "warm-up")


def _quit_when_exposed(app: QApplication, window: QWidget) -> None:
    """Say so once the window is really on screen (exposed), then quit: the start-up check."""
    handle = window.windowHandle()
    if handle is not None and handle.isExposed():
        print("tl-desktop: window shown", flush=True)
        app.quit()
    else:
        QTimer.singleShot(10, lambda: _quit_when_exposed(app, window))


def main(argv: Sequence[str] | None = None, settings: QSettings | None = None, quit_after_show: bool = False) -> int:
    """Open the window and run the event loop; returns the exit code.

    ``quit_after_show`` quits as soon as the window has been shown (packaging smoke tests)."""
    app = create_application(argv)
    from tl_desktop.gui.main_window import MainWindow

    window = MainWindow(settings)
    window.show()
    if quit_after_show:
        _quit_when_exposed(app, window)
    else:
        QTimer.singleShot(500, warm_up_imports)
    return app.exec()
