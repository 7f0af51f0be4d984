"""The one preprocessing: stored in every model file and used by training, validation and prediction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
