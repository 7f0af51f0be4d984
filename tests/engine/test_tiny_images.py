"""Images far smaller than any model input are counted and warned about (issue 14, item 9: a 1x1 image
trained without a word)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.audit import TINY_SIDE, Audit
from tl_desktop.engine.data.dataset import scan_dataset


def _folder(root, sizes):
    rng = np.random.default_rng(0)
    for index, (name, (w, h)) in enumerate(sizes):
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def test_tiny_images_are_counted_and_warned_about(tmp_path):
    sizes = [("a", (64, 64))] * 6 + [("b", (64, 64))] * 4 + [("b", (1, 1)), ("b", (30, 50)), ("a", (55, 200))]
    audit = scan_dataset(DataConfig(root=str(_folder(tmp_path / "data", sizes)))).audit
    assert audit.sizes.tiny == 2  # 1x1 and 30x50; 55x200 has one side above the limit
    warning = next(w for w in audit.warnings if "smaller than" in w)
    assert warning.startswith(f"2 images are smaller than {TINY_SIDE}x{TINY_SIDE} pixels (the shortest side is 1 px)")
    assert any(line.startswith("Warning: 2 images are smaller") for line in audit.summary_lines())
    assert Audit.from_dict(audit.to_dict()).sizes.tiny == 2


def test_images_of_a_useful_size_give_no_size_warning(tmp_path):
    sizes = [("a", (TINY_SIDE, 20))] * 6 + [("b", (64, 64))] * 6
    audit = scan_dataset(DataConfig(root=str(_folder(tmp_path / "data", sizes)))).audit
    assert audit.sizes.tiny == 0 and not any("smaller than" in w for w in audit.warnings)
