"""Speed caches: the cache folder (keys, LRU limit, clear), decoded images, and cached features."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tl_desktop.engine.caching import store as cache
from tl_desktop.engine.caching.decoded_images import CachedImageDataset, DecodedImages
from tl_desktop.engine.caching.store import (
    CacheStore,
    cache_key,
    cache_limit_bytes,
    files_fingerprint,
    user_cache_dir,
)
from tl_desktop.engine.data.preprocess import Preprocessing, eval_transform
from tl_desktop.engine.runtime.stop import StopRequested, StopToken

PRE = Preprocessing(input_size=24, resize_size=28, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _write_images(folder: Path, count: int, size: tuple[int, int] = (40, 32), seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img_{index}.png" if index % 2 else folder / f"img_{index}.jpg"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def store(tmp_path: Path) -> CacheStore:
    return CacheStore(tmp_path / "cache", limit_bytes=10**9)


def test_cache_dir_env_override_and_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "c"))
    assert user_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TL_DESKTOP_CACHE_DIR")
    assert user_cache_dir().name in ("tl_desktop", "Cache")
    monkeypatch.setenv("TL_DESKTOP_CACHE_LIMIT_MB", "2")
    assert cache_limit_bytes() == 2 * 1024**2
    monkeypatch.setenv("TL_DESKTOP_CACHE_LIMIT_MB", "lots")
    with pytest.raises(OSError, match="TL_DESKTOP_CACHE_LIMIT_MB"):
        cache_limit_bytes()


def test_fingerprint_follows_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_images(tmp_path, 2)
    before = files_fingerprint(paths)
    assert files_fingerprint(paths) == before
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert files_fingerprint(paths) != before
    assert files_fingerprint(paths[:1]) != files_fingerprint(paths)
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    key = cache_key({"a": 1})
    monkeypatch.setattr(cache, "KEY_FORMAT_VERSION", cache.KEY_FORMAT_VERSION + 1)  # the pixel pipeline changed
    assert cache_key({"a": 1}) != key


def test_store_lru_eviction_and_clear(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache", limit_bytes=2500)
    for index, key in enumerate(("k1", "k2")):
        with store.writing("features", key, {"description": key}) as folder:
            (folder / "values.bin").write_bytes(b"x" * 1000)
        os.utime(store.entry_dir("features", key) / "entry.json", (100 + index, 100 + index))
    assert store.lookup("features", "k1") is not None  # touching k1 makes k2 the least recently used
    with store.writing("features", "k3", {"description": "k3"}) as folder:
        (folder / "values.bin").write_bytes(b"x" * 1000)
    keys = {e.key for e in store.entries()}
    assert keys == {"k1", "k3"}
    (tmp_path / "cache" / "weights").mkdir()
    (tmp_path / "cache" / "weights" / "w.safetensors").write_bytes(b"w" * 10)
    info = store.info()
    assert info.other_bytes == {"weights": 10}
    assert any("features: 2 entries" in line for line in info.summary_lines())
    assert store.clear() > 2000
    assert store.entries() == [] and (tmp_path / "cache" / "weights" / "w.safetensors").exists()
    assert store.clear(include_weights=True) == 10


def test_failed_write_leaves_no_entry(store: CacheStore) -> None:
    with pytest.raises(RuntimeError):
        with store.writing("features", "broken", {}) as folder:
            (folder / "values.bin").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert store.lookup("features", "broken") is None
    assert list((store.root / "features").iterdir()) == []


def test_decoded_images_match_eval_transform_and_spill(tmp_path: Path, store: CacheStore) -> None:
    paths = _write_images(tmp_path / "imgs", 6)
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"not really a jpeg")
    paths.append(str(tmp_path / "imgs" / "bad.jpg"))
    budget = 3 * 3 * 28 * 35  # three images fit in memory, the rest spill to disk
    images = DecodedImages(paths, PRE, memory_budget_bytes=budget, store=store)
    assert images.spilled_bytes > 0 and images.memory_bytes <= budget
    assert [p for p, _ in images.failures] == [paths[-1]] and not images.ok(len(paths) - 1)
    transform = eval_transform(PRE)
    from tl_desktop.engine.data.images import load_rgb

    for index, path in enumerate(paths[:-1]):
        cached = images[index]
        assert cached.dtype == torch.uint8 and min(cached.shape[1:]) == PRE.resize_size
        assert torch.equal(transform(cached), transform(load_rgb(path)))
    dataset = CachedImageDataset(images, [0, 1, 0, 1, 0, 1, 0], transform, indices=range(6))
    x, y = dataset[5]
    assert x.shape == (3, 24, 24) and y == 1
    spill = images._spill_path
    assert spill is not None and spill.exists()
    images.close()
    assert not spill.exists()


def test_input_batches_keep_order_report_failures_match_eval_transform_and_stop(tmp_path: Path) -> None:
    from tl_desktop.engine.data.model_input import input_batches

    paths = _write_images(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"broken")
    paths.insert(2, str(tmp_path / "imgs" / "bad.png"))
    transform = eval_transform(PRE)
    chunks = list(input_batches(paths, PRE, 4))
    assert [len(ok) for ok, _, _ in chunks] == [3, 2]
    assert [path for _, _, failed in chunks for path, _ in failed] == [paths[2]]
    ok_paths = [p for ok, _, _ in chunks for p in ok]
    assert ok_paths == [p for p in paths if not p.endswith("bad.png")]
    from tl_desktop.engine.data.images import load_rgb

    for ok, batch, _ in chunks:
        assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
        for row, path in zip(batch, ok):
            assert torch.equal(row, transform(load_rgb(path)))
    token = StopToken()
    token.request()
    with pytest.raises(StopRequested):
        list(input_batches(paths, PRE, 2, stop=token))


def test_decoding_honours_stop(tmp_path: Path, store: CacheStore) -> None:
    paths = _write_images(tmp_path / "imgs", 3)
    token = StopToken()
    token.request()
    with pytest.raises(StopRequested):
        DecodedImages(paths, PRE, store=store, stop=token)


# ----- feature cache -----------------------------------------------------------------------------
TINY = "speed_tiny_cnn"


def _tiny_parts():
    from torch import nn

    from tl_desktop.engine.models.builders import BackboneParts

    torch.manual_seed(123)
    source = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU()),
        nn.Sequential(nn.Conv2d(12, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)),
        nn.Linear(16, 5),
    )
    return BackboneParts([source[0], source[1], source[2]], source[3], source[4], source)


@pytest.fixture
def speed_tiny(tmp_path: Path):
    from safetensors.torch import save_file

    from tl_desktop.engine.models.backbones import (
        register_backbone,
        unregister_backbone,
    )
    from tl_desktop.engine.models.specs import BackboneSpec

    weights = tmp_path / "tiny.safetensors"
    parts = _tiny_parts()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode freezing matters
        for module in parts.source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in parts.source.state_dict().items()}, str(weights))
    spec = BackboneSpec(
        name=TINY, title="Tiny CNN", family="test", preprocessing=PRE, num_blocks=3,
        block_names=("stem", "stage 1", "stage 2"), feature_dim=16, num_params=0, weights_mb=0.0,
        weights_filename="tiny.safetensors", weights_url="", weights_sha256="", license="test",
        is_transformer=False, description="a tiny network for tests",
    )
    register_backbone(spec, _tiny_parts, bundled=lambda: weights)
    yield spec
    unregister_backbone(TINY)


def _model(num_classes: int = 2):
    from tl_desktop.engine.models.backbones import create_model

    return create_model(TINY, num_classes=num_classes, pretrained=True).eval()


def _request(**changes):
    from tl_desktop.engine.caching.features import FeatureRequest

    values = dict(boundary=3, pooled=True, views=1, augmentation="none", seed=0)
    values.update(changes)
    return FeatureRequest(**values)


def test_cached_features_equal_the_model_and_reload(speed_tiny, tmp_path: Path, store: CacheStore) -> None:
    from tl_desktop.engine.caching.features import cached_features
    from tl_desktop.engine.data.images import load_rgb

    paths = _write_images(tmp_path / "imgs", 5)
    images = DecodedImages(paths, PRE, store=store)
    model = _model()
    transform = eval_transform(PRE)
    batch = torch.stack([transform(load_rgb(p)) for p in paths])
    with torch.no_grad():
        expected_pooled = model.features(batch)
        expected_block1 = model.run_blocks(batch, 0, 1)
    events: list[tuple[int, int]] = []
    pooled = cached_features(model, images, [0, 1, 0, 1, 0], transform, _request(), PRE, 2, torch.device("cpu"),
                             store=store, progress=lambda d, t: events.append((d, t)))
    assert not pooled.from_cache and events[-1] == (5, 5)
    assert pooled.values.shape == (5, 1, 16)
    torch.testing.assert_close(pooled.gather(range(5), np.zeros(5, dtype=np.int64)), expected_pooled,
                               rtol=1e-4, atol=1e-5)
    block1 = cached_features(model, images, [0] * 5, transform, _request(boundary=1, pooled=False), PRE, 4,
                             torch.device("cpu"), store=store)
    torch.testing.assert_close(block1.gather(range(5), np.zeros(5, dtype=np.int64)), expected_block1,
                               rtol=1e-4, atol=1e-5)
    again = cached_features(model, images, [0, 1, 0, 1, 0], transform, _request(), PRE, 2, torch.device("cpu"),
                            store=store)
    assert again.from_cache and np.array_equal(np.asarray(again.values), np.asarray(pooled.values))
    inputs, labels = next(iter(again.batches([[4, 1]], epoch=0)))
    assert inputs.shape == (2, 16) and labels.tolist() == [0, 1]


def test_every_key_component_rebuilds(speed_tiny, tmp_path: Path, store: CacheStore) -> None:
    from tl_desktop.engine.caching.features import cached_features
    from tl_desktop.engine.data.preprocess import train_transform

    paths = _write_images(tmp_path / "imgs", 3)
    cpu = torch.device("cpu")
    model = _model()
    transform = eval_transform(PRE)

    def build(images_paths=paths, pre=PRE, request=None, net=model, tf=transform):
        images = DecodedImages(images_paths, pre, store=store)
        return cached_features(net, images, [0] * len(images_paths), tf, request or _request(), pre, 2, cpu,
                               store=store)

    assert not build().from_cache
    assert build().from_cache
    stat = os.stat(paths[1])
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000))
    assert not build().from_cache  # a file changed
    assert build().from_cache
    assert not build(images_paths=paths[:2]).from_cache
    other_pre = Preprocessing(input_size=24, resize_size=30, mean=PRE.mean, std=PRE.std)
    assert not build(pre=other_pre).from_cache
    assert not build(request=_request(boundary=2, pooled=False)).from_cache
    light = train_transform(PRE, "light")
    assert not build(request=_request(views=2, augmentation="light"), tf=light).from_cache
    assert not build(request=_request(views=2, augmentation="light", seed=1), tf=light).from_cache
    assert not build(request=_request(views=2, augmentation="strong", seed=1), tf=light).from_cache
    retrained = _model()
    with torch.no_grad():
        retrained.blocks[0][0].weight.add_(0.01)
    assert not build(net=retrained).from_cache  # other weights
    head_changed = _model()
    with torch.no_grad():
        head_changed.head[-1].weight.add_(1.0)
    assert build(net=head_changed).from_cache  # the head is not part of the frozen computation


def test_augmented_views_cycle_and_fp16_for_large_entries(speed_tiny, tmp_path: Path, store: CacheStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tl_desktop.engine.caching import features
    from tl_desktop.engine.data.preprocess import train_transform

    paths = _write_images(tmp_path / "imgs", 4)
    images = DecodedImages(paths, PRE, store=store)
    monkeypatch.setattr(features, "FP16_THRESHOLD_BYTES", 1000)
    request = _request(boundary=1, pooled=False, views=3, augmentation="light")
    model = _model()
    state = torch.random.get_rng_state()
    cached = features.cached_features(model, images, [0, 1, 0, 1], train_transform(PRE, "light"), request, PRE, 3,
                                      torch.device("cpu"), store=store)
    assert torch.equal(state, torch.random.get_rng_state())  # building views leaves the global RNG alone
    assert cached.values.dtype == np.float16 and cached.views == 3
    assert not np.allclose(np.asarray(cached.values[:, 0]), np.asarray(cached.values[:, 1]))
    chosen = np.stack([cached.view_for_epoch(e) for e in range(3)], axis=1)
    assert all(sorted(row) == [0, 1, 2] for row in chosen.tolist())
    assert np.array_equal(cached.view_for_epoch(3), cached.view_for_epoch(0))


def test_feature_building_honours_stop(speed_tiny, tmp_path: Path, store: CacheStore) -> None:
    from tl_desktop.engine.caching.features import cached_features

    paths = _write_images(tmp_path / "imgs", 3)
    images = DecodedImages(paths, PRE, store=store)
    token = StopToken()
    token.request()
    with pytest.raises(StopRequested):
        cached_features(_model(), images, [0, 1, 0], eval_transform(PRE), _request(), PRE, 2, torch.device("cpu"),
                        store=store, stop=token)
    assert store.entries() == []


# ----- the trainer's cached path -----------------------------------------------------------------
class _Recorder:
    stop_training = False

    def __init__(self, stop_on_cache: StopToken | None = None) -> None:
        self.events: list = []
        self.stop_on_cache = stop_on_cache

    def on_event(self, event) -> None:
        self.events.append(event)
        if self.stop_on_cache is not None and event.kind == "CacheProgress" and event.split == "train":
            self.stop_on_cache.request()


def _fit(root: Path, out: Path, trainable, use_caches: bool, augmentation: str = "none", callbacks=(), stop=None):
    from safetensors.torch import load_file

    from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from tl_desktop.engine.training.trainer import Trainer

    config = RunConfig(
        data=DataConfig(root=str(root)), out_dir=str(out),
        model=ModelConfig(backbone="tiny_cnn", trainable_blocks=trainable, dropout=0.2),
        train=TrainConfig(epochs=3, head_epochs=2, batch_size=5, augmentation=augmentation, cached_views=2,
                          early_stopping_patience=0),
    )
    trainer = Trainer(config, callbacks=callbacks, stop=stop)
    trainer.use_caches = use_caches
    result = trainer.fit()
    weights = load_file(str(result.run_dir / "best.safetensors")) if result.best_epoch else {}
    return result, weights


@pytest.mark.parametrize("trainable", [0, 1])
def test_cached_training_matches_plain_training(tiny_backbone, make_image_folder, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, trainable) -> None:
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8, "c": 7}, size=40)
    plain, plain_weights = _fit(root, tmp_path / "runs", trainable, use_caches=False)
    recorder = _Recorder()
    cached, cached_weights = _fit(root, tmp_path / "runs", trainable, use_caches=True, callbacks=[recorder])
    assert plain.status == cached.status == "completed"
    assert [round(e.train_loss, 5) for e in plain.history] == [round(e.train_loss, 5) for e in cached.history]
    for name, value in plain_weights.items():
        torch.testing.assert_close(cached_weights[name], value, rtol=1e-4, atol=1e-5)
    kinds = [e.kind for e in recorder.events]
    assert "CacheProgress" in kinds and kinds.index("CacheProgress") < kinds.index("PhaseStarted")
    # A second run finds everything cached: no decoding, no feature computation.
    again = _Recorder()
    _fit(root, tmp_path / "runs", trainable, use_caches=True, callbacks=[again])
    assert [e for e in again.events if e.kind == "CacheProgress"] == []


def test_augmented_views_train_and_stop_while_caching(tiny_backbone, make_image_folder, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    result, _weights = _fit(root, tmp_path / "runs", 0, use_caches=True, augmentation="light")
    assert result.status == "completed" and len(result.history) == 3
    token = StopToken()
    recorder = _Recorder(stop_on_cache=token)
    store = CacheStore()
    store.clear()
    stopped, _ = _fit(root, tmp_path / "runs", 0, use_caches=True, augmentation="strong", callbacks=[recorder],
                      stop=token)
    assert stopped.status == "stopped" and recorder.events[-1].kind == "FitEnded"
    assert "PhaseStarted" not in [e.kind for e in recorder.events]
    assert [e for e in store.entries() if "2 views" in e.description] == []  # no half-built training entry


def test_cache_command_info_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tl_desktop.cli import main

    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    store = CacheStore()
    with store.writing("features", "k", {"description": "d"}) as folder:
        (folder / "values.bin").write_bytes(b"x" * 2048)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cache") in out and "features: 1 entries" in out
    assert main(["cache", "clear"]) == 0
    assert "cleared" in capsys.readouterr().out and store.entries() == []
    monkeypatch.setenv("TL_DESKTOP_CACHE_LIMIT_MB", "many")
    assert main(["cache", "info"]) == 1
    assert "TL_DESKTOP_CACHE_LIMIT_MB" in capsys.readouterr().out
