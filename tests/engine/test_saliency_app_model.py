"""Grad-CAM through the app's own model class: a tiny registered backbone, saved, loaded and explained
the way the Predict page does it, puts the heat where the evidence is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tl_desktop.engine.evaluation.saliency import explain, gradcam
from tl_desktop.engine.models.backbones import create_model
from tl_desktop.engine.models.bundle import BundleMeta, load_bundle, save_bundle

SIDE = 36  # the tiny backbone resizes to 36 and crops the central 32: only a 2-pixel border is cut
HALF = SIDE // 2
QUARTERS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def _picture(rng: np.random.Generator, quarter: tuple[int, int] | None) -> Image.Image:
    """Dark noise; class "square" has a bright square in one quarter (chosen at random in training)."""
    pixels = rng.uniform(0, 100, (SIDE, SIDE, 3))
    if quarter is not None:
        top, left = quarter[0] * HALF + 2, quarter[1] * HALF + 2
        pixels[top:top + 14, left:left + 14] = 250
    return Image.fromarray(pixels.astype(np.uint8))


def _quarter_means(heat: np.ndarray) -> dict[tuple[int, int], float]:
    return {(r, c): float(heat[r * HALF:(r + 1) * HALF, c * HALF:(c + 1) * HALF].mean()) for r, c in QUARTERS}


def _meta(tiny_backbone) -> BundleMeta:
    return BundleMeta(backbone="tiny_cnn", classes=["plain", "square"],
                      preprocessing=tiny_backbone.preprocessing.to_dict())


def test_gradcam_of_the_app_model_follows_the_evidence(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_model("tiny_cnn", num_classes=2)  # the app's ClassifierModel with the tiny 'pretrained' weights
    model.set_trainable_blocks("all")
    transform = load_bundle(save_bundle(tmp_path / "untrained.tlmodel", model, _meta(tiny_backbone))).transform
    labels = torch.tensor([i % 2 for i in range(64)])
    quarters = [QUARTERS[int(rng.integers(4))] if y else None for y in labels]
    images = torch.stack([transform(_picture(rng, q)) for q in quarters])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(25):
        for batch in torch.randperm(64).split(16):
            loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    loaded = load_bundle(save_bundle(tmp_path / "square.tlmodel", model, _meta(tiny_backbone)))

    rng = np.random.default_rng(42)
    for quarter in QUARTERS * 2:
        explained = explain(loaded, _picture(rng, quarter))  # default target: the predicted class
        assert explained.target_class == "square", "the tiny model did not learn the square"
        heat = explained.heatmap
        assert heat.shape == (SIDE, SIDE) and heat.min() >= 0 and heat.max() == pytest.approx(1.0, abs=0.05)
        means = _quarter_means(heat)
        opposite = (1 - quarter[0], 1 - quarter[1])
        assert max(means, key=means.get) == quarter, (quarter, means)
        assert means[opposite] < 0.5 * means[quarter], (quarter, means)


def test_gradcam_maps_the_last_block_of_the_app_model(tiny_backbone):
    """The map sits on the last block's grid (32 px halved by three blocks: 4 cells a side)."""
    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=3, pretrained=False)
    assert model.gradcam_layer() is model.blocks[-1]
    cam, target, probs = gradcam(model, torch.randn(1, 3, 32, 32))
    assert cam.shape == (4, 4) and cam.max() == pytest.approx(1.0)
    assert target == int(probs.argmax()) and probs.shape == (3,)
