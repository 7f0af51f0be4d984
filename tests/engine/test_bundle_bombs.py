"""Model files that would take gigabytes to open are refused before anything is inflated."""

from __future__ import annotations

import json
import resource
import zipfile
from pathlib import Path

import pytest
from safetensors.torch import save as save_safetensors_bytes

from tl_desktop.engine.models.backbones import create_model
from tl_desktop.engine.models.bundle import (
    BundleError,
    BundleMeta,
    load_bundle,
    save_bundle,
    state_bytes,
)

GIB = 1 << 30


def _meta(tiny_backbone) -> bytes:
    meta = BundleMeta(backbone="tiny_cnn", classes=["a", "b"], preprocessing=tiny_backbone.preprocessing.to_dict())
    return json.dumps(meta.to_dict()).encode()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_weights_that_inflate_to_gigabytes_are_refused_without_inflating(tiny_backbone, tmp_path: Path):
    real = state_bytes(create_model("tiny_cnn", num_classes=2))
    bomb = tmp_path / "bomb.tlmodel"
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("meta.json", _meta(tiny_backbone))
        info = zipfile.ZipInfo("weights.safetensors")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(real)
            zeros = bytes(1 << 24)
            for _ in range(GIB // 2 // len(zeros)):  # 512 MiB of zeros deflate to about half a megabyte
                member.write(zeros)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    before = _peak_mb()
    with pytest.raises(BundleError, match="would inflate from .* bytes, which no trained weights do"):
        load_bundle(bomb)
    assert _peak_mb() - before < 200  # refused from the zip directory, not after inflating 512 MiB


def test_weights_whose_size_disagrees_with_their_tensors_are_refused(tiny_backbone, tmp_path: Path):
    real = state_bytes(create_model("tiny_cnn", num_classes=2))
    padded = tmp_path / "padded.tlmodel"
    with zipfile.ZipFile(padded, "w") as archive:
        archive.writestr("meta.json", _meta(tiny_backbone))
        archive.writestr("weights.safetensors", real + bytes(4096))
    with pytest.raises(BundleError, match="damaged weights: they hold .* bytes but their tensors need"):
        load_bundle(padded)


def test_huge_metadata_is_refused(tiny_backbone, tmp_path: Path):
    path = tmp_path / "talkative.tlmodel"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.json", b" " * (2 << 20) + b"{}")
        archive.writestr("weights.safetensors", save_safetensors_bytes({}))
    with pytest.raises(BundleError, match="has metadata of 2,097,154 bytes"):
        load_bundle(path)


def test_a_real_model_file_still_opens(tiny_backbone, tmp_path: Path):
    meta = BundleMeta(backbone="tiny_cnn", classes=["a", "b"], preprocessing=tiny_backbone.preprocessing.to_dict())
    path = save_bundle(tmp_path / "m.tlmodel", create_model("tiny_cnn", num_classes=2), meta)
    assert load_bundle(path).classes == ["a", "b"]
