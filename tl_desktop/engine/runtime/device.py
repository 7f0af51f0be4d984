"""Where models run: pick CUDA, Apple MPS or the CPU, size the thread and worker pools, and place models
and batches on the device in the memory layout that runs fastest there."""

from __future__ import annotations

import os

import torch
from torch import nn

from tl_desktop.config import DEVICES, ConfigError
from tl_desktop.engine.runtime.allocator import reuse_freed_memory

THREADS_ENV = "TL_DESKTOP_NUM_THREADS"


def mps_available() -> bool:
    """True when PyTorch can use Apple's Metal GPU."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device for ``preference`` ("auto" tries CUDA, then MPS, then the CPU)."""
    if preference not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {preference!r}")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was chosen but PyTorch sees no CUDA GPU on this computer; use 'auto' or 'cpu'")
    if preference == "mps" and not mps_available():
        raise ConfigError("device 'mps' was chosen but Apple Metal is not available here; use 'auto' or 'cpu'")
    return torch.device(preference)


def configure_threads(num_threads: int | None = None) -> int:
    """Set PyTorch's intra-op thread count (argument, else $TL_DESKTOP_NUM_THREADS, else PyTorch's default)."""
    if num_threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            try:
                num_threads = int(raw)
            except ValueError as exc:
                raise ConfigError(f"{THREADS_ENV} must be a whole number, got {raw!r}") from exc
    if num_threads is not None:
        if num_threads < 1:
            raise ConfigError(f"the number of threads must be at least 1, got {num_threads}")
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def default_num_workers(device: torch.device, requested: int | None = None) -> int:
    """DataLoader worker processes: the user's choice, else none on CPU (workers compete with compute)."""
    if requested is not None:
        return requested
    if device.type == "cpu":
        # Decoding in the main process avoids oversubscribing small machines and Windows spawn costs.
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def describe_device(device: torch.device) -> str:
    """A short human name for ``device``, e.g. "cuda (NVIDIA RTX 4070)" or "cpu (8 threads)"."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def uses_channels_last(model: nn.Module, device: torch.device) -> bool:
    """channels_last pays on CPU for convolutional backbones (about 2x per train step here)."""
    return device.type == "cpu" and not getattr(model, "is_transformer", False)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format that runs fastest there, and let the process
    reuse freed activation memory between batches."""
    reuse_freed_memory()
    model.to(device)
    if uses_channels_last(model, device):
        model.to(memory_format=torch.channels_last)
    return model


def to_model_input(x: torch.Tensor, model: nn.Module, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device`` (pinned, non-blocking on CUDA) in the model's preferred layout."""
    if device.type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    if x.dim() == 4 and uses_channels_last(model, device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x
