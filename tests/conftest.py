"""Fixtures shared by every test package: tiny synthetic image folders."""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image


def write_class_image(path: Path, class_index: int, image_index: int, size: int = 48) -> Path:
    """A unique, learnable picture: a colour set by the class, a bright square whose corner depends on it, noise."""
    rng = np.random.default_rng(class_index * 10_007 + image_index)
    red, green, blue = colorsys.hsv_to_rgb((class_index * 0.37) % 1.0, 0.8, 0.8)
    pixels = np.empty((size, size, 3), dtype=np.float64)
    pixels[:] = (red * 255, green * 255, blue * 255)
    pixels += rng.normal(0.0, 20.0, pixels.shape)
    half = size // 2
    top, left = (class_index // 2) % 2 * half, class_index % 2 * half
    pixels[top : top + half, left : left + half] = 235.0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=95)
    return path


def _split_counts(total: int) -> dict[str, int]:
    """Split ``total`` images 4:1:1 into train/val/test, at least one each (train gets the rest)."""
    held = max(1, total // 6)
    return {"train": max(1, total - 2 * held), "val": held, "test": held}


def _make_image_folder(
    tmp_path: Path,
    classes: dict[str, int] | None = None,
    size: int = 48,
    layout: str = "flat",
    ext: str = ".jpg",
) -> Path:
    """Write ``tmp_path/images`` with one sub-folder per class ("flat"), or train/val/test/<class> ("split")."""
    counts = {"a": 6, "b": 6} if classes is None else classes
    root = Path(tmp_path) / "images"
    for class_index, (name, total) in enumerate(sorted(counts.items())):
        if layout == "flat":
            for i in range(total):
                write_class_image(root / name / f"{name}_{i:03d}{ext}", class_index, i, size)
        elif layout == "split":
            start = 0
            for split, count in _split_counts(total).items():
                for i in range(start, start + count):
                    write_class_image(root / split / name / f"{name}_{i:03d}{ext}", class_index, i, size)
                start += count
        else:
            raise ValueError(f"layout must be 'flat' or 'split', got {layout!r}")
    return root


@pytest.fixture
def make_image_folder() -> Callable[..., Path]:
    """``make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=48, layout="flat"|"split", ext=".jpg") -> root``."""
    return _make_image_folder


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches features and decoded images in its own empty folder, never the user's."""
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
