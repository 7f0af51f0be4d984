"""The .tlmodel file: exact round trip, safe loading, clear errors, same preprocessing as validation."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.images import load_rgb
from tl_desktop.engine.data.preprocess import eval_transform
from tl_desktop.engine.models.backbones import create_model
from tl_desktop.engine.models.bundle import (
    FORMAT_VERSION,
    BundleError,
    BundleMeta,
    load_bundle,
    read_bundle,
    save_bundle,
    update_bundle_meta,
)
from tl_desktop.engine.training.runfolder import model_file_of
from tl_desktop.engine.training.trainer import Trainer


@pytest.fixture
def model_and_meta(tiny_backbone):
    torch.manual_seed(3)
    model = create_model("tiny_cnn", num_classes=3).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.5)
    meta = BundleMeta(backbone="tiny_cnn", classes=["cat", "dog", "owl"],
                      preprocessing=tiny_backbone.preprocessing.to_dict())
    return model, meta


@pytest.fixture
def image_paths(tmp_path, make_image_folder) -> list[str]:
    root = make_image_folder(tmp_path, classes={"a": 3, "b": 3}, size=44)
    return sorted(str(p) for p in root.rglob("*.jpg"))


def in_memory_probs(model, preprocessing, paths) -> np.ndarray:
    transform = eval_transform(preprocessing)
    batch = torch.stack([transform(load_rgb(p)) for p in paths])
    with torch.inference_mode():
        return torch.softmax(model.eval()(batch), dim=1).numpy()


def test_saved_model_predicts_exactly_like_the_in_memory_model(model_and_meta, image_paths, tmp_path, tiny_backbone):
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    loaded = load_bundle(path)

    result = loaded.predict_paths(image_paths, batch_size=4)
    assert result.paths == image_paths and not result.failures
    np.testing.assert_allclose(result.probs, in_memory_probs(model, tiny_backbone.preprocessing, image_paths), atol=1e-6)
    assert loaded.classes == ["cat", "dog", "owl"] and loaded.preprocessing == tiny_backbone.preprocessing
    assert not loaded.model.training


def test_trained_run_exports_the_best_model(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=40)
    config = RunConfig(data=DataConfig(root=str(root)), model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1),
                       train=TrainConfig(epochs=2, head_epochs=1, batch_size=4), out_dir=str(tmp_path / "runs"))
    trainer = Trainer(config)
    result = trainer.fit()
    loaded = load_bundle(model_file_of(result.run_dir))  # a run folder resolves to its model.tlmodel

    paths = [s.path for s in trainer.scan.split.val + trainer.scan.split.test]
    expected = in_memory_probs(trainer.model, tiny_backbone.preprocessing, paths)
    np.testing.assert_allclose(loaded.predict_paths(paths).probs, expected, atol=1e-6)
    assert loaded.meta.metrics["best_epoch"] == result.best_epoch
    assert loaded.meta.metrics["val_accuracy"] == result.best_val_accuracy
    assert loaded.meta.config == config.to_dict() and loaded.classes == ["a", "b"]
    assert {"torch", "tl_desktop", "timm"} <= set(loaded.meta.versions)


def test_unreadable_files_are_reported_not_fatal(model_and_meta, image_paths, tmp_path):
    model, meta = model_and_meta
    loaded = load_bundle(save_bundle(tmp_path / "m.tlmodel", model, meta))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")

    result = loaded.predict_paths([image_paths[0], str(broken), image_paths[1]])
    assert result.paths == image_paths[:2] and result.probs.shape == (2, 3)
    assert [p for p, _ in result.failures] == [str(broken)] and result.failures[0][1]


def test_temperature_is_applied_and_stored_atomically(model_and_meta, image_paths, tmp_path):
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    before = load_bundle(path).predict_paths(image_paths[:2]).probs

    update_bundle_meta(path, temperature=2.0, metrics={"test_accuracy": 0.9})
    loaded = load_bundle(path)
    assert loaded.meta.temperature == 2.0 and loaded.meta.metrics == {"test_accuracy": 0.9}
    logits = np.log(before)
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.predict_paths(image_paths[:2]).probs, expected, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []
    with pytest.raises(BundleError, match="unknown"):
        update_bundle_meta(path, colour="blue")


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# pytest's tmp_path holds the test's name and the message holds the path: match what only the refusal says.
REFUSAL = "refuses to load it because pickle files can run code"


def test_bundle_with_pickle_is_refused(model_and_meta, tmp_path):
    model, meta = model_and_meta
    assert REFUSAL not in str(tmp_path)
    sneaky = tmp_path / "sneaky.tlmodel"
    sneaky.write_bytes(_zip_bytes({"meta.json": json.dumps(meta.to_dict()).encode(),
                                   "weights.safetensors": b"", "archive/data.pkl": b"\x80\x04cos\nsystem\n."}))
    with pytest.raises(BundleError, match=REFUSAL):
        load_bundle(sneaky)

    torch_file = tmp_path / "torch_save.tlmodel"
    torch.save(model.state_dict(), torch_file)  # a zip whose data.pkl needs the unpickler
    with pytest.raises(BundleError, match=REFUSAL) as refused:
        load_bundle(torch_file)
    assert "data.pkl" in str(refused.value)


def test_every_pickle_member_is_named(model_and_meta, tmp_path):
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("b/model.pt", b"x")
        archive.writestr("a/data.pkl", b"x")
    with pytest.raises(BundleError, match=REFUSAL) as refused:
        load_bundle(path)
    assert "(a/data.pkl, b/model.pt)" in str(refused.value)


def test_a_file_that_cannot_be_opened_is_named_in_the_error(tmp_path):
    gone = tmp_path / "gone.tlmodel"  # e.g. removed between choosing it and reading it
    with pytest.raises(BundleError, match="cannot read model file") as failed:
        read_bundle(gone)
    assert str(gone) in str(failed.value)


@pytest.mark.parametrize("member", ["extra/data.pkl", "notes.pickle", "model.pt", "model.pth", "pytorch_model.bin",
                                    "last.ckpt", "SHOUTING/DATA.PKL"])
def test_a_valid_model_file_with_a_pickle_inside_is_refused(model_and_meta, tmp_path, member):
    """Everything else in the file loads fine, so only the pickle check stands between it and the user."""
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    load_bundle(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(member, b"\x80\x04cos\nsystem\n.")
    with pytest.raises(BundleError, match=REFUSAL) as refused:
        load_bundle(path)
    assert member in str(refused.value)
    with pytest.raises(BundleError, match=REFUSAL):
        update_bundle_meta(path, temperature=2.0)  # metadata updates read the file the same way


@pytest.mark.parametrize("content, message", [
    (b"definitely not a zip file", "not a tl_desktop model file"),
    (_zip_bytes({"readme.txt": b"hello"}), "lacks meta.json"),
    (_zip_bytes({"meta.json": b"{}"}), "lacks meta.json or weights.safetensors"),  # either one missing is enough
    (_zip_bytes({"weights.safetensors": b""}), "lacks meta.json or weights.safetensors"),
    (_zip_bytes({"meta.json": b"{not json", "weights.safetensors": b""}), "damaged metadata"),
])
def test_foreign_or_corrupt_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "odd.tlmodel"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_truncated_model_file_is_rejected(model_and_meta, tmp_path):
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError):
        load_bundle(path)


def test_newer_format_asks_to_update(model_and_meta, tmp_path):
    model, meta = model_and_meta
    path = save_bundle(tmp_path / "m.tlmodel", model, meta)
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("weights.safetensors")
    newer = dict(meta.to_dict(), format_version=FORMAT_VERSION + 1)
    path.write_bytes(_zip_bytes({"meta.json": json.dumps(newer).encode(), "weights.safetensors": weights}))
    with pytest.raises(BundleError, match="update tl_desktop"):
        load_bundle(path)


def test_weights_must_fit_the_recorded_backbone_strictly(model_and_meta, tmp_path):
    model, meta = model_and_meta
    wrong = BundleMeta(backbone="tiny_cnn", classes=["only", "two"], preprocessing=meta.preprocessing)
    path = save_bundle(tmp_path / "m.tlmodel", model, wrong)
    with pytest.raises(BundleError, match="head has 3 outputs but its metadata names 2 classes"):
        load_bundle(path)


def test_missing_model_and_empty_run_folder(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nothing.tlmodel")
    with pytest.raises(BundleError, match="has no model.tlmodel"):
        load_bundle(model_file_of(tmp_path))
    with pytest.raises(BundleError, match="is a folder, not a model file"):
        load_bundle(Path(tmp_path))


def test_prediction_decodes_large_photos_exactly_like_validation(tmp_path):
    """A large JPEG goes through the same draft decode in the validation cache and in prediction."""
    from PIL import Image

    from tl_desktop.engine.caching.decoded_images import DecodedImages
    from tl_desktop.engine.data.preprocess import (
        Preprocessing,
        eval_transform,
        load_for_model,
    )

    pre = Preprocessing(input_size=32, resize_size=36, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    photo = tmp_path / "photo.jpg"
    gradient = Image.linear_gradient("L").resize((1200, 900)).convert("RGB")
    gradient.save(photo, quality=90)
    transform = eval_transform(pre)
    cached = DecodedImages([str(photo)], pre)
    try:
        from_cache = transform(cached[0])
    finally:
        cached.close()
    from_prediction = transform(load_for_model(photo, pre))
    assert load_for_model(photo, pre).size[0] < 1200  # the draft decode really reduced it
    assert torch.equal(from_cache, from_prediction)
