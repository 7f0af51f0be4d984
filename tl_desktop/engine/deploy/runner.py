"""onnxruntime as a prediction engine: :class:`OnnxModel` runs an exported (or converted) network on the
same batches, from the same preprocessing, as torch's :class:`~tl_desktop.engine.models.bundle.LoadedModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tl_desktop.engine.deploy.metadata import INPUT_NAME
from tl_desktop.engine.deploy.onnx_file import OnnxFileError, read_onnx_file
from tl_desktop.engine.models.bundle import BundleMeta
from tl_desktop.engine.models.predictor import Predictor
from tl_desktop.engine.runtime.inference import onnxruntime_providers, session_threads


def inference_session(model_bytes: bytes, device_type: str = "cpu") -> Any:
    """An onnxruntime session for checked model bytes, threaded like torch."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = session_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are for developers
    # The image decoders run on the same cores between batches: idle threads must sleep, not spin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model_bytes, options, providers=onnxruntime_providers(device_type))


class OnnxModel(Predictor):
    """A network run by onnxruntime, with the metadata (classes, preprocessing) of the model it came from."""

    engine = "onnxruntime"

    def __init__(self, session: Any, meta: BundleMeta, path: Path | None = None) -> None:
        super().__init__(meta, path)
        self.session = session

    def predict_batch(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities (rows sum to 1) for a batch of preprocessed images, temperature applied."""
        array = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        return self.session.run(["probabilities"], {INPUT_NAME: array})[0]


def onnx_model(model_bytes: bytes, meta: BundleMeta, path: Path | None = None, device_type: str = "cpu",
               ) -> OnnxModel:
    """An :class:`OnnxModel` from checked bytes; refused when onnxruntime cannot run them."""
    try:
        session = inference_session(model_bytes, device_type)
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad graph
        raise OnnxFileError(f"{path or 'the ONNX model'} cannot be run by onnxruntime: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    outputs = {o.name: o.shape for o in session.get_outputs()}
    width = outputs.get("probabilities", [None, None])[-1]
    if isinstance(width, int) and width != len(meta.classes):
        raise OnnxFileError(f"{path or 'the ONNX model'} has {width} outputs but its metadata names "
                            f"{len(meta.classes)} classes")
    return OnnxModel(session, meta, path)


def load_onnx_model(path: str | Path, device_type: str = "cpu") -> OnnxModel:
    """Open a tl_desktop ONNX export for prediction (checked as :func:`read_onnx_file` says)."""
    path = Path(path).expanduser()
    model_bytes, meta = read_onnx_file(path)
    return onnx_model(model_bytes, meta, path, device_type)
