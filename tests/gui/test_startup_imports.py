"""The window appears before torch is imported: loading the main window's modules (every page and widget it
builds) must not pull in torch or matplotlib, which cost seconds in a frozen app."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "timm", "matplotlib")


def _heavy_after(statement: str) -> list[str]:
    code = (
        "import sys\n"
        f"{statement}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return [name for name in done.stdout.strip().split(",") if name]


@pytest.mark.parametrize(
    "module",
    [
        "tl_desktop.gui.main_window",
        "tl_desktop.gui.pages.predict_page",
        "tl_desktop.gui.widgets.predictions_table",
        "tl_desktop.gui.report_action",
    ],
)
def test_window_modules_import_without_torch(module):
    assert _heavy_after(f"import {module}") == []


def test_the_check_sees_a_heavy_import():
    # The probe itself must notice torch when a module does load it.
    assert "torch" in _heavy_after("import tl_desktop.engine.workflows.prediction")
