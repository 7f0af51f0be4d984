"""Read DICOM files into windowed 8-bit RGB pictures, plus the few tags other parts may ask for.

The grayscale pipeline follows the standard's order: the Modality LUT (rescale slope and intercept,
or a modality LUT table), then the VOI transform — a window given in the settings, else the file's
VOI LUT, else its first window centre/width, else the frame's own value range — then MONOCHROME1
inversion, then 8 bits. Colour files (RGB, YBR_*, palette colour) become RGB. A multi-frame file
gives one frame, picked by a rule (the middle one unless the settings say otherwise).

Privacy: nothing here returns, or puts into a message, a patient-identifying tag value. The only
tags read for other uses are the device ones (manufacturer, model, modality) and, when a caller asks
for grouping, one tag whose value is meant to be hashed with :func:`hashed_group` before it is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tl_desktop.config import DICOM_FRAME_RULES, dicom_frame_number, parse_dicom_window

DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm", ".dicom"})
_PREAMBLE = 128
_MAGIC = b"DICM"
_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "YBR_PARTIAL_422"})


class DicomReadError(Exception):
    """A DICOM file cannot be shown; ``reason`` says why in a few words (never a tag value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DicomReading:
    """How to turn a file into a picture: a window (centre, width) that overrides the file's, and a frame rule."""

    window: tuple[float, float] | None = None
    frame: str = "middle"

    @classmethod
    def from_settings(cls, window: str = "auto", frame: str = "middle") -> "DicomReading":
        """From the data settings' ``dicom_window`` ("auto" or "C,W") and ``dicom_frame`` strings."""
        return cls(parse_dicom_window(window), frame)


@dataclass(frozen=True)
class DicomInfo:
    """What the audit may know of a DICOM file: geometry, encoding and the device (no patient data)."""

    width: int
    height: int
    frames: int
    bits_stored: int
    photometric: str
    transfer_syntax: str
    manufacturer: str = ""
    model: str = ""
    modality: str = ""


def is_dicom_name(path: str | Path) -> bool:
    """True for the .dcm / .dicom extensions (any case)."""
    return Path(path).suffix.lower() in DICOM_EXTENSIONS


def has_preamble(path: str | Path) -> bool:
    """True when a plain file holds "DICM" at byte 128, the mark of a DICOM file whatever its name."""
    if not os.path.isfile(path):  # a pipe or a device must never be read
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PREAMBLE + len(_MAGIC))
    except OSError:
        return False
    return head[_PREAMBLE:] == _MAGIC


def read_dicom(path: str | Path, reading: DicomReading | None = None, max_pixels: int = 100_000_000
               ) -> tuple[Image.Image, DicomInfo]:
    """Decode one frame of ``path`` into an 8-bit RGB picture and describe the file."""
    reading = reading or DicomReading()
    ds = _dataset(path)
    info = _info(ds)
    if info.width * info.height > max_pixels:
        raise DicomReadError(f"image too large: {info.width * info.height / 1e6:.0f} MP (limit {max_pixels / 1e6:.0f} MP)")
    _check_decoder(ds)
    index = frame_index(reading.frame, info.frames)
    pixels = _frame(ds, index if info.frames > 1 else None)
    if info.photometric in _COLOUR or info.photometric == "PALETTE COLOR":
        rgb = _colour_to_uint8(pixels, ds, info)
    else:
        grey = _window_to_uint8(_modality(pixels, ds), ds, reading.window)
        if info.photometric == "MONOCHROME1":  # low values are white in MONOCHROME1
            grey = 255 - grey
        rgb = np.repeat(grey[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB"), info


def frame_index(rule: str, frames: int) -> int:
    """The 0-based frame a rule picks: middle, first, last, or a 1-based number (the last when beyond it)."""
    if rule == "first":
        return 0
    if rule == "last":
        return frames - 1
    if rule == "middle":
        return frames // 2
    number = dicom_frame_number(rule)
    if number is None:
        raise DicomReadError(f"unknown frame rule {rule!r} (use one of {', '.join(DICOM_FRAME_RULES)} or a number)")
    return min(number, frames) - 1


def read_tag(path: str | Path, keyword: str) -> str:
    """The value of one tag (by keyword, e.g. "PatientID") as text, "" when absent; pixels are not read.

    Meant for grouping: hash the value with :func:`hashed_group` before it is stored or shown.
    """
    import pydicom
    from pydicom.datadict import tag_for_keyword

    if tag_for_keyword(keyword) is None:
        raise DicomReadError(f"{keyword!r} is not a DICOM tag keyword")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword], force=is_dicom_name(path))
        value = ds.get(keyword)
    except Exception as exc:  # pydicom raises many kinds on damaged headers
        raise DicomReadError(f"DICOM header cannot be read ({type(exc).__name__})") from None
    if value is None:
        return ""
    return str(value).strip()


def hashed_group(value: str, salt: str | bytes) -> str:
    """A salted, keyed hash (HMAC-SHA256, 16 hex digits) of a group value such as a PatientID; "" stays ""."""
    if not value:
        return ""
    key = salt.encode("utf-8") if isinstance(salt, str) else salt
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _dataset(path: str | Path):
    """The parsed file; a file named .dcm without the preamble is still tried (old files lack it)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=is_dicom_name(path))
    except InvalidDicomError:
        raise DicomReadError("not a DICOM file") from None
    except Exception as exc:  # truncated headers raise EOFError, struct.error, ValueError, ...
        raise DicomReadError(f"corrupt DICOM file ({type(exc).__name__})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomReadError("DICOM file without an image (no pixel data)")
    if "TransferSyntaxUID" not in ds.file_meta:  # a headerless file: the standard's default encoding
        from pydicom.uid import ImplicitVRLittleEndian

        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _info(ds) -> DicomInfo:
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (AttributeError, TypeError, ValueError):
        raise DicomReadError("DICOM file without a valid image size (Rows/Columns)") from None
    if rows < 1 or columns < 1:
        raise DicomReadError("image has zero width or height")
    syntax = ds.file_meta.TransferSyntaxUID
    return DicomInfo(
        width=columns, height=rows, frames=frames, bits_stored=int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 8)),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        transfer_syntax=getattr(syntax, "name", str(syntax)),
        manufacturer=_text(ds, "Manufacturer"), model=_text(ds, "ManufacturerModelName"), modality=_text(ds, "Modality"),
    )


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _check_decoder(ds) -> None:
    """A transfer syntax nothing installed can decode is named, with what it needs."""
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.TransferSyntaxUID
    label = f"{getattr(uid, 'name', '') or 'unknown'} ({uid})"
    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError):
        raise DicomReadError(f"no decoder for its DICOM transfer syntax {label}") from None
    if not decoder.is_available:
        raise DicomReadError(f"the decoder for its DICOM transfer syntax {label} is not installed")


def _frame(ds, index: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=index)
    except Exception as exc:  # decoders raise RuntimeError, ValueError, OSError on damaged data
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DicomReadError(f"truncated or corrupt DICOM pixel data ({text[:80]})") from None


def _modality(pixels: np.ndarray, ds) -> np.ndarray:
    """Stored values to modality units (e.g. Hounsfield units for CT)."""
    from pydicom.pixels import apply_modality_lut

    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def _window_to_uint8(values: np.ndarray, ds, window: tuple[float, float] | None) -> np.ndarray:
    """The VOI transform straight to 0-255: the given window, the file's VOI LUT or window, else the value range."""
    if window is None and "VOILUTSequence" in ds:
        return _voi_lut_to_uint8(values, ds)
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper()
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    if window is None or window[1] <= 0:
        return _stretch(values)
    centre, width = window
    if function == "SIGMOID":
        scaled = 255.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    elif function == "LINEAR_EXACT":
        scaled = ((values - centre) / width + 0.5) * 255.0
    else:  # LINEAR, the standard's default (PS3.3 C.11.2.1.2.1)
        scaled = ((values - (centre - 0.5)) / max(width - 1.0, 1.0) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _voi_lut_to_uint8(values: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_voi

    item = ds.VOILUTSequence[0]
    bits = int(item.LUTDescriptor[2]) or 16
    out = np.asarray(apply_voi(values.astype(np.int64), ds, 0), dtype=np.float64)
    return np.clip(np.rint(out * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)


def _first(value) -> float:
    """The first of a multi-valued window centre/width."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _stretch(values: np.ndarray) -> np.ndarray:
    """No window anywhere: the frame's own value range spans 0-255."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if hi <= lo:
        return np.full(values.shape, 0, dtype=np.uint8)
    scaled = (np.where(finite, values, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _colour_to_uint8(pixels: np.ndarray, ds, info: DicomInfo) -> np.ndarray:
    """RGB (YBR was converted by the decoder) or palette colour, as 8-bit RGB."""
    if info.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
        bits = 16 if pixels.dtype.itemsize > 1 else 8
    else:
        bits = info.bits_stored or 8
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise DicomReadError(f"unsupported DICOM colour layout ({info.photometric}, shape {pixels.shape})")
    if bits <= 8 and pixels.dtype == np.uint8:
        return pixels
    scaled = pixels.astype(np.float64) * (255.0 / (2**bits - 1))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
