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


def resized_pixels(image: Image.Image | torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 CHW pixels of a PIL image or a uint8 CHW tensor, short side resized to ``pre.resize_size``.

    Pillow resizes (antialiased), without the GIL and without a thread team of its own, so decoder
    threads can prepare images while the cores are free. An image whose short side already fits is
    returned as it is; the long side follows torchvision's rule.
    """
    import numpy as np
    import torch
    from PIL import Image

    if isinstance(image, torch.Tensor):
        if min(image.shape[-2:]) == pre.resize_size:
            return image
        image = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    width, height = image.size
    if min(width, height) != pre.resize_size:
        new_long = int(pre.resize_size * max(width, height) / min(width, height))
        size = (pre.resize_size, new_long) if width <= height else (new_long, pre.resize_size)
        bicubic = _interpolation(pre) == "bicubic"
        image = image.resize(size, resample=Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def model_pixels(image: Image.Image | torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 CHW model input pixels (resized, centre-cropped) of a PIL image or a uint8 CHW tensor."""
    pixels = resized_pixels(image, pre)
    height, width = pixels.shape[-2:]
    top, left = int(round((height - pre.input_size) / 2.0)), int(round((width - pre.input_size) / 2.0))
    return pixels[:, top:top + pre.input_size, left:left + pre.input_size]


def normalise(pixels: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """float32 model input from uint8 pixels, CHW or NCHW: the same numbers for an image alone or in a batch."""
    import torch

    shape = (1,) * (pixels.dim() - 3) + (3, 1, 1)  # broadcast without adding a dimension to one image
    std = torch.tensor(pre.std, dtype=torch.float32).view(shape)
    scale = 1.0 / (255.0 * std)
    shift = -torch.tensor(pre.mean, dtype=torch.float32).view(shape) / std
    # Two elementwise kernels, each exactly rounded: the same numbers alone or in a batch, vectorised or not.
    return torch.mul(pixels, scale).add_(shift)


class Normalise:
    """:func:`normalise` as a picklable transform step (DataLoader workers may be spawned)."""

    def __init__(self, pre: Preprocessing) -> None:
        self.pre = pre

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalise(pixels, self.pre)


class EvalTransform(Normalise):
    """Resize the short side, centre-crop, scale to [0, 1], normalise (PIL image or uint8 CHW tensor in)."""

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return normalise(model_pixels(image, self.pre), self.pre)


def eval_transform(pre: Preprocessing) -> Callable[[Any], torch.Tensor]:
    """THE transform for validation, test and prediction: a float32 CHW tensor from a PIL image or a
    uint8 CHW tensor; a cached uint8 image (resized by :func:`resized_pixels`) gives exactly the
    numbers of its original, and a batch normalised at once the numbers of its images one by one.
    """
    _interpolation(pre)
    return EvalTransform(pre)


def train_transform(pre: Preprocessing, preset: str) -> Callable[[Any], torch.Tensor]:
    """Augmentation for training: 'none' (the eval transform), 'light' (resized crop + flip), 'strong' (+ rotation, colour)."""
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"augmentation preset must be one of {TRAIN_PRESETS}, got {preset!r}")
    if preset == "none":
        return eval_transform(pre)
    from torchvision.transforms import InterpolationMode, v2

    interpolation = _torchvision_interpolation(pre)
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
            v2.ToPureTensor(),
            Normalise(pre),
        ]
    )


def _interpolation(pre: Preprocessing) -> str:
    if pre.interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {pre.interpolation!r}")
    return pre.interpolation


def _torchvision_interpolation(pre: Preprocessing) -> Any:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode.BILINEAR if _interpolation(pre) == "bilinear" else InterpolationMode.BICUBIC
