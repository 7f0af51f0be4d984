"""Open any supported image file into a correct 3-channel RGB picture, safely.

Every path through here ends in mode ``RGB`` or in :class:`ImageLoadError`: EXIF orientation is
applied, 16-bit and float images are rescaled by their real range (a plain ``convert`` would
saturate them), transparency is composited onto white, and oversized images are refused before a
single pixel is decoded. No Pillow global is changed: the decompression-bomb warning is turned into
an error only inside :func:`_open`, and truncated files are never "repaired" with grey.
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Decoders Pillow may use; anything else (PSD, EPS, ...) is refused even if Pillow could read it.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "DIB", "TIFF", "WEBP")

# A desktop cap on decoded size: a 100 MP RGB image already needs 300 MB of memory.
MAX_PIXELS: int = 100_000_000

# Probing decodes JPEGs at a reduced size: enough to find corruption, 5-10x faster than a full decode.
PROBE_DRAFT_SIZE: tuple[int, int] = (256, 256)

_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_FORMAT_NAMES = {"MPO": "JPEG", "DIB": "BMP"}
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_ORIENTATION_TAG = 0x0112
# File signatures, to tell a damaged image from a file that is not an image at all.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"RIFF", "WEBP"), (b"GIF8", "GIF"), (b"8BPS", "PSD"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"),
)
_READABLE_SIGNATURES = frozenset({"PNG", "JPEG", "BMP", "TIFF", "WEBP"})
_WHITE = (255, 255, 255)

# warnings.catch_warnings swaps a process-wide filter list; serialise it between scan threads.
_OPEN_LOCK = threading.Lock()


class ImageLoadError(Exception):
    """A file could not be turned into an RGB image; ``reason`` says why in a few words."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_supported_file(path: str | Path) -> bool:
    """True when the file name has a supported image extension (any case) and is not hidden."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_EXTENSIONS


def load_rgb(path: str | Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` into an RGB image, orientation applied; JPEGs may decode reduced to >= draft_size."""
    with _open(path) as img:
        orientation = _orientation(img)
        _decode(img, path, draft_size, orientation)
        try:
            upright = ImageOps.exif_transpose(img) if orientation not in (None, 1) else img
        except Exception:  # a broken EXIF block must not cost the picture itself
            upright = img
        return _to_rgb(upright, path)


def probe_image(path: str | Path) -> tuple[int, int]:
    """Really decode ``path`` (reduced for JPEG) to detect corruption; return its upright (width, height)."""
    with _open(path) as img:
        width, height = img.size
        orientation = _orientation(img)
        _decode(img, path, PROBE_DRAFT_SIZE, orientation)
        if img.mode not in _HIGH_DEPTH_MODES:  # rescaling cannot fail; other conversions can
            _to_rgb(img, path)
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _open(path: str | Path) -> Image.Image:
    """Open lazily with the format allowlist and the pixel cap; map every failure to ImageLoadError."""
    try:
        img = _open_guarded(path)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except PermissionError:
        raise ImageLoadError(path, "permission denied") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "is a folder, not a file") from None
    except UnidentifiedImageError:
        raise ImageLoadError(path, _unopenable_reason(path, None)) from None
    except Exception as exc:  # plugins raise SyntaxError, ValueError, struct.error on garbage headers
        raise ImageLoadError(path, _unopenable_reason(path, exc)) from None
    width, height = img.size
    if width < 1 or height < 1:
        img.close()
        raise ImageLoadError(path, "image has zero width or height")
    if width * height > MAX_PIXELS:
        img.close()
        raise ImageLoadError(path, _too_large(width * height))
    return img


def _open_guarded(path: str | Path) -> Image.Image:
    """Image.open with DecompressionBombWarning raised as an error, locally and thread-safely."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path, formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            pixels = _bomb_pixels(exc)
            if pixels is None or pixels > MAX_PIXELS or isinstance(exc, Image.DecompressionBombError):
                raise ImageLoadError(path, _too_large(pixels)) from None
        # Pillow's own warning threshold (~89 MP) is below our cap: this size is allowed.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path, formats=ALLOWED_FORMATS)


def _decode(img: Image.Image, path: str | Path, draft_size: tuple[int, int] | None, orientation: int | None) -> None:
    """Decode all pixels now (draft-reduced JPEG when asked) so corruption surfaces here, not later."""
    if draft_size is not None and img.format in ("JPEG", "MPO"):
        if orientation in (5, 6, 7, 8):  # stored sideways: the requested size is for the upright picture
            draft_size = (draft_size[1], draft_size[0])
        img.draft(None, draft_size)
    try:
        img.load()
    except Exception as exc:  # OSError "image file is truncated", "broken data stream", ...
        fmt = _FORMAT_NAMES.get(img.format or "", img.format or "image")
        raise ImageLoadError(path, f"truncated or corrupt {fmt} ({_short(exc)})") from None


def _to_rgb(img: Image.Image, path: str | Path) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: rescale high bit depths, composite transparency onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_rescale_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    has_transparency = mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    try:
        if has_transparency:
            rgba = img.convert("RGBA")
            background = Image.new("RGB", rgba.size, _WHITE)
            background.paste(rgba, mask=rgba.getchannel("A"))
            return background
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(path, f"unsupported colour mode {mode} ({_short(exc)})") from None


def _rescale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch the real value range of a 16-bit/32-bit/float image to 0-255 (constant images keep their level)."""
    data = values.astype(np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype=np.uint8)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    data = np.where(finite, data, lo)
    if hi > lo:
        scaled = (data - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    else:
        scaled = np.full(data.shape, _constant_level(lo, values.dtype))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _constant_level(value: float, dtype: np.dtype) -> float:
    """The grey level of an image with one value: its place in the type's nominal range."""
    if dtype.kind == "f":
        return value * 255.0 if 0.0 <= value <= 1.0 else min(max(value, 0.0), 255.0)
    if dtype.itemsize == 2:
        return value / 257.0
    return min(max(value, 0.0), 255.0)


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(_ORIENTATION_TAG)
    except Exception:  # unreadable EXIF: treat as upright
        return None


def _unopenable_reason(path: str | Path, exc: Exception | None) -> str:
    """Why the header could not be read: empty, a damaged file of a known format, or not an image at all."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = b""
    if not head:
        return "empty file (0 bytes)"
    detail = f" ({_short(exc)})" if exc is not None else ""
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature) and (fmt != "WEBP" or head[8:12] == b"WEBP"):
            return f"truncated or corrupt {fmt}{detail}" if fmt in _READABLE_SIGNATURES else f"unsupported image format ({fmt})"
    return f"corrupt image header{detail}" if exc is not None else "not an image file"


def _bomb_pixels(exc: Exception) -> int | None:
    match = _BOMB_PIXELS.search(str(exc))
    return int(match.group(1)) if match else None


def _too_large(pixels: int | None) -> str:
    limit = f"limit {MAX_PIXELS / 1e6:.0f} MP"
    if pixels is None:
        return f"image too large ({limit})"
    return f"image too large: {pixels / 1e6:.0f} MP ({limit})"


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."

