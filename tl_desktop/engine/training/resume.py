"""The resume point of a run: everything needed to continue after the last completed epoch.

Written atomically after every epoch into one safetensors file: the model's weights, the optimizer's
tensors and the random generators' states as tensors, and the rest (epoch, phase, optimizer groups,
scheduler, early stopping, history, best epoch) as JSON in the file's metadata. Nothing is pickled,
so a resume point can be loaded without running code. A run that completes removes its resume point.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from tl_desktop.config import ConfigError
from tl_desktop.fileio import atomic_write_bytes

FORMAT_VERSION = 1
_STATE_KEY = "tl_desktop_resume"


@dataclass
class ResumeState:
    """Where a run stood after ``epoch`` (1-based, the last completed one) in phase ``phase``."""

    epoch: int
    phase: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    callbacks: dict[str, dict[str, Any]]
    trainer: dict[str, Any]


def capture_rng(generator: torch.Generator | None) -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's generators and the DataLoader's ``generator``."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss,
                                               gauss],
        "torch": torch.get_rng_state(),
        "loader": generator.get_state() if generator is not None else None,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None) -> None:
    """Put every generator back where :func:`capture_rng` found it."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if generator is not None and state["loader"] is not None:
        generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _split_tensors(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with every tensor replaced by a reference into ``tensors`` (JSON-able)."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        return {"__dict__": [[_split_tensors(k, f"{prefix}.k{i}", tensors), _split_tensors(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    return value


def _join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`_split_tensors`."""
    if isinstance(value, dict) and "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if isinstance(value, dict) and "__dict__" in value:
        return {_join_tensors(k, tensors): _join_tensors(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_join_tensors(v, tensors) for v in value]
    return value


def save_resume_state(path: Path, state: ResumeState) -> None:
    """Write ``state`` to ``path`` atomically (a kill leaves the previous resume point intact)."""
    tensors = {f"model.{name}": t.detach().cpu().contiguous() for name, t in state.model.items()}
    rest = {"format_version": FORMAT_VERSION, "epoch": state.epoch, "phase": state.phase,
            "optimizer": state.optimizer, "scheduler": state.scheduler, "rng": state.rng,
            "callbacks": state.callbacks, "trainer": state.trainer}
    meta = json.dumps(_split_tensors(rest, "state", tensors))
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata={_STATE_KEY: meta}))


def load_resume_state(path: Path) -> ResumeState:
    """Read a resume point; a missing or damaged one is a ConfigError that says what to do instead."""
    if not path.is_file():
        raise ConfigError(f"run folder {path.parent} has no resume point (the run ended, or was stopped before "
                          "its first epoch finished); start a new run instead")
    try:
        raw = path.read_bytes()
        tensors = load_safetensors_bytes(raw)
        header_size = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_size])["__metadata__"][_STATE_KEY]
        rest = _join_tensors(json.loads(meta), tensors)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the resume point {path} is damaged ({exc}); start a new run instead") from exc
    if rest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"the resume point {path} was written by another version of tl_desktop")
    model = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    return ResumeState(rest["epoch"], rest["phase"], model, rest["optimizer"], rest["scheduler"], rest["rng"],
                       rest["callbacks"], rest["trainer"])
