"""The backbone registry, the uniform ClassifierModel (blocks + pool + new head) and freezing.

Freezing is "trainable blocks from the top": 0 trains only the new head (feature extraction),
N also trains the last N blocks, "all" fine-tunes everything. Frozen blocks keep
``requires_grad=False`` and stay in eval mode (BatchNorm statistics do not move) even after
``model.train()``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Union

import torch
from torch import nn

from tl_desktop.engine.models.builders import BUILTIN_BUILDERS, BackboneParts, StateDict
from tl_desktop.engine.models.specs import BUILTIN_SPECS, BackboneError, BackboneSpec
from tl_desktop.engine.models.weights import (
    Progress,
    load_state_dict_file,
    register_bundled_weights,
    resolve_weights,
)
from tl_desktop.engine.runtime.stop import StopToken

__all__ = [
    "BackboneError", "BackboneParts", "BackboneSpec", "ClassifierModel", "FreezeSummary", "build_parts",
    "check_weights_file",
    "count_trainable_params", "create_model", "get_backbone_spec", "list_backbones", "register_backbone",
]

TrainableBlocks = Union[int, Literal["all"]]
Builder = Callable[[], BackboneParts]

_SPECS: dict[str, BackboneSpec] = {spec.name: spec for spec in BUILTIN_SPECS}
_BUILDERS: dict[str, Builder] = dict(BUILTIN_BUILDERS)


def list_backbones() -> list[BackboneSpec]:
    """All registered backbones, the default (efficientnet_lite0) first."""
    return list(_SPECS.values())


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec called ``name``; an unknown name raises BackboneError listing the valid ones."""
    try:
        return _SPECS[name]
    except KeyError:
        raise BackboneError(f"unknown backbone {name!r}; choose one of: {', '.join(_SPECS)}") from None


def backbone_title(name: str) -> str:
    """The title a user reads for backbone ``name`` ("ResNet-18" for resnet18); the name itself if unknown."""
    spec = _SPECS.get(name)
    return spec.title if spec is not None else name


def register_backbone(spec: BackboneSpec, builder: Builder,
                      bundled: Callable[[], "os.PathLike[str] | None"] | None = None) -> None:
    """Add (or replace) a backbone; ``bundled`` returns the path of weights shipped for it, if any."""
    _SPECS[spec.name] = spec
    _BUILDERS[spec.name] = builder
    _block_param_counts.cache_clear()
    if bundled is not None:
        register_bundled_weights(spec.name, bundled)


def unregister_backbone(name: str) -> None:
    """Remove a backbone added with :func:`register_backbone` (tests clean up with this)."""
    _SPECS.pop(name, None)
    _BUILDERS.pop(name, None)
    _block_param_counts.cache_clear()
    register_bundled_weights(name, None)


def build_parts(name: str) -> BackboneParts:
    """Build the original architecture ``name`` (random init), cut into blocks."""
    get_backbone_spec(name)
    return _BUILDERS[name]()


@dataclass(frozen=True)
class FreezeSummary:
    """What trains: how many blocks from the top, their names, and parameter counts."""

    trainable_blocks: int
    num_blocks: int
    trainable_params: int
    total_params: int
    frozen_names: tuple[str, ...]
    trainable_names: tuple[str, ...]


def _num_trainable(n: TrainableBlocks, num_blocks: int) -> int:
    if n == "all":
        return num_blocks
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise BackboneError(f"trainable blocks must be a number >= 0 or 'all', got {n!r}")
    return min(n, num_blocks)


class ClassifierModel(nn.Module):
    """A backbone as ordered ``blocks``, a ``pool`` to (N, feature_dim) and a new ``head`` (Dropout, Linear)."""

    def __init__(self, spec: BackboneSpec, parts: BackboneParts, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise BackboneError(f"num_classes must be >= 1, got {num_classes}")
        if len(parts.blocks) != spec.num_blocks:
            raise BackboneError(f"{spec.name}: the builder made {len(parts.blocks)} blocks, the spec names "
                                f"{spec.num_blocks}")
        self.backbone_name = spec.name
        self.block_names = spec.block_names
        self.is_transformer = spec.is_transformer
        self.num_classes = num_classes
        self.blocks = nn.ModuleList(parts.blocks)
        self.pool = parts.pool
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(parts.feature_dim, num_classes))
        self.frozen_blocks = 0

    @property
    def feature_dim(self) -> int:
        return int(self.head[-1].in_features)

    def run_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run blocks ``start`` up to (not including) ``stop``."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, feature_dim) of images ``x``."""
        return self.pool(self.run_blocks(x))

    def forward_from(self, x: torch.Tensor, start_block: int) -> torch.Tensor:
        """Logits from ``x``, the output of block ``start_block - 1`` (0: images)."""
        return self.head(self.pool(self.run_blocks(x, start_block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.run_blocks(x)))

    def gradcam_layer(self) -> nn.Module:
        """The last convolutional block; for a ViT the encoder layer before the last one.

        A ViT classifies its class token only, so the last layer's patch tokens get no gradient; the
        tokens entering the last encoder layer do (through its attention), shape (N, 1+HW, D).
        """
        return self.blocks[-3] if self.is_transformer else self.blocks[-1]

    def set_trainable_blocks(self, n: TrainableBlocks) -> FreezeSummary:
        """Train the head plus the last ``n`` blocks ("all": everything); freeze and eval the rest."""
        trainable = _num_trainable(n, len(self.blocks))
        self.frozen_blocks = len(self.blocks) - trainable
        for index, block in enumerate(self.blocks):
            block.requires_grad_(index >= self.frozen_blocks)
        self.pool.requires_grad_(trainable > 0)
        self.head.requires_grad_(True)
        self.train(self.training)
        return self.freeze_summary()

    def train(self, mode: bool = True) -> "ClassifierModel":
        super().train(mode)
        for block in self.blocks[: self.frozen_blocks]:
            block.eval()
        if self.frozen_blocks == len(self.blocks):
            self.pool.eval()
        return self

    def freeze_summary(self) -> FreezeSummary:
        """The current freezing state."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        split = self.frozen_blocks
        return FreezeSummary(len(self.blocks) - split, len(self.blocks), trainable, total,
                             tuple(self.block_names[:split]), tuple(self.block_names[split:]))


@functools.lru_cache(maxsize=None)
def _block_param_counts(name: str) -> tuple[tuple[int, ...], int, int]:
    """Parameters per block, in the pool, and the feature size, measured on the meta device."""
    with torch.device("meta"):
        parts = build_parts(name)
    blocks = tuple(sum(p.numel() for p in block.parameters()) for block in parts.blocks)
    return blocks, sum(p.numel() for p in parts.pool.parameters()), parts.feature_dim


def count_trainable_params(name: str, trainable_blocks: TrainableBlocks, num_classes: int = 2) -> FreezeSummary:
    """What :meth:`ClassifierModel.set_trainable_blocks` would report, without building real weights."""
    spec = get_backbone_spec(name)
    blocks, pool, feature_dim = _block_param_counts(name)
    trainable = _num_trainable(trainable_blocks, len(blocks))
    split = len(blocks) - trainable
    head = feature_dim * num_classes + num_classes
    trained = sum(blocks[split:]) + (pool if trainable > 0 else 0) + head
    return FreezeSummary(trainable, len(blocks), trained, sum(blocks) + pool + head,
                         spec.block_names[:split], spec.block_names[split:])


def create_model(
    name: str,
    num_classes: int,
    dropout: float = 0.0,
    pretrained: bool = True,
    weights_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    stop: StopToken | None = None,
) -> ClassifierModel:
    """A ClassifierModel for ``name`` with a new head; pretrained weights resolved unless ``pretrained=False``."""
    spec = get_backbone_spec(name)
    parts = build_parts(name)
    model = ClassifierModel(spec, parts, num_classes, dropout)
    if pretrained:
        path = resolve_weights(spec, weights_file=weights_file, progress=progress, stop=stop)
        load_backbone_weights(model, parts, load_state_dict_file(path), source=str(path))
    return model


def check_weights_file(name: str, weights_file: str | os.PathLike[str]) -> None:
    """Raise WeightsFileError or BackboneError unless ``weights_file`` loads into backbone ``name``."""
    create_model(name, num_classes=2, weights_file=weights_file)


def load_backbone_weights(model: ClassifierModel, parts: BackboneParts, state_dict: StateDict,
                          source: str = "the weights file") -> None:
    """Load pretrained weights into the blocks and pool; the new head keeps its fresh init.

    Accepts a ClassifierModel state dict (``blocks.*``), the original architecture's own keys
    (torchvision/timm), or a file whose tensors match the architecture in order and shape (the
    efficientnet-lite0 package renames every key).
    """
    if any(key.startswith("blocks.") for key in state_dict):
        wanted = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
        _load_checked(model, wanted, allowed_missing={k for k in model.state_dict() if k.startswith("head.")},
                      source=source)
        return
    if parts.convert_state_dict is not None:
        state_dict = parts.convert_state_dict(state_dict)
    own = parts.source.state_dict()
    classifier_keys = {f"{prefix}.{name}" for prefix, module in parts.source.named_modules()
                       if module is parts.classifier for name in ("weight", "bias")}
    if not set(state_dict) <= set(own):
        state_dict = _match_by_position(own, state_dict, source)
    state_dict = {k: v for k, v in state_dict.items()
                  if not (k in classifier_keys and v.shape != own[k].shape)}
    _load_checked(parts.source, state_dict, allowed_missing=classifier_keys, source=source)


def _match_by_position(own: StateDict, theirs: StateDict, source: str) -> StateDict:
    mismatch = len(own) != len(theirs) or any(
        a.shape != b.shape for a, b in zip(own.values(), theirs.values()))
    if mismatch:
        unknown = sorted(set(theirs) - set(own))[:3]
        raise BackboneError(f"{source} does not fit this backbone: it has {len(theirs)} tensors, the backbone "
                            f"{len(own)}, and names such as {unknown} are unknown to it")
    return dict(zip(own.keys(), theirs.values()))


def _load_checked(module: nn.Module, state_dict: StateDict, allowed_missing: set[str], source: str) -> None:
    own = module.state_dict()
    wrong = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise BackboneError(f"{source} does not fit this backbone: shape of {wrong[0]} is "
                            f"{tuple(state_dict[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}")
    result = module.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if k not in allowed_missing]
    if missing or result.unexpected_keys:
        raise BackboneError(f"{source} does not fit this backbone: missing {missing[:3]}"
                            f"{' …' if len(missing) > 3 else ''}, unexpected {result.unexpected_keys[:3]}")
