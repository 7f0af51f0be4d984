"""The model file: one ``.tlmodel`` zip with ``weights.safetensors`` and ``meta.json``.

Loading never unpickles anything: weights are safetensors, metadata is JSON, and the network is
rebuilt from the backbone registry (``pretrained=False``) before the weights are loaded strictly.
Prediction uses exactly the stored preprocessing's eval transform (:mod:`preprocess`: the same
pixels and normalisation validation used during training, whether an image comes alone or in a batch).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from tl_desktop import __version__
from tl_desktop.engine.models.meta_checks import (
    MetaProblem,
    check_meta_fields,
    check_weights,
    stored_config,
)
from tl_desktop.engine.models.predictor import Predictor
from tl_desktop.engine.runtime.device import prepare_model, to_model_input
from tl_desktop.fileio import atomic_writer

FORMAT_VERSION = 1
WEIGHTS_NAME = "weights.safetensors"
META_NAME = "meta.json"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt")


class BundleError(Exception):
    """A model file cannot be used; the message names the file and says why."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped a model (stored in its metadata)."""
    import safetensors
    import timm
    import torchvision

    return {
        "tl_desktop": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class BundleMeta:
    """Everything besides the weights that a model file records."""

    backbone: str
    classes: list[str]
    preprocessing: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    temperature: float = 1.0
    created: str = field(default_factory=utc_now)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "model file") -> "BundleMeta":
        version = raw.get("format_version")
        if not isinstance(version, int):
            raise BundleError(f"{source} has no valid format_version; it is not a tl_desktop model file")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"{source} was written by a newer tl_desktop (model format {version}, this version reads "
                f"{FORMAT_VERSION}); please update tl_desktop"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in ("backbone", "classes", "preprocessing") if n not in raw)
        if missing:
            raise BundleError(f"{source} metadata lacks {', '.join(missing)}")
        try:
            check_meta_fields(raw)
        except MetaProblem as exc:
            raise BundleError(f"{source} cannot be used: {exc}") from None
        return cls(**{k: v for k, v in raw.items() if k in names})


def state_bytes(model: torch.nn.Module) -> bytes:
    """``model``'s state dict as safetensors bytes (CPU, contiguous, no shared storage)."""
    # Clone so tensors that share storage (tied weights) save as independent safetensors entries.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(state, metadata={"format": "pt"})


def _write_zip(path: Path, meta: BundleMeta, weights: bytes) -> Path:
    path = Path(path)
    with atomic_writer(path) as handle:
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(META_NAME, json.dumps(meta.to_dict(), indent=2), compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr(WEIGHTS_NAME, weights, compress_type=zipfile.ZIP_STORED)
    return path


def save_bundle(path: str | Path, model: torch.nn.Module, meta: BundleMeta) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` atomically; return the path."""
    return _write_zip(Path(path), meta, state_bytes(model))


def existing_model_file(path: str | Path) -> Path:
    """``path`` if it is a file (run folders resolve through ``runfolder.model_file_of``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise BundleError(f"{path} is a folder, not a model file")
    if not path.is_file():
        raise BundleError(f"model file {path} does not exist")
    return path


MAX_META_BYTES = 1 << 20
# Trained weights barely compress; a member that inflates far beyond its stored size is not weights.
MAX_WEIGHTS_INFLATION = 50


def _check_weights_size(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse, before they are inflated, weights whose size disagrees with what they claim to hold (a small
    file that would inflate to gigabytes)."""
    weights = archive.getinfo(WEIGHTS_NAME)
    if weights.file_size > MAX_WEIGHTS_INFLATION * max(1, weights.compress_size):
        raise BundleError(f"{path}: its weights would inflate from {weights.compress_size:,} to "
                          f"{weights.file_size:,} bytes, which no trained weights do; refused")
    with archive.open(WEIGHTS_NAME) as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        if header_size > min(weights.file_size, MAX_META_BYTES * 100):
            raise BundleError(f"{path} has damaged weights (a header of {header_size:,} bytes)")
        try:
            header = json.loads(handle.read(header_size))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(f"{path} has damaged weights ({exc})") from exc
    expected = 8 + header_size + max(ends, default=0)
    if expected != weights.file_size:
        raise BundleError(f"{path} has damaged weights: they hold {weights.file_size:,} bytes but their tensors "
                          f"need {expected:,}")


def read_bundle(path: Path) -> tuple[BundleMeta, bytes]:
    """Read and check a model file's metadata and raw weights (nothing is executed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            risky = sorted(n for n in names if n.lower().endswith(_PICKLE_SUFFIXES))
            if risky:
                raise BundleError(
                    f"{path} contains pickled data ({', '.join(risky)}); tl_desktop refuses to load it because "
                    "pickle files can run code"
                )
            if META_NAME not in names or WEIGHTS_NAME not in names:
                raise BundleError(f"{path} is not a tl_desktop model file (it lacks {META_NAME} or {WEIGHTS_NAME})")
            meta_dict = _read_meta(archive, path)
            _check_weights_size(archive, path)
            weights = archive.read(WEIGHTS_NAME)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path} is not a tl_desktop model file or it is damaged ({exc})") from exc
    except OSError as exc:
        raise BundleError(f"cannot read model file {path}: {exc}") from exc
    return BundleMeta.from_dict(meta_dict, source=str(path)), weights


def _read_meta(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """The metadata as a dict; refused when it is too large to be metadata or is not a JSON object."""
    size = archive.getinfo(META_NAME).file_size
    if size > MAX_META_BYTES:
        raise BundleError(f"{path} has metadata of {size:,} bytes (at most {MAX_META_BYTES:,}); it is not "
                          "a tl_desktop model file")
    try:
        meta_dict = json.loads(archive.read(META_NAME).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} has damaged metadata ({exc})") from exc
    if not isinstance(meta_dict, dict):
        raise BundleError(f"{path} has damaged metadata (not a JSON object)")
    return meta_dict


class LoadedModel(Predictor):
    """A model file ready to predict with torch: the network in eval mode, its classes and its preprocessing."""

    engine = "torch"

    def __init__(self, model: torch.nn.Module, meta: BundleMeta, device: torch.device, path: Path | None = None):
        from tl_desktop.engine.data.preprocess import eval_transform

        super().__init__(meta, path)
        self.model = model
        self.device = device
        self.transform = eval_transform(self.preprocessing)

    def predict_batch(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities (rows sum to 1) for a batch of preprocessed images, temperature applied."""
        self.model.eval()
        with torch.inference_mode():
            logits = self.model(to_model_input(x, self.model, self.device)).float() / float(self.meta.temperature)
            return torch.softmax(logits, dim=1).cpu().numpy()


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Open a model file (or a run folder's model) for prediction, without executing any stored code."""
    from tl_desktop.engine.models.backbones import create_model

    path = existing_model_file(path)
    meta, weights = read_bundle(path)
    try:
        state = load_safetensors_bytes(weights)
    except (SafetensorError, ValueError) as exc:
        raise BundleError(f"{path} has damaged weights ({exc})") from exc
    dropout = stored_config(meta.config).model.dropout
    model = create_model(meta.backbone, num_classes=len(meta.classes), dropout=dropout, pretrained=False)
    try:
        check_weights(state, model.state_dict(), len(meta.classes))
    except MetaProblem as exc:
        raise BundleError(f"{path} cannot be used: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{path}: the weights do not fit backbone {meta.backbone!r} ({exc})") from exc
    target = torch.device(device)
    prepare_model(model, target).eval()  # channels_last for CNNs on the CPU
    return LoadedModel(model, meta, target, path)


def update_bundle_meta(path: str | Path, **changes: Any) -> BundleMeta:
    """Change metadata fields (e.g. ``temperature``, ``metrics``) of a model file atomically."""
    path = existing_model_file(path)
    meta, weights = read_bundle(path)
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(BundleMeta)})
    if unknown:
        raise BundleError(f"unknown model file metadata fields: {', '.join(unknown)}")
    if "format_version" in changes:
        raise BundleError("format_version cannot be changed")
    new_meta = dataclasses.replace(meta, **changes)
    _write_zip(path, new_meta, weights)
    return new_meta
