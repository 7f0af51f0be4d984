"""Grad-CAM finds class evidence where it is (a bright patch in the top-left corner)."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tl_desktop.engine.data.preprocess import Preprocessing
from tl_desktop.engine.evaluation.saliency import (
    ExplainError,
    _to_image_size,
    gradcam,
    overlay,
    seen_box,
)
from tl_desktop.engine.models.backbones import (
    create_model,
    get_backbone_spec,
    list_backbones,
)

SIZE = 32


def _corner_batch(n, generator):
    x = torch.rand(n, 3, SIZE, SIZE, generator=generator) * 0.4
    y = torch.randint(0, 2, (n,), generator=generator)
    x[y == 1, :, 2:10, 2:10] = 1.0  # class 1: a bright patch in the top-left corner
    return x, y


class TinyCnn(nn.Module):
    is_transformer = False

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def gradcam_layer(self):
        return self.stage

    def forward(self, x):
        return self.head(self.stage(self.stem(x)).mean(dim=(2, 3)))


class TokenEmbedding(nn.Module):
    """Patch embedding + class token + position embedding: tokens (N, 1 + grid*grid, dim)."""

    def __init__(self, dim, patch):
        super().__init__()
        grid = SIZE // patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.1)

    def forward(self, x):
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos


class TinyVit(nn.Module):
    """A one-block ViT; Grad-CAM uses the tokens entering the last encoder block."""

    is_transformer = True

    def __init__(self, dim=16, patch=8):
        super().__init__()
        self.embed = TokenEmbedding(dim, patch)
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, 2)

    def gradcam_layer(self):
        return self.embed

    def forward(self, x):
        return self.head(self.block(self.embed(x))[:, 0])


def _train(model, steps):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = _corner_batch(16, generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = _corner_batch(64, generator)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.9
    return model


def _assert_peaks_top_left(model):
    generator = torch.Generator().manual_seed(123)
    x, y = _corner_batch(16, generator)
    for image in x[y == 1][:4]:
        cam, target, probs = gradcam(model, image.unsqueeze(0), target=1)
        assert target == 1 and probs.shape == (2,) and abs(probs.sum() - 1) < 1e-5
        assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
        half = cam.shape[0] // 2
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert row < half and col < half, cam.round(2)
        assert cam[:half, :half].mean() > 2 * cam[half:, half:].mean()


@pytest.fixture(scope="module")
def trained_cnn():
    torch.manual_seed(0)
    return _train(TinyCnn(), 60)


def test_gradcam_peaks_on_corner_evidence_cnn(trained_cnn):
    _assert_peaks_top_left(trained_cnn)


def test_gradcam_does_not_touch_parameter_gradients_and_works_frozen(trained_cnn):
    model = copy.deepcopy(trained_cnn)
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    generator = torch.Generator().manual_seed(5)
    x, y = _corner_batch(8, generator)
    cam, _, _ = gradcam(model, x[y == 1][:1], target=1)
    assert cam.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_peaks_on_corner_evidence_vit_tokens():
    torch.manual_seed(0)
    model = _train(TinyVit(), 40)
    _assert_peaks_top_left(model)


def test_gradcam_rejects_batches_and_bad_targets():
    model = TinyCnn()
    with pytest.raises(ExplainError, match="one image"):
        gradcam(model, torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(ExplainError, match="out of range"):
        gradcam(model, torch.zeros(1, 3, SIZE, SIZE), target=5)


def test_heatmap_maps_back_to_the_centre_crop_of_the_original_image():
    pre = Preprocessing(input_size=32, resize_size=40, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert seen_box((200, 100), pre) == pytest.approx((60.0, 10.0, 140.0, 90.0))
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    heat = _to_image_size(cam, (200, 100), pre)
    assert heat.shape == (100, 200)
    assert heat[:, :60].max() == 0 and heat[:, 141:].max() == 0
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert 10 <= row < 30 and 60 <= col < 80
    picture = overlay(Image.new("RGB", (200, 100), "white"), heat)
    assert picture.size == (200, 100) and picture.mode == "RGB"
    assert picture.getpixel((65, 15)) != picture.getpixel((190, 90))


@pytest.mark.parametrize("name", [spec.name for spec in list_backbones()])
def test_every_registry_backbone_gives_a_map_on_its_grid(name):
    spec = get_backbone_spec(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, pretrained=False)
    size = spec.preprocessing.input_size if spec.is_transformer else 64  # CNNs take any size; keep it cheap
    cam, target, probs = gradcam(model, torch.randn(1, 3, size, size))
    assert cam.ndim == 2 and cam.shape[0] == cam.shape[1] >= 2
    assert np.isfinite(cam).all() and cam.max() == pytest.approx(1.0), name
    assert target == int(probs.argmax())
