"""images.py: every supported file becomes correct RGB, or one specific ImageLoadError."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from tl_desktop.engine.data import images
from tl_desktop.engine.data.images import (
    ImageLoadError,
    is_supported_file,
    load_rgb,
    probe_image,
)


def _ramp16(width: int = 256, height: int = 8, top: int = 65535) -> np.ndarray:
    return np.tile(np.linspace(0, top, width).round().astype(np.uint16), (height, 1))


def _pixels(path: Path, **kwargs) -> np.ndarray:
    image = load_rgb(path, **kwargs)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def _reason(path: Path, loader=load_rgb) -> str:
    with pytest.raises(ImageLoadError) as info:
        loader(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value.reason


def test_supported_extensions_any_case():
    assert is_supported_file("x/PHOTO.JPG") and is_supported_file("a.Tiff") and is_supported_file("b.webp")
    assert not is_supported_file("notes.txt")
    assert not is_supported_file("x/._photo.jpg")  # macOS resource fork


def test_16bit_ramp_is_rescaled_not_saturated(tmp_path):
    path = tmp_path / "ramp16.png"
    Image.fromarray(_ramp16()).save(path)
    assert Image.open(path).mode == "I;16"
    row = _pixels(path)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert (row == 255).mean() < 0.02  # a plain convert("RGB") makes ~99% of it white
    assert abs(row[128] - 128) <= 2


def test_12bit_data_in_16bit_container_uses_its_real_range(tmp_path):
    path = tmp_path / "ramp12.png"
    Image.fromarray(_ramp16(top=4095)).save(path)
    row = _pixels(path)[0, :, 0]
    assert row.min() == 0 and row.max() == 255


def test_big_endian_16bit(tmp_path):
    path = tmp_path / "be.tif"
    data = _ramp16().astype(">u2")
    Image.frombytes("I;16B", (data.shape[1], data.shape[0]), data.tobytes()).save(path)
    row = _pixels(path)[0, :, 1]
    assert row[0] == 0 and row[-1] == 255 and abs(row[128] - 128) <= 2


def test_16bit_tiff(tmp_path):
    path = tmp_path / "ramp16.tif"
    Image.fromarray(_ramp16()).save(path)
    row = _pixels(path)[0, :, 2]
    assert row[0] == 0 and row[-1] == 255 and (row == 255).mean() < 0.02


def test_32bit_integer_and_float_modes(tmp_path):
    int_path, float_path = tmp_path / "i32.tif", tmp_path / "f32.tif"
    Image.fromarray(np.tile(np.arange(-1000, 1000, 10, dtype=np.int32), (4, 1))).save(int_path)
    Image.fromarray(np.tile(np.linspace(-1.0, 3.0, 200, dtype=np.float32), (4, 1))).save(float_path)
    assert Image.open(int_path).mode == "I" and Image.open(float_path).mode == "F"
    for path in (int_path, float_path):
        row = _pixels(path)[0, :, 0]
        assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_constant_float_image_keeps_its_level(tmp_path):
    path = tmp_path / "flat.tif"
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(path)
    assert abs(_pixels(path)[0, 0, 0] - 128) <= 1


def test_palette_with_transparency_composites_on_white(tmp_path):
    path = tmp_path / "pal.png"
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))
    image.save(path, transparency=0)
    pixels = _pixels(path)
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[0, 7]) == (255, 255, 255)  # transparent black pixel becomes white, not black


def test_rgba_is_composited_onto_white(tmp_path):
    path = tmp_path / "rgba.png"
    data = np.zeros((4, 3, 4), dtype=np.uint8)
    data[:, 0] = (255, 0, 0, 255)  # opaque red
    data[:, 1] = (0, 0, 0, 0)  # fully transparent black
    data[:, 2] = (0, 0, 0, 128)  # half-transparent black
    Image.fromarray(data, mode="RGBA").save(path)
    pixels = _pixels(path)
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[0, 1]) == (255, 255, 255)
    assert all(abs(v - 127) <= 2 for v in pixels[0, 2])


def test_la_is_composited_onto_white(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0], [0, 255], [200, 255]]], dtype=np.uint8), mode="LA").save(path)
    pixels = _pixels(path)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 1]) == (0, 0, 0)
    assert tuple(pixels[0, 2]) == (200, 200, 200)


def test_cmyk_jpeg_converts_to_red(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    red, green, blue = _pixels(path)[8, 8]
    assert red > 230 and green < 30 and blue < 30


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_plain_modes(tmp_path, mode):
    path = tmp_path / f"plain_{mode}.png"
    Image.new("RGB", (8, 8), (255, 255, 255)).convert(mode).save(path)
    assert tuple(_pixels(path)[0, 0]) == (255, 255, 255)


def _sideways_jpeg(path: Path) -> None:
    """A 40x20 picture stored with left half red, right half blue, and EXIF orientation 6 (rotate 90 CW)."""
    data = np.zeros((20, 40, 3), dtype=np.uint8)
    data[:, :20] = (255, 0, 0)
    data[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(data).save(path, quality=95, exif=exif)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "sideways.jpg"
    _sideways_jpeg(path)
    image = load_rgb(path)
    assert image.size == (20, 40)
    pixels = np.asarray(image).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60  # the red half is now on top
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60
    assert probe_image(path) == (20, 40)


def test_draft_decodes_big_jpeg_reduced_but_not_below_the_request(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), (10, 120, 30)).save(path)
    reduced = load_rgb(path, draft_size=(256, 256))
    assert reduced.mode == "RGB" and reduced.size == (400, 300)
    assert load_rgb(path).size == (1600, 1200)
    assert probe_image(path) == (1600, 1200)


def test_truncated_jpeg(tmp_path):
    good, cut = tmp_path / "good.jpg", tmp_path / "cut.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good, quality=95)
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated or corrupt JPEG" in _reason(cut)
    assert "truncated or corrupt JPEG" in _reason(cut, probe_image)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_non_images_and_corrupt_files(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(good)
    garbage.write_bytes(good.read_bytes()[:40] + bytes(range(256)) * 4)
    gif = tmp_path / "animation.png"
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    assert _reason(text) == "not an image file"
    assert _reason(empty) == "empty file (0 bytes)"
    assert _reason(garbage) == "truncated or corrupt PNG"
    assert _reason(gif) == "unsupported image format (GIF)"  # Pillow reads GIF, but it is outside the allowlist
    assert _reason(tmp_path / "missing.png") == "file not found"
    assert _reason(tmp_path) == "is a folder, not a file"


def test_bomb_guard_with_small_cap(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (48, 48)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    assert _reason(path).startswith("image too large: ")
    assert _reason(path, probe_image).startswith("image too large")


def test_pillow_bomb_warning_is_an_error_only_locally(tmp_path, monkeypatch):
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(small)
    Image.new("RGB", (48, 48)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 px, errors above 2000
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    filters_before = list(warnings.filters)
    assert load_rgb(small).size == (40, 40)  # Pillow warns, but it is within our cap
    assert _reason(big).startswith("image too large")
    assert warnings.filters == filters_before


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp", ".JPEG"])
def test_every_supported_format_round_trips(tmp_path, suffix):
    path = tmp_path / f"picture{suffix}"
    data = np.zeros((12, 16, 3), dtype=np.uint8)
    data[:, :8] = (200, 30, 60)
    save_args = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(data).save(path, **save_args)
    pixels = _pixels(path)
    assert pixels.shape == (12, 16, 3)
    error = np.abs(pixels - data)
    assert (error.mean() < 6) if suffix == ".JPEG" else (error.max() == 0)  # JPEG is lossy at the colour edge
    assert probe_image(path) == (16, 12)
