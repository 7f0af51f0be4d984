"""A loaded model as ONNX bytes: torch's dynamo exporter, a dynamic batch dimension, outputs ``logits`` and
``probabilities`` (softmax of the logits over the model's stored temperature, inside the graph), and the
metadata of :mod:`tl_desktop.engine.deploy.metadata`."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from tl_desktop.engine.deploy.metadata import INPUT_NAME, OUTPUT_NAMES, metadata_props
from tl_desktop.engine.models.bundle import LoadedModel

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


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """``loaded`` as a serialized ONNX model with tl_desktop's metadata (on the CPU, the model untouched)."""
    model = copy.deepcopy(loaded.model).to("cpu", memory_format=torch.contiguous_format).eval()
    size = loaded.preprocessing.input_size
    wrapped = _WithProbabilities(model, loaded.meta.temperature).eval()
    example = (torch.zeros(2, 3, size, size),)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes are for developers, not users
            program = torch.onnx.export(
                wrapped, example, dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES), dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                verbose=False, report=False,
            )
    except Exception as exc:  # the exporter raises many kinds; each means "this network did not export"
        raise OnnxExportError(f"backbone {loaded.meta.backbone!r} could not be exported to ONNX: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    proto = program.model_proto
    proto.doc_string = f"tl_desktop classifier ({loaded.meta.backbone}): {', '.join(loaded.classes)}"
    del proto.metadata_props[:]
    for key, value in metadata_props(loaded.meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()
