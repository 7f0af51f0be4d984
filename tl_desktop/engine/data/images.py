"""Open any supported image file into a correct 3-channel RGB picture, safely.

Every path through here ends in mode ``RGB`` or in :class:`ImageLoadError`: EXIF orientation is
applied, 16-bit and float images are rescaled by their real range (a plain ``convert`` would
saturate them), transparency is composited onto white, and oversized images are refused before a
single pixel is decoded. No Pillow global is changed: the decompression-bomb warning is turned into
an error only inside :func:`_open`, and truncated files are never "repaired" with grey. DICOM files
(by extension, or by their preamble when the name has no image extension) are read by :mod:`dicom`
into their windowed 8-bit picture, so every consumer of :func:`load_rgb` sees what a viewer shows.
The probe also returns the cheap facts the shortcut audit compares (format, colour mode, JPEG
quality, camera, DICOM device), read from the header the decode opens anyway.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tl_desktop.engine.data.dicom import (
    DICOM_EXTENSIONS,
    DicomInfo,
    DicomReadError,
    DicomReading,
    has_preamble,
    read_dicom,
)
from tl_desktop.engine.data.leakage import picture_hash

PICTURE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
SUPPORTED_EXTENSIONS: frozenset[str] = PICTURE_EXTENSIONS | DICOM_EXTENSIONS

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
_MODEL_TAG = 0x0110
_MODE_NAMES = {
    "1": "1-bit black and white", "L": "8-bit grayscale", "LA": "8-bit grayscale with transparency",
    "P": "palette colour", "PA": "palette colour with transparency", "RGB": "8-bit colour",
    "RGBA": "8-bit colour with transparency", "CMYK": "CMYK colour", "YCbCr": "8-bit colour",
    "I": "32-bit grayscale", "F": "floating-point grayscale",
}
# libjpeg's standard luminance table: a file's table over it gives the quality it was saved with.
_STANDARD_LUMINANCE_SUM = 3688
# File signatures, to tell a damaged image from a file that is not an image at all.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"RIFF", "WEBP"), (b"GIF8", "GIF"), (b"8BPS", "PSD"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"),
)
_READABLE_SIGNATURES = frozenset({"PNG", "JPEG", "BMP", "TIFF", "WEBP"})
_WHITE = (255, 255, 255)

# warnings.catch_warnings swaps a process-wide filter list; serialise it between scan threads.
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageProperties:
    """What the scan learns of a file besides its pixels: the facts that should not carry a label."""

    width: int
    height: int
    format: str
    colour: str
    jpeg_quality: int | None = None
    compression: str = ""
    camera: str = ""
    manufacturer: str = ""
    model: str = ""
    modality: str = ""
    frames: int = 1
    picture_hash: int | None = None  # perceptual hash of the decoded picture, for near-duplicates


class ImageLoadError(Exception):
    """A file could not be turned into an RGB image; ``reason`` says why in a few words."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_supported_file(path: str | Path) -> bool:
    """True for a visible file with a supported image extension (any case), or a DICOM file by its preamble."""
    name = Path(path).name
    if name.startswith("."):
        return False
    return Path(name).suffix.lower() in SUPPORTED_EXTENSIONS or has_preamble(path)


def is_dicom(path: str | Path) -> bool:
    """A .dcm/.dicom name, or a file without a picture extension that carries the DICOM preamble."""
    suffix = Path(path).suffix.lower()
    return suffix in DICOM_EXTENSIONS or (suffix not in PICTURE_EXTENSIONS and has_preamble(path))


def load_rgb(path: str | Path, draft_size: tuple[int, int] | None = None, dicom: DicomReading | None = None
             ) -> Image.Image:
    """Decode ``path`` into an RGB image, orientation applied; JPEGs may decode reduced to >= draft_size.
    A DICOM file gives its windowed frame, read as ``dicom`` says (the file's own window by default)."""
    if is_dicom(path):
        return _read_dicom(path, dicom)[0]
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
    facts = probe_properties(path)
    return facts.width, facts.height


def probe_properties(path: str | Path) -> ImageProperties:
    """Really decode ``path`` (reduced for JPEG) to detect corruption; return its upright size and header facts."""
    if is_dicom(path):
        picture, info = _read_dicom(path, None)
        return replace(_dicom_properties(info), picture_hash=picture_hash(picture))
    with _open(path) as img:
        width, height = img.size
        exif = _exif(img)
        orientation = exif.get(_ORIENTATION_TAG)
        fmt = _FORMAT_NAMES.get(img.format or "", img.format or "")
        facts = ImageProperties(
            width, height, fmt, _colour_name(img.mode), _jpeg_quality(img), str(img.info.get("compression", "")),
            _camera(exif),
        )
        _decode(img, path, PROBE_DRAFT_SIZE, orientation)
        facts = replace(facts, picture_hash=picture_hash(_to_rgb(img, path)))
    if orientation in (5, 6, 7, 8):
        return ImageProperties(height, width, *_fields_after_size(facts))
    return facts


def _fields_after_size(facts: ImageProperties) -> tuple:
    return (facts.format, facts.colour, facts.jpeg_quality, facts.compression, facts.camera, facts.manufacturer,
            facts.model, facts.modality, facts.frames, facts.picture_hash)


def _read_dicom(path: str | Path, reading: DicomReading | None) -> tuple[Image.Image, DicomInfo]:
    """A DICOM file's picture and facts; every failure, a missing codec included, is an ImageLoadError."""
    try:
        return read_dicom(path, reading, MAX_PIXELS)
    except DicomReadError as exc:
        raise ImageLoadError(path, exc.reason) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise ImageLoadError(path, _short(exc)) from None


def _dicom_properties(info: DicomInfo) -> ImageProperties:
    kind = "colour" if info.photometric not in ("MONOCHROME1", "MONOCHROME2") else "grayscale"
    return ImageProperties(
        info.width, info.height, "DICOM", f"{info.bits_stored}-bit {kind} ({info.photometric})",
        compression=info.transfer_syntax, manufacturer=info.manufacturer, model=info.model,
        modality=info.modality, frames=info.frames,
    )


def _colour_name(mode: str) -> str:
    return "16-bit grayscale" if mode.startswith("I;16") else _MODE_NAMES.get(mode, mode)


def _jpeg_quality(img: Image.Image) -> int | None:
    """The quality a JPEG was saved with, estimated from its luminance quantisation table (libjpeg's scaling)."""
    tables = getattr(img, "quantization", None)
    if img.format not in ("JPEG", "MPO") or not tables:
        return None
    luminance = tables.get(0) or next(iter(tables.values()))
    scale = 100.0 * sum(luminance) / _STANDARD_LUMINANCE_SUM
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(min(max(round(quality), 1), 100))


def _camera(exif: dict) -> str:
    model = exif.get(_MODEL_TAG)
    return model.strip("\x00 ")[:60] if isinstance(model, str) else ""


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
    return _exif(img).get(_ORIENTATION_TAG)


def _exif(img: Image.Image) -> dict:
    try:
        return dict(img.getexif())
    except Exception:  # unreadable EXIF: treat as upright, no camera
        return {}


def unreachable_reason(path: str | Path, error: OSError | None = None) -> str:
    """Why a path cannot be opened at all: a loop of links, a link to nothing, or simply missing."""
    if error is None:
        try:
            os.stat(path)
        except OSError as caught:
            error = caught
    if error is not None and error.errno == errno.ELOOP:
        return "a loop of symbolic links (it never leads to a file)"
    if os.path.islink(path):
        return "a link to something that does not exist"
    return "does not exist" if error is None or error.errno == errno.ENOENT else f"cannot be opened ({error.strerror})"


def _unopenable_reason(path: str | Path, exc: Exception | None) -> str:
    """Why the header could not be read: empty, a damaged file of a known format, or not an image at all."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        return unreachable_reason(path, error)
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

