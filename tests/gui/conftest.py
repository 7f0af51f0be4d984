"""GUI test fixtures: offscreen Qt, a throw-away QSettings, the tiny test backbone, no modal dialogs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_ENGINE_FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "conftest.py"
_spec = importlib.util.spec_from_file_location("tl_engine_test_fixtures", _ENGINE_FIXTURES)
_engine_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_engine_fixtures)
tiny_backbone = _engine_fixtures.tiny_backbone
TINY_NAME = _engine_fixtures.TINY_NAME


@pytest.fixture(scope="session", autouse=True)
def engine_imported() -> None:
    """Pay the one-time import of torch, torchvision, timm and matplotlib once, not in the first test."""
    import matplotlib.backends.backend_qtagg  # noqa: F401
    import timm  # noqa: F401
    from torchvision.transforms import v2  # noqa: F401

    import tl_desktop.engine.evaluation.evaluate  # noqa: F401
    import tl_desktop.engine.training.trainer  # noqa: F401


@pytest.fixture
def settings(tmp_path: Path):
    """A QSettings in an INI file of its own, so tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def dialogs_shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Message boxes record their text instead of blocking; tests assert on the list."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []

    def record(box: QMessageBox) -> int:
        shown.append(f"{box.text()} | {box.informativeText()} | {box.detailedText()[:2000]}")
        return 0

    monkeypatch.setattr(QMessageBox, "exec", record)
    return shown


@pytest.fixture
def window(qtbot, settings, dialogs_shown, tiny_backbone, tmp_path: Path):
    """The main window with throw-away settings.

    Teardown closes it while the tiny backbone is still registered (fixtures end in reverse order):
    closing shuts down every task in the window, drops the signals they had not delivered and starts
    no task later, so nothing of this test reaches the next one. Then no worker may be left anywhere.
    """
    from tl_desktop.config import ModelConfig, RunConfig
    from tl_desktop.gui.main_window import MainWindow
    from tl_desktop.gui.stored_config import save_config
    from tl_desktop.gui.worker import leftover_workers

    save_config(settings, RunConfig(model=ModelConfig(backbone=TINY_NAME)))
    settings.setValue("folders/runs", str(tmp_path / "runs"))
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    close_window(qtbot, win)
    assert not leftover_workers()


def close_window(qtbot, win) -> None:
    """Close ``win`` for good: stop a training run first (closing asks about it), then close."""
    from tl_desktop.gui.tasks import Tasks

    if win.session.training:
        win.train_page.stop_training()
        qtbot.waitUntil(lambda: not win.session.training, timeout=60000)
    win.close()
    assert all(tasks.closed for tasks in win.findChildren(Tasks))


@pytest.fixture
def choose_tiny_model(qtbot):
    """``choose_tiny_model(win, epochs=2, trainable=1)``: select the tiny backbone and quick CPU settings."""
    return lambda win, epochs=2, trainable=1: _choose_tiny_model(qtbot, win, epochs, trainable)


@pytest.fixture
def scan_folder(qtbot):
    """``scan_folder(win, root)``: open ``root`` on the Data page and wait for the scan."""
    return lambda win, root: _scan_folder(qtbot, win, root)


def _choose_tiny_model(qtbot, win, epochs: int, trainable: int | str) -> None:
    page = win.model_page
    win.go_to(1)
    qtbot.waitUntil(lambda: page._loaded, timeout=30000)
    page.table.select(TINY_NAME)
    assert page.current_backbone() == TINY_NAME
    page.freeze.set_value(trainable)
    form = page.settings_form
    form.epochs.setValue(epochs)
    form.head_epochs.setValue(1)
    form.batch_size.setValue(4)
    form._set_combo(form.augmentation, "none")
    form._set_combo(form.device_box, "cpu")
    form.views.setValue(1)


def _scan_folder(qtbot, win, root: Path) -> None:
    with qtbot.waitSignal(win.session.scan_changed, timeout=30000):
        win.data_page.open_folder(str(root))
