"""Open any model a user can name for prediction: a ``.tlmodel`` file, a run folder, or an ONNX export.
The command line's ``predict`` and the window's Predict page both open models here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from tl_desktop.engine.deploy import ONNX_SUFFIX
from tl_desktop.engine.deploy.onnx_file import OnnxFileError
from tl_desktop.engine.deploy.runner import load_onnx_model
from tl_desktop.engine.models.bundle import BundleError, load_bundle
from tl_desktop.engine.models.predictor import Predictor
from tl_desktop.engine.training.runfolder import model_file_of

# Every way a named model can be unusable; each message names the file and says why.
MODEL_ERRORS: tuple[type[Exception], ...] = (BundleError, OnnxFileError)


def open_predictor(model: str | Path, device: str | torch.device = "cpu",
                   note: Callable[[str], None] | None = None) -> Predictor:
    """The model behind ``model`` (a model file, a run folder or a ``.onnx`` export), ready to predict."""
    path = Path(model).expanduser()
    if path.suffix.lower() == ONNX_SUFFIX and not path.is_dir():
        return load_onnx_model(path, torch.device(device).type)
    return load_bundle(model_file_of(path, note=note), device=device)

