"""onnxruntime as the app's prediction engine: the conversion of a model file is checked, cached under its
own key, reused, dropped when damaged, and gives torch's answers; ``TL_DESKTOP_INFERENCE`` chooses."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tl_desktop.config import ConfigError
from tl_desktop.engine.caching import onnx_models
from tl_desktop.engine.caching.onnx_models import (
    FILE_NAME,
    KIND,
    conversion_key,
    inference_predictor,
)
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.deploy.export import onnx_bytes
from tl_desktop.engine.deploy.runner import OnnxModel, onnx_model
from tl_desktop.engine.models.backbones import create_model, get_backbone_spec
from tl_desktop.engine.models.bundle import (
    BundleMeta,
    LoadedModel,
    load_bundle,
    save_bundle,
)
from tl_desktop.engine.runtime.inference import inference_engine


@pytest.fixture
def model_file(tiny_backbone, tmp_path):
    meta = BundleMeta(tiny_backbone.name, ["x", "y", "z"], tiny_backbone.preprocessing.to_dict(), temperature=1.7)
    return save_bundle(tmp_path / "m.tlmodel", create_model(tiny_backbone.name, 3), meta)


def test_the_setting_chooses_the_engine(monkeypatch):
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "torch")
    assert inference_engine("cpu") == "torch"
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "OnnxRuntime")
    assert inference_engine("cpu") == "onnxruntime"
    monkeypatch.delenv("TL_DESKTOP_INFERENCE")
    assert inference_engine("cpu") == "onnxruntime"  # measured faster on the CPU
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "gpu")
    with pytest.raises(ConfigError, match="must be one of torch, onnxruntime"):
        inference_engine("cpu")


def test_a_big_job_converts_once_and_later_jobs_reuse_it(model_file, make_image_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("TL_DESKTOP_INFERENCE", raising=False)
    paths = [str(p) for p in sorted(make_image_folder(tmp_path / "img", classes={"x": 4, "y": 4}).rglob("*.jpg"))]
    loaded = load_bundle(model_file)
    assert inference_predictor(loaded, len(paths)) is loaded  # small job, nothing converted yet: torch
    monkeypatch.setattr(onnx_models, "CONVERT_AT", 5)
    converted = inference_predictor(loaded, len(paths))
    assert isinstance(converted, OnnxModel) and converted.path == model_file
    expected = loaded.predict_paths(paths, batch_size=3).probs
    got = converted.predict_paths(paths, batch_size=3).probs
    assert np.abs(got - expected).max() <= 1e-5 and (got.argmax(1) == expected.argmax(1)).all()
    store = CacheStore()
    assert store.lookup(KIND, conversion_key(model_file)) is not None
    assert isinstance(inference_predictor(loaded, 1), OnnxModel)  # cached: even a small job uses it

    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "torch")
    assert inference_predictor(loaded, len(paths)) is loaded


def test_a_damaged_conversion_is_dropped_and_torch_answers(model_file, monkeypatch):
    monkeypatch.delenv("TL_DESKTOP_INFERENCE", raising=False)
    loaded = load_bundle(model_file)
    onnx_models.store_conversion(model_file, b"not a network")
    store = CacheStore()
    assert inference_predictor(loaded, 1) is loaded
    assert store.lookup(KIND, conversion_key(model_file)) is None
    onnx_models.store_conversion(model_file, onnx_bytes(loaded))
    assert (store.lookup(KIND, conversion_key(model_file)) / FILE_NAME).is_file()
    os.utime(loaded.path, (1, 1))  # a changed model file gets a new key: the old conversion is never used for it
    assert inference_predictor(loaded, 1) is loaded


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_registry_backbones_export_and_match_torch(name):
    spec = get_backbone_spec(name)
    meta = BundleMeta(name, ["a", "b", "c"], spec.preprocessing.to_dict(), temperature=0.8)
    loaded = LoadedModel(create_model(name, 3, pretrained=False).eval(), meta, torch.device("cpu"))
    exported = onnx_model(onnx_bytes(loaded), meta)
    x = torch.randn(3, 3, spec.preprocessing.input_size, spec.preprocessing.input_size,
                    generator=torch.Generator().manual_seed(0))
    assert np.abs(exported.predict_batch(x) - loaded.predict_batch(x)).max() <= 1e-5
    logits = exported.session.run(["logits"], {"input": x.numpy()})[0]
    assert np.allclose(torch.softmax(torch.from_numpy(logits) / 0.8, 1).numpy(), exported.predict_batch(x), atol=1e-6)
