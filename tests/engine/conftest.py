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


@pytest.fixture
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> BackboneSpec:
    """Register "tiny_cnn" with deterministic 'pretrained' weights that resolve as 'bundled'; unregister after."""
    from safetensors.torch import save_file

    weights_path = Path(tmp_path_factory.mktemp("tiny_weights")) / TINY_SPEC.weights_filename
    torch.manual_seed(1234)
    save_file({k: v.contiguous() for k, v in build_tiny_cnn().source.state_dict().items()}, str(weights_path))
    register_backbone(TINY_SPEC, build_tiny_cnn, bundled=lambda: weights_path)
    yield TINY_SPEC
    unregister_backbone(TINY_NAME)
