"""data.py + audit.py: layouts, the seeded stratified split, the audit, datasets and transforms."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.audit import Audit
from tl_desktop.engine.data.dataset import (
    DataError,
    DatasetSplit,
    ImageDataset,
    Sample,
    list_images,
    scan_dataset,
    scan_labelled_folder,
)
from tl_desktop.engine.data.images import ImageLoadError
from tl_desktop.engine.data.preprocess import (
    Preprocessing,
    eval_transform,
    train_transform,
)
from tl_desktop.engine.runtime.stop import StopRequested, StopToken

PRE = Preprocessing(input_size=32, resize_size=36, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _scan(root: Path, seed: int = 0, **kwargs):
    return scan_dataset(DataConfig(root=str(root), seed=seed), **kwargs)


def _relative_split(split: DatasetSplit) -> dict[str, list[list]]:
    raw = split.to_dict()
    return {name: raw[name] for name in ("train", "val", "test")}


def _reverse_listing(monkeypatch) -> None:
    """Make the file system list everything in reverse order, as another machine might."""
    real_scandir, real_walk = os.scandir, os.walk

    class ReversedListing:
        def __init__(self, entries):
            self._entries = iter(sorted(entries, key=lambda e: e.name, reverse=True))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

    def scandir(path="."):
        with real_scandir(path) as entries:
            return ReversedListing(entries)

    def walk(top, *args, **kwargs):
        for dirpath, dirnames, filenames in real_walk(top, *args, **kwargs):
            dirnames.reverse()
            yield dirpath, dirnames, filenames[::-1]

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "walk", walk)


def test_split_is_stratified_seeded_and_independent_of_listing_order(tmp_path, make_image_folder, monkeypatch):
    root = make_image_folder(tmp_path, classes={"cat": 20, "dog": 14, "owl": 2}, size=32)
    first = _scan(root, seed=3)
    split = first.split
    assert split.layout == "auto" and split.classes == ["cat", "dog", "owl"]
    counts = first.audit.counts
    assert counts["cat"] == {"train": 14, "val": 3, "test": 3}
    assert counts["dog"] == {"train": 10, "val": 2, "test": 2}
    assert counts["owl"] == {"train": 1, "val": 1, "test": 0}
    paths = [s.path for part in (split.train, split.val, split.test) for s in part]
    assert len(paths) == len(set(paths)) == 36
    assert all(Path(s.path).parent.name == split.classes[s.label] for s in paths_samples(split))

    _reverse_listing(monkeypatch)
    again = _scan(root, seed=3)
    assert _relative_split(again.split) == _relative_split(split)
    monkeypatch.undo()
    other_seed = _scan(root, seed=4)
    assert _relative_split(other_seed.split) != _relative_split(split)


def paths_samples(split: DatasetSplit) -> list[Sample]:
    return split.train + split.val + split.test


def test_single_image_class_goes_to_train_with_a_warning(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"common": 5, "rare": 1}, size=32)
    result = _scan(root)
    assert result.audit.counts["rare"] == {"train": 1, "val": 0, "test": 0}
    assert result.audit.counts["common"]["val"] >= 1
    assert any("'rare' has a single image" in w for w in result.audit.warnings)


def test_split_layout_with_upper_case_extensions(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 6}, layout="split", ext=".JPG", size=64)
    result = _scan(root)
    assert result.split.layout == "folders" and result.audit.layout == "folders"
    assert result.audit.counts == {"a": {"train": 8, "val": 2, "test": 2}, "b": {"train": 4, "val": 1, "test": 1}}
    assert all(Path(s.path).parts[-3] == "val" for s in result.split.val)
    assert result.audit.warnings == [
        "Class 'b' has fewer than 10 images; results for it will be unreliable. Aim for at least 30 images per class."
    ]


def test_missing_val_folder_holds_out_part_of_train(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 12}, layout="split", size=32)
    shutil.rmtree(root / "val")
    result = _scan(root)
    assert {c: result.audit.counts[c]["val"] for c in "ab"} == {"a": 1, "b": 1}
    assert result.audit.counts["a"]["train"] == 7
    assert "There is no val/ folder" in result.audit.warnings[0]


def test_class_missing_in_val_is_held_out_and_explained(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 12}, layout="split", size=32)
    shutil.rmtree(root / "val" / "b")
    result = _scan(root)
    assert result.audit.counts["b"]["val"] == 1
    assert any("Class 'b' has no validation images; 1 of its training images" in w for w in result.audit.warnings)


def test_class_only_in_val_is_an_error(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 12}, layout="split", size=32)
    shutil.copytree(root / "val" / "b", root / "val" / "zebra")
    with pytest.raises(DataError, match=r"val has class folders that are not in train/: zebra"):
        _scan(root)


def test_mixed_layout_is_an_error(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, layout="split", size=32)
    (root / "extra").mkdir()
    with pytest.raises(DataError, match="mixes a train/ folder with other folders"):
        _scan(root)


def test_fewer_than_two_classes_names_the_folder(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"only": 4}, size=32)
    with pytest.raises(DataError, match=f"{root} needs at least two class sub-folders.*found only 'only'. Add"):
        _scan(root)
    with pytest.raises(DataError, match=f"choose {root} instead"):
        _scan(root.parent)
    with pytest.raises(DataError, match="found none, but 4 images directly in this folder. Put each class in its "
                                        "own sub-folder"):
        _scan(root / "only")


def test_class_without_readable_images_names_its_folder(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 4, "b": 4}, size=32)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=f"{root / 'empty'} has no readable images"):
        _scan(root)
    shutil.rmtree(root / "empty")
    (root / "broken").mkdir()
    (root / "broken" / "x.jpg").write_text("text")
    with pytest.raises(DataError, match=f"{root / 'broken'} has no readable images"):
        _scan(root)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _scan(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no data folder"):
        scan_dataset(DataConfig(root=""))


def _damage(root: Path) -> dict[str, Path]:
    """Add a corrupt PNG, a truncated JPEG, a text file named .jpg, and files that must be ignored."""
    bad = {
        "corrupt": root / "a" / "corrupt.png",
        "truncated": root / "a" / "truncated.jpg",
        "text": root / "b" / "notes.jpg",
    }
    bad["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    noise = np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad["truncated"], quality=95)
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:600])
    bad["text"].write_text("a text file named like a photo")
    (root / "a" / "README.txt").write_text("ignored")
    (root / "a" / ".hidden.jpg").write_text("ignored")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._a_000.jpg").write_text("ignored")
    return bad


def test_audit_lists_unreadable_files_and_the_rest_is_usable(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=32)
    bad = _damage(root)
    result = _scan(root)
    reasons = dict(result.audit.unreadable)
    assert set(reasons) == {str(p.resolve()) for p in bad.values()}
    assert reasons[str(bad["corrupt"].resolve())].startswith("truncated or corrupt PNG")
    assert reasons[str(bad["truncated"].resolve())].startswith("truncated or corrupt JPEG")
    assert reasons[str(bad["text"].resolve())] == "not an image file"
    assert result.audit.ignored_files == 1  # README.txt; hidden files and __MACOSX are not even counted
    used = paths_samples(result.split)
    assert len(used) == 16 and not {s.path for s in used} & set(reasons)
    assert "3 files could not be read" in " ".join(result.audit.warnings)
    assert "  b/notes.jpg: not an image file" in result.audit.summary_lines()
    dataset = ImageDataset(used, eval_transform(PRE))
    batch = torch.stack([dataset[i][0] for i in range(len(dataset))])
    assert batch.shape == (16, 3, 32, 32) and torch.isfinite(batch).all()


def test_unreadable_sub_folder_is_reported_not_fatal(tmp_path, make_image_folder, monkeypatch):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=32)
    locked = root / "a" / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = _scan(root)
    assert (str(locked.resolve()), "folder cannot be read: permission denied") in result.audit.unreadable
    assert len(paths_samples(result.split)) == 12


def test_duplicates_are_found_and_kept_in_one_split(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 10, "b": 10}, size=32)
    for i in range(3):
        shutil.copy(root / "a" / "a_000.jpg", root / "a" / f"copy_{i}.jpg")
    shutil.copy(root / "b" / "b_001.jpg", root / "a" / "mislabelled.jpg")
    result = _scan(root)
    audit = result.audit
    assert sorted(len(g) for g in audit.duplicate_groups) == [2, 4]
    same_class = next(g for g in audit.duplicate_groups if len(g) == 4)
    assert same_class not in audit.cross_split_duplicates  # copies within a class are kept in one split
    assert [len(g) for g in audit.cross_class_duplicates] == [2]
    assert any("check their labels" in w for w in audit.warnings)


def test_duplicates_straddling_given_splits_are_flagged(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 12}, layout="split", size=32)
    shutil.copy(root / "train" / "a" / "a_000.jpg", root / "val" / "a" / "leaked.jpg")
    audit = _scan(root).audit
    assert audit.cross_split_duplicates == [[str((root / "train" / "a" / "a_000.jpg").resolve()), str((root / "val" / "a" / "leaked.jpg").resolve())]]
    assert any("look better than they really are" in w for w in audit.warnings)
    assert "  train/a/a_000.jpg = val/a/leaked.jpg" in audit.summary_lines()


def test_imbalance_and_size_statistics(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"late_blight": 12, "healthy": 3}, size=32)
    Image.new("RGB", (80, 40), (9, 9, 9)).save(root / "healthy" / "wide.png")
    audit = _scan(root).audit
    assert audit.imbalance_ratio == 3.0 and audit.imbalanced
    assert "Class 'healthy' has only 4 images, 3.0x fewer than 'late_blight'; class balancing will be used" in audit.warnings[0]
    assert (audit.sizes.min_width, audit.sizes.max_width, audit.sizes.median_width) == (32, 80, 32)
    assert (audit.sizes.min_height, audit.sizes.max_height, audit.sizes.count) == (32, 40, 16)
    lines = audit.summary_lines()
    assert lines[1] == "2 classes, 16 images: 10 train, 3 val, 3 test"
    assert any(line.startswith("Image size: width 32-80 (median 32)") for line in lines)
    assert any("(imbalanced)" in line for line in lines)


def test_audit_and_split_round_trip_through_json(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=32)
    (root / "a" / "bad.jpg").write_text("x")
    result = _scan(root)
    audit_raw = json.loads(json.dumps(result.audit.to_dict()))
    assert Audit.from_dict(audit_raw) == result.audit
    split_raw = json.loads(json.dumps(result.split.to_dict()))
    assert all(not Path(p).is_absolute() for p, _ in split_raw["train"])
    assert DatasetSplit.from_dict(split_raw) == result.split


def test_progress_and_stop(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 5, "b": 5}, size=32)
    calls: list[tuple[int, int]] = []
    _scan(root, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10) and len(calls) == 11
    stop = StopToken()

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            stop.request()

    with pytest.raises(StopRequested):
        _scan(root, progress=stop_after_three, stop=stop)


def test_dataset_names_a_file_that_broke_after_the_scan(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 3, "b": 3}, size=32)
    result = _scan(root)
    dataset = ImageDataset(result.split.train, train_transform(PRE, "strong"))
    victim = dataset.samples[0].path
    Path(victim).write_bytes(b"")
    with pytest.raises(ImageLoadError, match="changed after the data were scanned") as info:
        dataset[0]
    assert info.value.path == victim
    image, label = dataset[1]
    assert image.shape == (3, 32, 32) and label == dataset.labels[1]


def test_scan_labelled_folder_maps_to_the_model_classes(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"b": 2, "c": 3}, size=32)
    (root / "c" / "bad.png").write_bytes(b"")
    classes, samples, unreadable = scan_labelled_folder(root, class_names=["a", "b", "c"])
    assert classes == ["a", "b", "c"]
    assert sorted(s.label for s in samples) == [1, 1, 2, 2, 2]
    assert [reason for _, reason in unreadable] == ["empty file (0 bytes)"]
    with pytest.raises(DataError, match="'c' are not classes of this model"):
        scan_labelled_folder(root, class_names=["a", "b"])


def test_list_images(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 2, "b": 1}, size=32)
    (root / "b" / "notes.txt").write_text("x")
    found = list_images(root)
    assert [Path(p).name for p in found] == ["a_000.jpg", "a_001.jpg", "b_000.jpg"]
    assert list_images(found[0]) == [found[0]]
    with pytest.raises(DataError, match="not a supported image file"):
        list_images(root / "b" / "notes.txt")
    with pytest.raises(DataError, match="does not exist"):
        list_images(root / "missing")


def test_transforms_agree_on_pil_and_uint8_tensor_and_presets_work():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    as_tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
    for pre in (PRE, Preprocessing(32, 36, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic")):
        evaluate = eval_transform(pre)
        assert torch.equal(evaluate(image), evaluate(as_tensor))
        assert type(evaluate(image)) is torch.Tensor and evaluate(image).dtype == torch.float32
        for preset in ("none", "light", "strong"):
            out = train_transform(pre, preset)(as_tensor)
            assert out.shape == (3, 32, 32)
    torch.manual_seed(0)
    light = train_transform(PRE, "light")
    assert not torch.equal(light(image), light(image))
    with pytest.raises(ValueError, match="augmentation preset"):
        train_transform(PRE, "extreme")
    with pytest.raises(ValueError, match="interpolation"):
        eval_transform(Preprocessing(32, 36, (0.5,) * 3, (0.5,) * 3, "lanczos"))
