"""Networks as ONNX bytes through torch's dynamo exporter with a dynamic batch dimension: a loaded model with
outputs ``logits`` and ``probabilities`` (softmax of the logits over the model's stored temperature, inside
the graph) and the metadata of :mod:`tl_desktop.engine.deploy.metadata`; and the frozen part of a backbone
(``blocks[:boundary]``, pooled or not) with output ``features``, for the feature caches."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from tl_desktop.engine.deploy.metadata import INPUT_NAME, OUTPUT_NAMES, metadata_props
from tl_desktop.engine.models.bundle import LoadedModel

FEATURES_NAME = "features"
OPSET = 20  # the dynamo exporter's own default in torch 2.14; onnxruntime >= 1.17 runs it


class OnnxExportError(Exception):
    """The network could not be exported to ONNX; the message says why."""


class _WithProbabilities(nn.Module):
    """The classifier with its calibrated softmax, so the file gives what the app shows."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x).float()
        return logits, torch.softmax(logits / self.temperature, dim=1)


class FrozenPart(nn.Module):
    """``blocks[:boundary]`` of a classifier, then its pool when ``pooled``: what the feature caches store."""

    def __init__(self, model: nn.Module, boundary: int, pooled: bool) -> None:
        super().__init__()
        self.model, self.boundary, self.pooled = model, int(boundary), bool(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.run_blocks(x, 0, self.boundary)
        return self.model.pool(out) if self.pooled else out


def _exported(module: nn.Module, input_size: int, output_names: list[str], what: str) -> Any:
    """The ONNX ``ModelProto`` of ``module`` (on the CPU) for image batches of any size."""
    example = (torch.zeros(2, 3, input_size, input_size),)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes are for developers, not users
            program = torch.onnx.export(
                module, example, dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=output_names, dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                verbose=False, report=False,
            )
    except Exception as exc:  # the exporter raises many kinds; each means "this network did not export"
        raise OnnxExportError(f"{what} could not be exported to ONNX: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return program.model_proto


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()


def frozen_part_bytes(model: nn.Module, boundary: int, pooled: bool, input_size: int) -> bytes:
    """The frozen part of ``model`` (see :class:`FrozenPart`) as serialized ONNX, the model untouched."""
    part = FrozenPart(_cpu_copy(model), boundary, pooled).eval()
    name = getattr(model, "backbone_name", type(model).__name__)
    return _exported(part, input_size, [FEATURES_NAME], f"the frozen part of {name!r}").SerializeToString()


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """``loaded`` as a serialized ONNX model with tl_desktop's metadata (on the CPU, the model untouched)."""
    wrapped = _WithProbabilities(_cpu_copy(loaded.model), loaded.meta.temperature).eval()
    proto = _exported(wrapped, loaded.preprocessing.input_size, list(OUTPUT_NAMES),
                      f"backbone {loaded.meta.backbone!r}")
    proto.doc_string = f"tl_desktop classifier ({loaded.meta.backbone}): {', '.join(loaded.classes)}"
    del proto.metadata_props[:]
    for key, value in metadata_props(loaded.meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()
