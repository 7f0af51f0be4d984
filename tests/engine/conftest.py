"""Shared engine fixtures: a tiny CNN backbone registered through the real registry code path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tl_desktop.engine.data.preprocess import Preprocessing
from tl_desktop.engine.models.backbones import register_backbone, unregister_backbone
from tl_desktop.engine.models.builders import BackboneParts
from tl_desktop.engine.models.specs import BackboneSpec

TINY_NAME = "tiny_cnn"
TINY_CHANNELS = 16


def _conv_block(c_in: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, TINY_CHANNELS, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(TINY_CHANNELS), nn.ReLU())


def build_tiny_cnn() -> BackboneParts:
    """3 conv blocks (16 channels, stride 2) + average pool + a 10-class 'pretrained' classifier."""
    source = nn.Sequential(_conv_block(3), _conv_block(TINY_CHANNELS), _conv_block(TINY_CHANNELS),
                           nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), nn.Linear(TINY_CHANNELS, 10))
    return BackboneParts(blocks=list(source[:3]), pool=source[3], classifier=source[4], source=source)


TINY_SPEC = BackboneSpec(
    name=TINY_NAME, title="Tiny CNN (tests)", family="test", num_blocks=3,
    preprocessing=Preprocessing(32, 36, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear"),
    block_names=("conv1", "conv2", "conv3"), feature_dim=TINY_CHANNELS, num_params=5_136, weights_mb=0.02,
    weights_filename="tiny_cnn-test.safetensors", weights_url="", weights_sha256="", license="Apache-2.0",
    is_transformer=False, description="Three 16-channel conv blocks; only for fast tests.",
)


def register_tiny_backbone(folder: Path) -> BackboneSpec:
    """Register "tiny_cnn" with deterministic 'pretrained' weights (saved in ``folder``) that resolve as
    'bundled'; the caller unregisters it (``unregister_backbone(TINY_NAME)``)."""
    from safetensors.torch import save_file

    weights_path = folder / TINY_SPEC.weights_filename
    torch.manual_seed(1234)
    save_file({k: v.contiguous() for k, v in build_tiny_cnn().source.state_dict().items()}, str(weights_path))
    register_backbone(TINY_SPEC, build_tiny_cnn, bundled=lambda: weights_path)
    return TINY_SPEC


def train_tiny_run(images: Path, out_dir: Path) -> Path:
    """A completed run of the (registered) tiny CNN on the class folders in ``images``: head first, then the
    last block, 2 epochs, a quarter of the images each for validation and test. Returns its run folder."""
    from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from tl_desktop.engine.training.trainer import Trainer

    config = RunConfig(data=DataConfig(root=str(images), val_fraction=0.25, test_fraction=0.25),
                       model=ModelConfig(backbone=TINY_NAME, trainable_blocks=1, dropout=0.0),
                       train=TrainConfig(epochs=2, head_epochs=1, batch_size=4, early_stopping_patience=0),
                       out_dir=str(out_dir))
    result = Trainer(config).fit()
    assert result.status == "completed", result
    return Path(result.run_dir)


@pytest.fixture
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> BackboneSpec:
    """Register "tiny_cnn" with deterministic 'pretrained' weights that resolve as 'bundled'; unregister after."""
    yield register_tiny_backbone(Path(tmp_path_factory.mktemp("tiny_weights")))
    unregister_backbone(TINY_NAME)
