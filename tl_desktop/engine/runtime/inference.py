"""Which library runs a trained network for prediction and evaluation: torch or onnxruntime.

``TL_DESKTOP_INFERENCE=torch|onnxruntime`` chooses; without it the CPU uses onnxruntime (measured here:
EfficientNet-Lite0 at 230 img/s against torch's 136-146 img/s on 2 cores) and a GPU keeps torch, unless
onnxruntime can use that GPU (onnxruntime-gpu installed). Training gradients always stay in torch.
"""

from __future__ import annotations

import importlib.util
import os

from tl_desktop.config import ConfigError

INFERENCE_ENV = "TL_DESKTOP_INFERENCE"
ENGINES = ("torch", "onnxruntime")


def onnxruntime_installed() -> bool:
    """True when onnxruntime can be imported (it is a dependency, but a trimmed install may lack it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnxruntime_providers(device_type: str) -> list[str]:
    """onnxruntime's execution providers for a torch device type, best first (the CPU always last)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    wanted = ["CUDAExecutionProvider"] if device_type == "cuda" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def inference_engine(device_type: str = "cpu") -> str:
    """"torch" or "onnxruntime" for a device type: the user's ``TL_DESKTOP_INFERENCE``, else the faster one."""
    raw = os.environ.get(INFERENCE_ENV, "").strip().lower()
    if raw:
        if raw not in ENGINES:
            raise ConfigError(f"{INFERENCE_ENV} must be one of {', '.join(ENGINES)}, got {raw!r}")
        if raw == "onnxruntime" and not onnxruntime_installed():
            raise ConfigError(f"{INFERENCE_ENV}=onnxruntime, but onnxruntime is not installed")
        return raw
    if not onnxruntime_installed():
        return "torch"
    if device_type == "cpu":
        return "onnxruntime"
    if device_type == "cuda" and onnxruntime_providers("cuda")[0] == "CUDAExecutionProvider":
        return "onnxruntime"
    return "torch"


def session_threads() -> int:
    """onnxruntime's intra-op threads: as many as torch uses (``TL_DESKTOP_NUM_THREADS`` sets both)."""
    import torch

    return max(1, torch.get_num_threads())
