"""Model files whose metadata or weights are nonsense are refused at load with a message (issue 14, items 4, 7)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors_bytes

from tl_desktop.engine.models.backbones import create_model
from tl_desktop.engine.models.bundle import (
    META_NAME,
    WEIGHTS_NAME,
    BundleError,
    BundleMeta,
    load_bundle,
    save_bundle,
)


@pytest.fixture
def good_file(tiny_backbone, tmp_path) -> Path:
    torch.manual_seed(5)
    model = create_model("tiny_cnn", num_classes=2, pretrained=False)
    meta = BundleMeta(backbone="tiny_cnn", classes=["cat", "dog"], preprocessing=tiny_backbone.preprocessing.to_dict())
    return save_bundle(tmp_path / "good.tlmodel", model, meta)


def rewritten(path: Path, out: Path, meta_change=None, weights_change=None) -> Path:
    """A copy of model file ``path`` with its metadata dict and/or its state dict changed in place."""
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read(META_NAME))
        weights = archive.read(WEIGHTS_NAME)
    if meta_change is not None:
        meta_change(meta)
    if weights_change is not None:
        from safetensors.torch import load as load_bytes

        state = load_bytes(weights)
        weights_change(state)
        weights = save_safetensors_bytes(state)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(META_NAME, json.dumps(meta))
        archive.writestr(WEIGHTS_NAME, weights)
    return out


def _set(*keys, value):
    def change(meta):
        target = meta
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return change


def _poison(state):
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name][0] = float("nan")


def _infinity(state):
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name].view(-1)[-1] = float("inf")


CASES = [
    ("temperature 0", _set("temperature", value=0), None, "temperature must be a number above 0"),
    ("temperature negative", _set("temperature", value=-1.5), None, "temperature must be a number above 0"),
    ("temperature hot", _set("temperature", value="hot"), None, "temperature must be a number above 0"),
    ("std 0", _set("preprocessing", "std", value=[0.5, 0.0, 0.5]), None, "std must be above 0"),
    ("std text", _set("preprocessing", "std", value="wide"), None, "std must be three finite numbers"),
    ("class not text", _set("classes", value=["cat", 7]), None, "class names must be non-empty text"),
    ("class empty", _set("classes", value=["cat", " "]), None, "class names must be non-empty text"),
    ("class repeated", _set("classes", value=["cat", "cat"]), None, "class names repeat: cat"),
    ("classes not a list", _set("classes", value="cat,dog"), None, "must name at least two classes"),
    ("class count", _set("classes", value=["cat", "dog", "owl"]), None, "head has 2 outputs but its metadata names 3"),
    ("unknown backbone", _set("backbone", value="resnet9000"), None, "unknown backbone 'resnet9000'"),
    ("dropout abc", _set("config", "model", "dropout", value="abc"), None, "model.dropout must be a finite number"),
    ("config list", _set("config", value=[1, 2]), None, "must be a JSON object of sections, got a list"),
    ("input size text", _set("preprocessing", "input_size", value="big"), None, "input_size must be a whole number"),
    ("preprocessing missing", lambda meta: meta.pop("preprocessing"), None, "metadata lacks preprocessing"),
    ("NaN weights", None, _poison, "NaN or infinite values"),
    ("infinite weights", None, _infinity, "NaN or infinite values"),
]


@pytest.mark.parametrize("meta_change,weights_change,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_nonsense_model_file_is_refused_with_a_message(good_file, tmp_path, meta_change, weights_change, message):
    bad = rewritten(good_file, tmp_path / "bad.tlmodel", meta_change, weights_change)
    with pytest.raises(BundleError) as caught:
        load_bundle(bad)
    assert message in str(caught.value) and str(bad) in str(caught.value)


def test_the_untouched_file_loads(good_file, tmp_path):
    copy = rewritten(good_file, tmp_path / "copy.tlmodel")
    assert load_bundle(copy).classes == ["cat", "dog"]
