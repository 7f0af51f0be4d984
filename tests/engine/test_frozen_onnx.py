"""onnxruntime for the frozen part in the feature and boundary caches: the same numbers as torch within float
tolerance, a cache key per engine, a conversion kept and reused by small jobs, and training that matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tl_desktop.engine.caching import frozen_onnx
from tl_desktop.engine.caching.decoded_images import DecodedImages
from tl_desktop.engine.caching.features import FeatureRequest, cached_features
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.data.preprocess import eval_transform
from tl_desktop.engine.models.backbones import create_model

CPU = torch.device("cpu")


def _conversions(store):
    return [entry for entry in store.entries() if entry.kind == "onnx"]


def _features(model, images, pre, request, store):
    return cached_features(model, images, [0] * len(images), eval_transform(pre), request, pre, 4, CPU, store=store)


@pytest.mark.parametrize("pooled", [True, False])
def test_onnxruntime_features_equal_torchs_under_their_own_key(tiny_backbone, make_image_folder, tmp_path,
                                                               monkeypatch, pooled):
    pre = tiny_backbone.preprocessing
    paths = sorted(str(p) for p in make_image_folder(tmp_path / "data", classes={"a": 4, "b": 3}).rglob("*.jpg"))
    model = create_model(tiny_backbone.name, 2).eval()
    boundary = len(model.blocks) if pooled else 1
    request = FeatureRequest(boundary=boundary, pooled=pooled, views=1, augmentation="none", seed=0)
    store = CacheStore(tmp_path / "cache")
    images = DecodedImages(paths, pre, store=store)
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "torch")
    by_torch = _features(model, images, pre, request, CacheStore(tmp_path / "torch-cache"))
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "onnxruntime")
    monkeypatch.setattr(frozen_onnx, "CONVERT_AT", 1)
    by_onnx = _features(model, images, pre, request, store)
    assert (by_torch.engine, by_onnx.engine) == ("torch", "onnxruntime")
    assert by_onnx.key != by_torch.key and not by_onnx.from_cache
    np.testing.assert_allclose(np.asarray(by_onnx.values), np.asarray(by_torch.values), rtol=1e-4, atol=1e-5)
    assert len(_conversions(store)) == 1
    # A later small job (below CONVERT_AT) still runs on the stored conversion.
    monkeypatch.setattr(frozen_onnx, "CONVERT_AT", 10**9)
    fewer = DecodedImages(paths[:3], pre, store=store)
    assert _features(model, fewer, pre, request, store).engine == "onnxruntime"


def test_small_jobs_without_a_conversion_and_damaged_conversions_use_torch(tiny_backbone, make_image_folder,
                                                                           tmp_path, monkeypatch):
    pre = tiny_backbone.preprocessing
    paths = sorted(str(p) for p in make_image_folder(tmp_path / "data", classes={"a": 3, "b": 3}).rglob("*.jpg"))
    model = create_model(tiny_backbone.name, 2).eval()
    request = FeatureRequest(boundary=len(model.blocks), pooled=True, views=1, augmentation="none", seed=0)
    store = CacheStore(tmp_path / "cache")
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "onnxruntime")
    assert _features(model, DecodedImages(paths, pre, store=store), pre, request, store).engine == "torch"
    assert _conversions(store) == []
    monkeypatch.setattr(frozen_onnx, "CONVERT_AT", 1)
    runner = frozen_onnx.frozen_runner(model, len(model.blocks), True, pre.input_size, "w", 10, CPU, store)
    assert runner is not None
    (entry,) = _conversions(store)
    (store.entry_dir("onnx", entry.key) / frozen_onnx.FILE_NAME).write_bytes(b"not a network")
    monkeypatch.setattr(frozen_onnx, "_open", {})  # as in a new process: the conversion is read from the cache
    monkeypatch.setattr(frozen_onnx, "CONVERT_AT", 10**9)
    assert frozen_onnx.frozen_runner(model, len(model.blocks), True, pre.input_size, "w", 10, CPU, store) is None
    assert _conversions(store) == []  # the damaged conversion was dropped


def test_a_conversion_that_disagrees_with_torch_is_never_used(tiny_backbone, tmp_path, monkeypatch):
    model = create_model(tiny_backbone.name, 2).eval()
    other = create_model(tiny_backbone.name, 2, pretrained=False).eval()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(1.0)
    from tl_desktop.engine.deploy.export import frozen_part_bytes

    wrong = frozen_part_bytes(other, len(model.blocks), True, tiny_backbone.preprocessing.input_size)
    monkeypatch.setattr(frozen_onnx, "frozen_part_bytes", lambda *args: wrong)
    monkeypatch.setattr(frozen_onnx, "CONVERT_AT", 1)
    monkeypatch.setenv("TL_DESKTOP_INFERENCE", "onnxruntime")
    store = CacheStore(tmp_path / "cache")
    size = tiny_backbone.preprocessing.input_size
    assert frozen_onnx.frozen_runner(model, len(model.blocks), True, size, "w", 10, CPU, store) is None
    assert _conversions(store) == []
