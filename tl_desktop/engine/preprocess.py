"""The one preprocessing: stored in every model file and used by training, validation and prediction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize_size``, centre-crop ``input_size``, normalise with mean/std."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Preprocessing":
        return cls(
            input_size=int(raw["input_size"]),
            resize_size=int(raw["resize_size"]),
            mean=tuple(float(v) for v in raw["mean"]),
            std=tuple(float(v) for v in raw["std"]),
            interpolation=str(raw.get("interpolation", "bilinear")),
        )


def decode_size(pre: Preprocessing) -> tuple[int, int]:
    """The JPEG draft size every consumer decodes at, so training, validation and prediction see the same pixels."""
    return (pre.resize_size, pre.resize_size)


def load_for_model(path: str | Path, pre: Preprocessing) -> Image.Image:
    """Decode an image file exactly as training and validation did (RGB, draft-decoded to the resize size)."""
    from tl_desktop.engine.images import load_rgb

    return load_rgb(path, draft_size=decode_size(pre))


TRAIN_PRESETS = ("none", "light", "strong")
_INTERPOLATIONS = ("bilinear", "bicubic")


def eval_transform(pre: Preprocessing) -> Callable[[Any], torch.Tensor]:
    """Resize the short side, centre-crop, scale to [0, 1], normalise: THE transform for val, test and predict.

    Accepts a PIL image or a uint8 CHW tensor and returns a float32 CHW tensor; both inputs go through
    the same tensor resize, so a cache of decoded uint8 images gives exactly the same numbers.
    """
    from torchvision.transforms import v2

    interpolation = _interpolation(pre)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(pre.resize_size, interpolation=interpolation, antialias=True),
            v2.CenterCrop(pre.input_size),
            *_to_normalised_tensor(pre),
        ]
    )


def train_transform(pre: Preprocessing, preset: str) -> Callable[[Any], torch.Tensor]:
    """Augmentation for training: 'none' (the eval transform), 'light' (resized crop + flip), 'strong' (+ rotation, colour)."""
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"augmentation preset must be one of {TRAIN_PRESETS}, got {preset!r}")
    if preset == "none":
        return eval_transform(pre)
    from torchvision.transforms import InterpolationMode, v2

    interpolation = _interpolation(pre)
    # Rotation comes before the crop so the crop rarely shows the filled corners; tensor rotation
    # supports bilinear at most, which is invisible after the following resize.
    rotation = [v2.RandomRotation(15, interpolation=InterpolationMode.BILINEAR)] if preset == "strong" else []
    colour = [v2.ColorJitter(0.3, 0.3, 0.3, 0.05)] if preset == "strong" else []
    return v2.Compose(
        [
            v2.ToImage(),
            *rotation,
            v2.RandomResizedCrop(pre.input_size, scale=(0.35, 1.0), interpolation=interpolation, antialias=True),
            v2.RandomHorizontalFlip(),
            *colour,
            *_to_normalised_tensor(pre),
        ]
    )


def _to_normalised_tensor(pre: Preprocessing) -> list[Any]:
    import torch
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std)), v2.ToPureTensor()]


def _interpolation(pre: Preprocessing) -> Any:
    from torchvision.transforms import InterpolationMode

    if pre.interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {pre.interpolation!r}")
    return InterpolationMode.BILINEAR if pre.interpolation == "bilinear" else InterpolationMode.BICUBIC
