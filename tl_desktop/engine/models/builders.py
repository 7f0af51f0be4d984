"""Builders that cut each supported architecture into ordered blocks, a pool and its original classifier.

Every builder returns :class:`BackboneParts` whose modules are *shared* with the original model
(``source``), so a weights file written for the original architecture (torchvision or timm key names)
loads into ``source`` and thereby into the blocks. Running the blocks, then the pool, then the
classifier reproduces the original model's forward pass exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


@dataclass
class BackboneParts:
    """An architecture cut into blocks (input → output), a pool to (N, feature_dim) and its classifier."""

    blocks: list[nn.Module]
    pool: nn.Module
    classifier: nn.Linear
    source: nn.Module
    convert_state_dict: Callable[[StateDict], StateDict] | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.classifier.in_features)


def _seq(*modules: nn.Module) -> nn.Sequential:
    return nn.Sequential(*modules)


def resnet_parts(model: nn.Module) -> BackboneParts:
    """ResNet: [stem, layer1, layer2, layer3, layer4]."""
    stem = _seq(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    pool = _seq(model.avgpool, nn.Flatten(1))
    return BackboneParts(blocks, pool, model.fc, model)


def efficientnet_parts(model: nn.Module) -> BackboneParts:
    """torchvision EfficientNet: [stem, stage 1..7, final conv]."""
    blocks = list(model.features)
    pool = _seq(model.avgpool, nn.Flatten(1))
    return BackboneParts(blocks, pool, model.classifier[-1], model)


def _group_consecutive(modules: Sequence[nn.Module], key: Callable[[nn.Module], object]) -> list[nn.Module]:
    groups: list[list[nn.Module]] = []
    for module in modules:
        if groups and key(groups[-1][-1]) == key(module):
            groups[-1].append(module)
        else:
            groups.append([module])
    return [_seq(*group) for group in groups]


def mobilenet_v3_parts(model: nn.Module) -> BackboneParts:
    """MobileNetV3: [stem, stages (inverted residuals grouped by output width), final conv]."""
    features = list(model.features)
    stages = _group_consecutive(features[1:-1], key=lambda m: m.out_channels)
    blocks = [features[0], *stages, features[-1]]
    # The 960 → 1280 pre-logits layer is pretrained: it belongs to the pool, before the new head.
    pool = _seq(model.avgpool, nn.Flatten(1), model.classifier[0], model.classifier[1])
    return BackboneParts(blocks, pool, model.classifier[3], model)


def convnext_parts(model: nn.Module) -> BackboneParts:
    """ConvNeXt: [stem, stage 1, stage 2..4 each with the downsampling layer in front]."""
    f = list(model.features)
    blocks = [f[0], f[1], _seq(f[2], f[3]), _seq(f[4], f[5]), _seq(f[6], f[7])]
    pool = _seq(model.avgpool, model.classifier[0], model.classifier[1])
    return BackboneParts(blocks, pool, model.classifier[2], model)


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _densenet_keys(state_dict: StateDict) -> StateDict:
    """Rename 'norm.1'-style keys of torchvision's published DenseNet files (as torchvision does)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        match = _DENSENET_OLD_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def densenet_parts(model: nn.Module) -> BackboneParts:
    """DenseNet: [stem, dense block 1..3 each with its transition, dense block 4 + final norm]."""
    f = model.features
    blocks = [
        _seq(f.conv0, f.norm0, f.relu0, f.pool0),
        _seq(f.denseblock1, f.transition1),
        _seq(f.denseblock2, f.transition2),
        _seq(f.denseblock3, f.transition3),
        _seq(f.denseblock4, f.norm5, nn.ReLU()),
    ]
    pool = _seq(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return BackboneParts(blocks, pool, model.classifier, model, convert_state_dict=_densenet_keys)


class VitEmbedding(nn.Module):
    """Patch embedding + class token + position embedding (the first block of a ViT)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.image_size = int(vit.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"this Vision Transformer needs {self.image_size}x{self.image_size} images, got {h}x{w}")
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(n, -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.pos_embedding)


class ClassToken(nn.Module):
    """Pool of a ViT: the class token of the last layer's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def vit_parts(model: nn.Module) -> BackboneParts:
    """ViT: [patch embedding, encoder layer 1..L, final norm]; the pool takes the class token."""
    blocks = [VitEmbedding(model), *model.encoder.layers, model.encoder.ln]
    return BackboneParts(blocks, ClassToken(), model.heads.head, model)


def timm_efficientnet_parts(model: nn.Module) -> BackboneParts:
    """timm EfficientNet(-Lite): [stem, stage 1..7, final conv]."""
    blocks = [_seq(model.conv_stem, model.bn1), *model.blocks, _seq(model.conv_head, model.bn2)]
    return BackboneParts(blocks, model.global_pool, model.classifier, model)


def _torchvision(factory: str, split: Callable[[nn.Module], BackboneParts]) -> Callable[[], BackboneParts]:
    def build() -> BackboneParts:
        import torchvision.models

        return split(getattr(torchvision.models, factory)(weights=None))

    build.__doc__ = f"torchvision {factory} (random init), cut into blocks."
    return build


def build_efficientnet_lite0() -> BackboneParts:
    """timm efficientnet_lite0 (random init), cut into blocks."""
    import timm

    return timm_efficientnet_parts(timm.create_model("efficientnet_lite0", pretrained=False))


BUILTIN_BUILDERS: dict[str, Callable[[], BackboneParts]] = {
    "efficientnet_lite0": build_efficientnet_lite0,
    "resnet18": _torchvision("resnet18", resnet_parts),
    "resnet50": _torchvision("resnet50", resnet_parts),
    "efficientnet_b0": _torchvision("efficientnet_b0", efficientnet_parts),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large", mobilenet_v3_parts),
    "convnext_tiny": _torchvision("convnext_tiny", convnext_parts),
    "densenet121": _torchvision("densenet121", densenet_parts),
    "vit_b_16": _torchvision("vit_b_16", vit_parts),
}
