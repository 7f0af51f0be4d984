"""What a model file's metadata and weights must hold before anything predicts with them.

Every consumer (predict, evaluate, report, export, the window) loads through ``bundle.load_bundle``,
which calls these checks, so a file with NaN weights, a temperature of zero or an unknown backbone is
refused in one place with a message, never predicted with. The settings inside the file are checked
by the configuration's own schema (``RunConfig.from_dict`` then ``validate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from tl_desktop.config import ConfigError, RunConfig


class MetaProblem(ValueError):
    """A metadata field or a weight tensor is unusable; the message says which and why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_classes(classes: Any) -> None:
    """Class names: a list of at least two distinct, non-empty strings."""
    if not isinstance(classes, list) or len(classes) < 2:
        raise MetaProblem(f"its class list must name at least two classes, got {classes!r}")
    odd = [c for c in classes if not isinstance(c, str) or not c.strip()]
    if odd:
        raise MetaProblem(f"its class names must be non-empty text, got {odd[0]!r}")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise MetaProblem(f"its class names repeat: {', '.join(repeated)}")


def check_preprocessing(pre: Any) -> None:
    """Sizes are positive whole numbers; mean and std are three finite numbers each, std never zero."""
    if not isinstance(pre, Mapping):
        raise MetaProblem(f"its preprocessing must be an object, got {pre!r}")
    for name in ("input_size", "resize_size"):
        size = pre.get(name)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise MetaProblem(f"its preprocessing {name} must be a whole number of pixels, got {size!r}")
    for name in ("mean", "std"):
        values = pre.get(name)
        if not isinstance(values, list) or len(values) != 3 or not all(_is_number(v) for v in values):
            raise MetaProblem(f"its preprocessing {name} must be three finite numbers, got {values!r}")
    if any(v <= 0 for v in pre["std"]):
        raise MetaProblem(f"its preprocessing std must be above 0 (it divides the pixels), got {pre['std']}")
    if pre.get("interpolation", "bilinear") not in ("bilinear", "bicubic"):
        raise MetaProblem(f"its preprocessing interpolation must be 'bilinear' or 'bicubic', "
                          f"got {pre.get('interpolation')!r}")


def check_temperature(temperature: Any) -> None:
    if not _is_number(temperature) or temperature <= 0:
        raise MetaProblem(f"its temperature must be a number above 0, got {temperature!r}")


def check_backbone(backbone: Any) -> None:
    from tl_desktop.engine.models.backbones import BackboneError, get_backbone_spec

    if not isinstance(backbone, str):
        raise MetaProblem(f"its backbone must be a name, got {backbone!r}")
    try:
        get_backbone_spec(backbone)
    except BackboneError as exc:
        raise MetaProblem(f"it was made with an {exc}") from None


def stored_config(config: Any) -> RunConfig:
    """The training settings stored in the file, checked by the configuration's own schema."""
    try:
        return RunConfig.from_dict(config).validate()
    except ConfigError as exc:
        raise MetaProblem(f"its stored settings cannot be read ({exc})") from None


def check_meta_fields(raw: Mapping[str, Any]) -> None:
    """Every field a model file's ``meta.json`` must hold, checked before the network is built."""
    check_backbone(raw["backbone"])
    check_classes(raw["classes"])
    check_preprocessing(raw["preprocessing"])
    check_temperature(raw.get("temperature", 1.0))
    stored_config(raw.get("config", {}))
    for name in ("metrics", "versions"):
        if not isinstance(raw.get(name, {}), Mapping):
            raise MetaProblem(f"its {name} must be an object, got {raw[name]!r}")


def check_weights(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                  num_classes: int) -> None:
    """Finite weights that fit the network the metadata describes, with one output per named class."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MetaProblem(f"its weights hold NaN or infinite values ({name}); the model is broken")
    for name, tensor in expected.items():
        stored = state.get(name)
        if stored is not None and stored.shape != tensor.shape and tensor.shape[:1] == (num_classes,):
            raise MetaProblem(f"its head has {stored.shape[0]} outputs but its metadata names {num_classes} "
                              f"classes ({name})")
