"""onnxruntime for the frozen part of a backbone, where :func:`inference_engine` says it is faster.

The feature and boundary caches run ``blocks[:boundary]`` (pooled for the head) over every training view
once; training gradients stay in torch. The frozen part is exported with a dynamic batch, checked against
torch on random input, and kept in the cache (kind ``onnx``, keyed by the backbone, a hash of the frozen
weights, the boundary, pooling, input size and library versions), so every run on the same pretrained
weights and boundary reuses it. Exporting costs seconds (EfficientNet-Lite0's whole frozen part: ~10 s
here), so a job exports only when it has ``CONVERT_AT`` image views or more, and otherwise uses a
conversion already cached, or torch. A conversion that disagrees with torch is never used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tl_desktop.engine.caching.onnx_check import KIND, agrees, check_input
from tl_desktop.engine.caching.store import CacheError, CacheStore, cache_key
from tl_desktop.engine.deploy.export import (
    FEATURES_NAME,
    FrozenPart,
    OnnxExportError,
    frozen_part_bytes,
)
from tl_desktop.engine.deploy.metadata import INPUT_NAME
from tl_desktop.engine.runtime.inference import inference_engine

FILE_NAME = "frozen.onnx"
CONVERT_AT = 3000  # image views: about where ~1.6x faster views repay an export on the first job
_log = logging.getLogger(__name__)
_open: dict[str, FrozenRunner] = {}  # the last conversion's session, shared by a run's splits (one key at most)


@dataclass(frozen=True)
class FrozenRunner:
    """The frozen part on onnxruntime: ``run(batch)`` gives what :class:`FrozenPart` gives, as numpy."""

    session: Any

    def run(self, batch: torch.Tensor) -> np.ndarray:
        array = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        return self.session.run([FEATURES_NAME], {INPUT_NAME: array})[0]


def frozen_key(backbone: str, weights_id: str, boundary: int, pooled: bool, input_size: int) -> str:
    """The cache key of a frozen part's conversion."""
    import onnxruntime

    return cache_key({"kind": "frozen-part", "backbone": backbone, "weights": weights_id, "boundary": boundary,
                      "pooled": pooled, "input_size": input_size, "torch": torch.__version__,
                      "onnxruntime": onnxruntime.__version__})


def _checked_session(model_bytes: bytes, model: nn.Module, boundary: int, pooled: bool, input_size: int,
                     device_type: str) -> Any:
    """A session for ``model_bytes``, refused (ValueError) unless it matches torch on random input."""
    from tl_desktop.engine.deploy.runner import inference_session

    try:
        session = inference_session(model_bytes, device_type)
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad graph
        raise ValueError(f"onnxruntime cannot run the frozen part: {exc}") from exc
    x = check_input(input_size)
    part = FrozenPart(model, boundary, pooled).eval()
    parameter = next(model.parameters())
    with torch.inference_mode():
        expected = part(x.to(parameter.device)).float().cpu().numpy()
    if not agrees(FrozenRunner(session).run(x), expected):
        raise ValueError("the onnxruntime conversion of the frozen part differs from torch")
    return session


def _opened(key: str, session: Any) -> FrozenRunner:
    """Keep ``session`` as the open conversion (letting go of the one before)."""
    _open.clear()
    _open[key] = FrozenRunner(session)
    return _open[key]


def frozen_runner(model: nn.Module, boundary: int, pooled: bool, input_size: int, weights_id: str,
                  image_views: int, device: torch.device, store: CacheStore) -> FrozenRunner | None:
    """The frozen part on onnxruntime for a job of ``image_views`` views, or None where torch should run it
    (the setting, a device onnxruntime cannot use, a small job without a cached conversion, or a network
    the exporter cannot take)."""
    if inference_engine(device.type) != "onnxruntime" or boundary == 0:
        return None
    backbone = str(getattr(model, "backbone_name", type(model).__name__))
    was_training = model.training
    model.eval()
    try:
        key = frozen_key(backbone, weights_id, boundary, pooled, input_size)
        folder = store.lookup(KIND, key)
        if folder is not None and key in _open:
            return _open[key]
        if folder is not None:
            try:
                model_bytes = (folder / FILE_NAME).read_bytes()
                return _opened(key, _checked_session(model_bytes, model, boundary, pooled, input_size, device.type))
            except (OSError, ValueError, RuntimeError):
                store.drop(KIND, key)  # damaged: export again below if the job is big enough
        if image_views < CONVERT_AT:
            return None
        model_bytes = frozen_part_bytes(model, boundary, pooled, input_size)
        session = _checked_session(model_bytes, model, boundary, pooled, input_size, device.type)
        with store.writing(KIND, key, {"description": f"{backbone} frozen part (blocks before {boundary}"
                                                      f"{', pooled' if pooled else ''}) for onnxruntime"}) as out:
            (out / FILE_NAME).write_bytes(model_bytes)
        return _opened(key, session)
    except (CacheError, OnnxExportError, ValueError, RuntimeError) as exc:
        _log.info("the frozen part runs on torch: %s", exc)
        return None  # torch gives the same numbers, only slower
    finally:
        model.train(was_training)
