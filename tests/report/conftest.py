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
    import torch
    from safetensors.torch import save_file

    from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from tl_desktop.engine.models.backbones import (
        register_backbone,
        unregister_backbone,
    )
    from tl_desktop.engine.training.trainer import Trainer

    base = tmp_path_factory.mktemp("report_run")
    weights = base / _engine.TINY_SPEC.weights_filename
    torch.manual_seed(1234)
    save_file({k: v.contiguous() for k, v in _engine.build_tiny_cnn().source.state_dict().items()}, str(weights))
    register_backbone(_engine.TINY_SPEC, _engine.build_tiny_cnn, bundled=lambda: weights)
    root = make_images(base, classes={"blight": 10, "healthy": 10, "rust": 8}, size=40)
    config = RunConfig(data=DataConfig(root=str(root), val_fraction=0.25, test_fraction=0.25),
                       model=ModelConfig(backbone=_engine.TINY_NAME, trainable_blocks=1, dropout=0.0),
                       train=TrainConfig(epochs=2, head_epochs=1, batch_size=4, early_stopping_patience=0),
                       out_dir=str(base / "runs"))
    result = Trainer(config).fit()
    assert result.status == "completed", result
    yield result.run_dir
    unregister_backbone(_engine.TINY_NAME)


@pytest.fixture(scope="module")
def external_folder(tiny_run: Path) -> Path:
    """Images from 'another site': two of the run's classes only."""
    return make_images(tiny_run.parent.parent / "external", classes={"blight": 3, "healthy": 3}, size=52)
