"""Report fixtures: one tiny real run (tiny test backbone, trained 2 epochs) shared by a module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_runs, make_image_folder) -> Path:
    """A completed run of the tiny CNN on three synthetic classes; the backbone stays registered meanwhile."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("report_run")
    tiny_runs.register_tiny_backbone(base)
    root = make_image_folder(base, classes={"blight": 10, "healthy": 10, "rust": 8}, size=40)
    yield tiny_runs.train_tiny_run(root, base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


@pytest.fixture(scope="module")
def external_folder(tiny_run: Path, make_image_folder) -> Path:
    """Images from 'another site': two of the run's classes only."""
    return make_image_folder(tiny_run.parent.parent / "external", classes={"blight": 3, "healthy": 3}, size=52)
