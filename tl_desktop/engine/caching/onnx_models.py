"""The prediction engine for a job: torch, or onnxruntime where :func:`inference_engine` says it is faster.

A ``.tlmodel`` runs on onnxruntime through a conversion kept in the cache (kind ``onnx``, keyed by the model
file and the library versions, so a new file or a new torch converts again). Converting costs seconds
(EfficientNet-Lite0: ~5-12 s here), so a job converts only when it has ``CONVERT_AT`` images or more and
otherwise uses a conversion already cached, or torch. A conversion is checked against torch on random input
before it is stored; one that disagrees is never used.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tl_desktop.engine.caching.onnx_check import KIND, agrees, check_input
from tl_desktop.engine.caching.store import (
    CacheError,
    CacheStore,
    cache_key,
    files_fingerprint,
)
from tl_desktop.engine.deploy.export import OnnxExportError
from tl_desktop.engine.deploy.onnx_file import OnnxFileError
from tl_desktop.engine.models.bundle import LoadedModel
from tl_desktop.engine.models.predictor import Predictor
from tl_desktop.engine.runtime.inference import inference_engine

FILE_NAME = "model.onnx"
CONVERT_AT = 1000  # images: about where a conversion pays for itself on the first job (it is reused after)


def conversion_key(model_file: Path) -> str:
    """The cache key of a model file's conversion: the file itself and the versions that shape the graph."""
    import onnxruntime

    return cache_key({"kind": KIND, "model": files_fingerprint([model_file]), "torch": torch.__version__,
                      "onnxruntime": onnxruntime.__version__})


def store_conversion(model_file: Path, model_bytes: bytes, store: CacheStore | None = None) -> Path:
    """Keep ``model_bytes`` as the conversion of ``model_file``; return the stored file."""
    store = store or CacheStore()
    key = conversion_key(model_file)
    with store.writing(KIND, key, {"description": f"{model_file.name} for onnxruntime"}) as folder:
        (folder / FILE_NAME).write_bytes(model_bytes)
    return store.entry_dir(KIND, key) / FILE_NAME


def _converted(loaded: LoadedModel) -> bytes:
    """Export ``loaded`` and check it on random input against torch (a CPU session)."""
    from tl_desktop.engine.deploy.export import onnx_bytes
    from tl_desktop.engine.deploy.runner import onnx_model

    model_bytes = onnx_bytes(loaded)
    x = check_input(loaded.preprocessing.input_size)
    if not agrees(onnx_model(model_bytes, loaded.meta).predict_batch(x), loaded.predict_batch(x)):
        raise OnnxFileError(f"the onnxruntime conversion of {loaded.path} differs from torch")
    return model_bytes


def inference_predictor(predictor: Predictor, image_count: int, store: CacheStore | None = None) -> Predictor:
    """The predictor a job of ``image_count`` images should use: ``predictor`` itself, or for a torch model
    file on a machine where onnxruntime is faster, its cached (or, for a big job, new) conversion."""
    from tl_desktop.engine.deploy.runner import load_onnx_model, onnx_model

    if not isinstance(predictor, LoadedModel) or predictor.path is None or not predictor.path.is_file():
        return predictor
    device_type = predictor.device.type
    if inference_engine(device_type) != "onnxruntime":
        return predictor
    try:
        store = store or CacheStore()
        key = conversion_key(predictor.path)
        folder = store.lookup(KIND, key)
        if folder is not None:
            try:
                return _with_source(load_onnx_model(folder / FILE_NAME, device_type), predictor)
            except OnnxFileError:
                store.drop(KIND, key)  # damaged: convert again below if the job is big enough
        if image_count < CONVERT_AT:
            return predictor
        model_bytes = _converted(predictor)
        store_conversion(predictor.path, model_bytes, store)
        return _with_source(onnx_model(model_bytes, predictor.meta, predictor.path, device_type), predictor)
    except (CacheError, OnnxFileError, OnnxExportError):
        return predictor  # torch gives the same answers, only slower


def _with_source(converted: Predictor, source: LoadedModel) -> Predictor:
    """The conversion answers for the model file it came from (its full metadata and path)."""
    converted.meta, converted.path = source.meta, source.path
    return converted
