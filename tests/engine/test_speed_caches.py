"""Speed caches: the cache folder (keys, LRU limit, clear), decoded images, and cached features."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tl_desktop.engine.cache import CacheStore, cache_key, cache_limit_bytes, files_fingerprint, user_cache_dir
from tl_desktop.engine.control import StopRequested, StopToken
from tl_desktop.engine.image_cache import CachedImageDataset, DecodedImages
from tl_desktop.engine.preprocess import Preprocessing, eval_transform

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


def test_fingerprint_follows_size_and_mtime(tmp_path: Path) -> None:
    paths = _write_images(tmp_path, 2)
    before = files_fingerprint(paths)
    assert files_fingerprint(paths) == before
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert files_fingerprint(paths) != before
    assert files_fingerprint(paths[:1]) != files_fingerprint(paths)
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


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
    from tl_desktop.engine.images import load_rgb

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


def test_decoding_honours_stop(tmp_path: Path, store: CacheStore) -> None:
    paths = _write_images(tmp_path / "imgs", 3)
    token = StopToken()
    token.request()
    with pytest.raises(StopRequested):
        DecodedImages(paths, PRE, store=store, stop=token)
