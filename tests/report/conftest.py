"""Report fixtures: one tiny real run (tiny test backbone, trained 2 epochs) shared by a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_engine = _load("tl_report_engine_fixtures", _ROOT / "engine" / "conftest.py")
_top = _load("tl_report_top_fixtures", _ROOT / "conftest.py")
make_images = _top._make_image_folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed run of the tiny CNN on three synthetic classes; the backbone stays registered meanwhile."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("report_run")
    _engine.register_tiny_backbone(base)
    root = make_images(base, classes={"blight": 10, "healthy": 10, "rust": 8}, size=40)
    yield _engine.train_tiny_run(root, base / "runs")
    unregister_backbone(_engine.TINY_NAME)


@pytest.fixture(scope="module")
def external_folder(tiny_run: Path) -> Path:
    """Images from 'another site': two of the run's classes only."""
    return make_images(tiny_run.parent.parent / "external", classes={"blight": 3, "healthy": 3}, size=52)
