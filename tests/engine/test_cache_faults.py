"""A damaged or half-written cache never feeds training and never leaks (issue 14, items 4 and 9)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tl_desktop.engine.caching.decoded_images import DecodedImages
from tl_desktop.engine.caching.features import (
    FeatureRequest,
    all_finite,
    cached_features,
)
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.data.preprocess import eval_transform

HOUR_AND_A_BIT = 3700


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_poisoned_features_are_dropped_and_computed_again(tiny_backbone, make_image_folder, tmp_path, caplog):
    from tl_desktop.engine.models.backbones import create_model

    root = make_image_folder(tmp_path, classes={"a": 3, "b": 3}, size=40)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    store = CacheStore(tmp_path / "cache", limit_bytes=10**9)
    pre = tiny_backbone.preprocessing
    model = create_model("tiny_cnn", num_classes=2).eval()
    request = FeatureRequest(boundary=3, pooled=True, views=1, augmentation="none", seed=0)

    def load():
        images = DecodedImages(paths, pre, store=store)
        return cached_features(model, images, [0] * len(paths), eval_transform(pre), request, pre, 4,
                               torch.device("cpu"), store=store)

    first = load()
    clean = np.array(first.values)
    stored = np.load(store.entry_dir("features", first.key) / "values.npy", mmap_mode="r+")
    stored[2, 0, 5] = np.nan
    stored.flush()
    del stored, first
    with caplog.at_level(logging.WARNING, logger="tl_desktop.engine.caching.features"):
        again = load()
    assert not again.from_cache and np.array_equal(np.asarray(again.values), clean)
    assert "NaN or infinite values" in caplog.text
    assert load().from_cache  # the recomputed entry is sound and used from now on


def test_all_finite_reads_in_chunks():
    values = np.zeros((50, 2, 4), dtype=np.float32)
    assert all_finite(values, chunk_bytes=64)
    values[49, 1, 3] = np.inf
    assert not all_finite(values, chunk_bytes=64)


def test_stale_unfinished_writes_are_swept_on_start_and_fresh_ones_counted(tmp_path):
    root = tmp_path / "cache"
    stale = root / "features" / ".abc.x1.part"
    fresh = root / "features" / ".def.x2.part"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "values.npy").write_bytes(b"\0" * 5000)
    dead_spill = root / "images" / f".spill-{_dead_pid()}-1-xyz.npy"
    dead_spill.parent.mkdir(parents=True)
    dead_spill.write_bytes(b"\0" * 100)
    for path in (stale / "values.npy", stale, dead_spill):
        _age(path, HOUR_AND_A_BIT)

    store = CacheStore(root, limit_bytes=10**9)
    assert not stale.exists() and not dead_spill.exists() and fresh.exists()
    info = store.info()
    assert [p for p, _ in info.unfinished] == [fresh] and info.unfinished[0][1] == 5000
    assert any(line.startswith("unfinished writes: 1, 4.9 KB") for line in info.summary_lines())


def test_a_write_in_progress_is_never_swept_however_old(tmp_path):
    store = CacheStore(tmp_path / "cache", limit_bytes=10**9)
    with store.writing("features", "k1", {"description": "test"}) as folder:
        _age(folder, HOUR_AND_A_BIT)
        assert CacheStore(tmp_path / "cache").sweep_stale() == 0 and folder.is_dir()
        (folder / "values.npy").write_bytes(b"1")
    assert store.lookup("features", "k1") is not None and not store.unfinished()


@pytest.mark.skipif(sys.platform.startswith("win"), reason="the spill file names a POSIX process id")
def test_a_live_process_spill_file_is_kept(tmp_path):
    spill = tmp_path / "cache" / "images" / f".spill-{os.getpid()}-1-abc.npy"
    spill.parent.mkdir(parents=True)
    spill.write_bytes(b"1")
    _age(spill, HOUR_AND_A_BIT)
    CacheStore(tmp_path / "cache")
    assert spill.exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
