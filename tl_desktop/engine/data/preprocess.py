"""The one preprocessing: stored in every model file and used by training, validation and prediction.

It includes how DICOM files become pictures (window and frame rule), so a model predicts on the
same windowed pixels it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from tl_desktop.config import DataConfig
    from tl_desktop.engine.data.dicom import DicomReading


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize_size``, centre-crop ``input_size``, normalise with mean/std;
    DICOM files are windowed by ``dicom_window`` ("auto": the file's own) and give the ``dicom_frame`` frame."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    dicom_window: str = "auto"
    dicom_frame: str = "middle"

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
            dicom_window=str(raw.get("dicom_window", "auto")),
            dicom_frame=str(raw.get("dicom_frame", "middle")),
        )


def with_data_settings(pre: Preprocessing, data: DataConfig) -> Preprocessing:
    """A backbone's preprocessing with the run's DICOM reading settings."""
    return replace(pre, dicom_window=data.dicom_window, dicom_frame=data.dicom_frame)


def decode_size(pre: Preprocessing) -> tuple[int, int]:
    """The JPEG draft size every consumer decodes at, so training, validation and prediction see the same pixels."""
    return (pre.resize_size, pre.resize_size)


def load_for_model(path: str | Path, pre: Preprocessing) -> Image.Image:
    """Decode an image file exactly as training and validation did (RGB, draft-decoded to the resize size,
    DICOM windowed as the run said)."""
    from tl_desktop.engine.data.images import load_rgb

    return load_rgb(path, draft_size=decode_size(pre), dicom=dicom_reading(pre))


def dicom_reading(pre: Preprocessing) -> DicomReading:
    """How DICOM files are read for a model with this preprocessing."""
    from tl_desktop.engine.data.dicom import DicomReading

    return DicomReading.from_settings(pre.dicom_window, pre.dicom_frame)


TRAIN_PRESETS = ("none", "light", "strong")
_INTERPOLATIONS = ("bilinear", "bicubic")


def resized_pixels(image: Image.Image | torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 CHW pixels of a PIL image or a uint8 CHW tensor, short side resized to ``pre.resize_size``.

    torch's antialiased uint8 resize (SIMD, Pillow's filters, within a few grey levels of Pillow's
    result) runs without the GIL and without a thread team in a decoder thread, about twice as fast as
    Pillow's; it gets channels-last pixels, so every input layout gives the same result. An image whose
    short side already fits is returned as it is; the long side follows torchvision's rule.
    """
    import numpy as np
    import torch

    pixels = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image)).permute(2, 0, 1)
    height, width = pixels.shape[-2:]
    if min(width, height) == pre.resize_size:
        return pixels
    new_long = int(pre.resize_size * max(width, height) / min(width, height))
    size = (new_long, pre.resize_size) if width <= height else (pre.resize_size, new_long)
    channels_last = pixels.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    return torch.nn.functional.interpolate(channels_last[None], size=size, mode=_interpolation(pre), antialias=True)[0]


def model_pixels(image: Image.Image | torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 CHW model input pixels (resized, centre-cropped) of a PIL image or a uint8 CHW tensor."""
    pixels = resized_pixels(image, pre)
    height, width = pixels.shape[-2:]
    top, left = int(round((height - pre.input_size) / 2.0)), int(round((width - pre.input_size) / 2.0))
    return pixels[:, top:top + pre.input_size, left:left + pre.input_size]


def normalise(pixels: torch.Tensor, pre: Preprocessing, out: torch.Tensor | None = None) -> torch.Tensor:
    """float32 model input from uint8 pixels, CHW or NCHW, stored channels last (written into ``out``
    when given: a float32 tensor of the same shape, stored channels last).

    Each value is an exact conversion, one exactly rounded multiply and one exactly rounded add, so an
    image gives the same numbers alone or in a batch. numpy runs it one image row at a time, in place,
    without the GIL, without a thread team and without allocating, so decoder threads normalise their
    own images while they are still in the CPU cache.
    """
    import numpy as np
    import torch

    source = np.moveaxis(pixels.numpy(), -3, -1)  # (..., H, W, 3)
    if out is None:
        target = np.empty(source.shape, dtype=np.float32)
        out = torch.from_numpy(target).movedim(-1, -3)
    else:
        target = np.moveaxis(out.numpy(), -3, -1)
        if target.dtype != np.float32 or not target.flags.c_contiguous or target.shape != source.shape:
            raise ValueError("normalise writes only into a float32 tensor of the same shape, stored channels last")
    rows = (*source.shape[:-2], source.shape[-2] * 3)
    target_rows = target.reshape(rows)  # a view: the target is contiguous
    scale, shift = _row_constants(pre, source.shape[-2])
    np.copyto(target_rows, source.reshape(rows))
    np.multiply(target_rows, scale, out=target_rows)
    np.add(target_rows, shift, out=target_rows)
    return out


@lru_cache(maxsize=16)
def _row_constants(pre: Preprocessing, width: int) -> tuple[Any, Any]:
    """Read-only float32 rows of 1 / (255 std) and -mean / std for ``width`` RGB pixels."""
    import numpy as np

    std = np.asarray(pre.std, dtype=np.float32)
    rows = (np.tile(np.float32(1.0) / (np.float32(255.0) * std), width),
            np.tile(-np.asarray(pre.mean, dtype=np.float32) / std, width))
    for row in rows:
        row.flags.writeable = False
    return rows


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
