"""The run folder: a fresh ``<out_dir>/<YYYYmmdd-HHMMSS>-<backbone>`` per fit and the files in it.

::

    config.json       the RunConfig (the run is reproducible from it and its seed)
    split.json        which image went to train / val / test
    audit.json        the data audit
    events.jsonl      one JSON event per line, flushed as it happens
    best.safetensors  the best checkpoint so far (atomic writes)
    model.tlmodel     the model file, exported from the best checkpoint at the end
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tl_desktop.config import RunConfig
from tl_desktop.engine.models.bundle import (
    RUN_MODEL_NAME,
    BundleMeta,
    save_bundle,
    state_bytes,
)
from tl_desktop.fileio import DiskWriteError, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.data.preprocess import Preprocessing

CONFIG_NAME = "config.json"
SPLIT_NAME = "split.json"
AUDIT_NAME = "audit.json"
EVENTS_NAME = "events.jsonl"
BEST_NAME = "best.safetensors"


def new_run_dir(out_dir: str | Path, backbone: str) -> Path:
    """Create and return a fresh ``<out_dir>/<YYYYmmdd-HHMMSS>-<backbone>`` folder (suffixed if taken)."""
    base = f"{datetime.now():%Y%m%d-%H%M%S}-{backbone}"
    for attempt in range(1, 1000):
        path = Path(out_dir) / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise DiskWriteError(f"could not create a new run folder under {out_dir}")


def write_run_records(run_dir: Path, config: RunConfig, scan: ScanResult) -> None:
    """Write ``config.json``, ``split.json`` and ``audit.json`` atomically."""
    config.save(run_dir / CONFIG_NAME)
    atomic_write_text(run_dir / SPLIT_NAME, json.dumps(scan.split.to_dict(), indent=1))
    atomic_write_text(run_dir / AUDIT_NAME, json.dumps(scan.audit.to_dict(), indent=1))


def save_checkpoint(run_dir: Path, model: torch.nn.Module) -> Path:
    """Write the model's weights to ``best.safetensors`` atomically; return the path."""
    path = run_dir / BEST_NAME
    atomic_write_bytes(path, state_bytes(model))
    return path


def export_best_model(
    run_dir: Path, model: torch.nn.Module, config: RunConfig, classes: list[str],
    preprocessing: Preprocessing, metrics: dict[str, Any],
) -> Path:
    """Load ``best.safetensors`` into ``model`` and write ``model.tlmodel``; return its path."""
    from safetensors.torch import load_file

    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(run_dir / BEST_NAME), device=str(device)), strict=True)
    meta = BundleMeta(
        backbone=config.model.backbone, classes=list(classes), preprocessing=preprocessing.to_dict(),
        config=config.to_dict(), metrics=metrics,
    )
    return save_bundle(run_dir / RUN_MODEL_NAME, model.eval(), meta)
