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


@pytest.fixture(scope="session")
def make_image_folder() -> Callable[..., Path]:
    """``make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=48, layout="flat"|"split", ext=".jpg") -> root``."""
    return _make_image_folder


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches features and decoded images in its own empty folder, never the user's."""
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


ENGINE_CONFTEST = Path(__file__).parent / "engine" / "conftest.py"


@pytest.fixture(scope="session")
def tiny_runs():
    """The engine fixtures' module (``register_tiny_backbone``, ``train_tiny_run``, ``TINY_NAME``), for tests
    outside tests/engine that make tiny runs once per module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tl_tiny_run_helpers", ENGINE_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

# Registers the tiny backbone, then (by environment) sends this process a signal at a chosen event.
TINY_LAUNCHER = """
import importlib.util, os, signal, sys
import torch
from safetensors.torch import save_file

spec = importlib.util.spec_from_file_location("tiny_backbone_conftest", {conftest!r})
tiny = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny)
from tl_desktop.engine.models.backbones import register_backbone

torch.manual_seed(1234)
save_file({{k: v.contiguous() for k, v in tiny.build_tiny_cnn().source.state_dict().items()}}, {weights!r})
register_backbone(tiny.TINY_SPEC, tiny.build_tiny_cnn, bundled=lambda: {weights!r})

moment = os.environ.get("TL_TEST_SIGNAL_AT")  # "<event kind>:<epoch>:<step>:<signal>[:<signal>]"
if moment:
    from tl_desktop.engine.training.callbacks import ConsoleProgress
    kind, epoch, step, *signals = moment.split(":")
    original = ConsoleProgress.on_event

    def interrupting(self, event):
        if event.kind == kind and event.epoch == int(epoch) and getattr(event, "step", 0) == int(step):
            for name in signals:
                os.kill(os.getpid(), getattr(signal, name))
        original(self, event)

    ConsoleProgress.on_event = interrupting

from tl_desktop.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="session")
def tiny_launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script that runs ``tl_desktop.cli.main`` in a subprocess with the tiny test backbone registered
    (a subprocess cannot see pytest fixtures); ``TL_TEST_SIGNAL_AT`` sends it signals at a chosen event."""
    folder = tmp_path_factory.mktemp("launcher")
    script = folder / "tl_desktop_tiny.py"
    script.write_text(TINY_LAUNCHER.format(conftest=str(ENGINE_CONFTEST), weights=str(folder / "tiny.safetensors")))
    return script
