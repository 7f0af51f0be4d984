"""groups.py and splits.py: group sources, copies joining groups, and grouped splits that never leak."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tl_desktop.config import ConfigError, DataConfig, group_source
from tl_desktop.engine.data.dataset import Sample, scan_dataset
from tl_desktop.engine.data.folds import grouped_folds
from tl_desktop.engine.data.groups import image_groups, merge_copies
from tl_desktop.engine.data.scanning import DataError, FoundImage
from tl_desktop.engine.data.splits import grouped_parts

MANY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = ["a", "b", "c"]

# Each image: (class index, group index or None for an image without a group).
layouts = st.lists(st.tuples(st.integers(0, 2), st.none() | st.integers(0, 11)), min_size=4, max_size=60)
fractions = st.tuples(st.floats(0.05, 0.5), st.floats(0.0, 0.35)).filter(lambda f: f[0] + f[1] < 0.9)


def _found(layout: list[tuple[int, int | None]]) -> tuple[list[FoundImage], dict[str, str]]:
    found = [FoundImage(f"/data/img{i:03d}.png", CLASSES[c], None) for i, (c, _) in enumerate(layout)]
    groups = {f.path: f"G{g}" for f, (_, g) in zip(found, layout) if g is not None}
    return found, groups


def _units(found: list[FoundImage], groups: dict[str, str]) -> int:
    return len({groups.get(f.path, f.path) for f in found})


@MANY
@given(layout=layouts, fractions=fractions, seed=st.integers(0, 2**32 - 1))
def test_grouped_split_keeps_every_group_whole_and_every_image_once(layout, fractions, seed):
    found, groups = _found(layout)
    classes = sorted({f.class_name for f in found})
    cfg = DataConfig(val_fraction=fractions[0], test_fraction=fractions[1], seed=seed)
    needed = 3 if cfg.test_fraction > 0 else 2
    if _units(found, groups) < needed:
        with pytest.raises(DataError, match="at least"):
            grouped_parts(classes, found, groups, cfg)
        return
    parts, _ = grouped_parts(classes, found, groups, cfg)
    assert sorted(parts) == sorted(f.path for f in found)  # every image in exactly one part
    where: dict[str, set[str]] = {}
    for path, part in parts.items():
        if path in groups:
            where.setdefault(groups[path], set()).add(part)
    assert all(len(p) == 1 for p in where.values()), "a group straddles two parts"
    counts = Counter(parts.values())
    assert counts["train"] >= 1 and counts["val"] >= 1
    assert (counts["test"] >= 1) == (cfg.test_fraction > 0)
    shuffled = found[:]
    random.Random(seed).shuffle(shuffled)
    assert grouped_parts(classes, shuffled, groups, cfg)[0] == parts  # listing order does not matter


@MANY
@given(per_class=st.integers(10, 16), size=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_single_class_groups_are_stratified(per_class, size, seed):
    """Groups of one class each, many per class: every class gets its share of validation groups."""
    layout = [(c, c * 100 + g) for c in range(3) for g in range(per_class) for _ in range(size)]
    found, groups = _found(layout)
    cfg = DataConfig(val_fraction=0.2, test_fraction=0.2, seed=seed)
    parts, notes = grouped_parts(CLASSES, found, groups, cfg)
    for name in CLASSES:
        mine = [parts[f.path] for f in found if f.class_name == name]
        share = {part: mine.count(part) / len(mine) for part in ("train", "val", "test")}
        assert 0.05 <= share["val"] <= 0.35 and 0.05 <= share["test"] <= 0.35 and share["train"] >= 0.4, share
    assert notes == []


@MANY
@given(layout=layouts, k=st.integers(2, 5), seed=st.integers(0, 2**32 - 1))
def test_grouped_folds_hold_out_each_sample_once_and_keep_groups_whole(layout, k, seed):
    found, groups = _found(layout)
    samples = [Sample(f.path, CLASSES.index(f.class_name), groups.get(f.path, "")) for f in found]
    if _units(found, groups) < k:
        with pytest.raises(DataError):
            grouped_folds(samples, k, seed)
        return
    folds = grouped_folds(samples, k, seed)
    held = [s.path for _, out in folds for s in out]
    assert sorted(held) == sorted(s.path for s in samples)
    for trained, out in folds:
        assert not {s.group for s in trained if s.group} & {s.group for s in out if s.group}


def test_copies_join_groups_and_copies_without_a_group_form_one():
    paths = ["/d/1", "/d/2", "/d/3", "/d/4", "/d/5"]
    groups = {"/d/1": "P2", "/d/2": "P1", "/d/3": "P3"}
    digests = {"/d/1": "aa", "/d/2": "aa", "/d/3": "bb", "/d/4": "cc", "/d/5": "cc"}
    merged = merge_copies(paths, groups, digests)
    assert merged["/d/1"] == merged["/d/2"] == "P1"  # one picture in P1 and P2: both go together, as P1
    assert merged["/d/3"] == "P3"
    assert merged["/d/4"] == merged["/d/5"] == "copy:cc"
    assert merge_copies(["/d/9"], {}, {"/d/9": "dd"}) == {}


def test_group_by_syntax_is_checked_in_the_configuration():
    assert group_source("") == ("", "")
    assert group_source("patient") == ("column", "patient")
    assert group_source("dicom:PatientID") == ("dicom", "PatientID")
    assert group_source(r"re:^(P\d+)_") == ("regex", r"^(P\d+)_")
    with pytest.raises(ConfigError, match="exactly one capture group"):
        group_source(r"re:^P\d+_")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        group_source("re:(")
    with pytest.raises(ConfigError, match="needs a tag name"):
        group_source("dicom:")
    with pytest.raises(ConfigError, match="names a table column, which needs a label table"):
        DataConfig(root="/x", group_by="patient").validate()


def test_a_pattern_that_misses_some_files_says_how_many_and_shows_one():
    root = Path("/data")
    paths = ["/data/cat/P1_a.png", "/data/cat/P2_b.png", "/data/dog/scan.png"]
    assert image_groups(paths[:2], root, r"re:(P\d+)_", {}, {}) == {paths[0]: "P1", paths[1]: "P2"}
    with pytest.raises(DataError, match=r"finds no group in 1 of 3 images, e\.g\. 'dog/scan\.png'"):
        image_groups(paths, root, r"re:(P\d+)_", {}, {})


def _picture(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)


def test_a_folder_grouped_by_pattern_splits_by_patient_and_keeps_copies_together(tmp_path):
    root = tmp_path / "images"
    for c, name in enumerate(["normal", "tumour"]):
        for i in range(24):
            _picture(root / name / f"P{i % 8}_{name}_{i}.png", 1000 * c + i)
    _picture(root / "tumour" / "P0_tumour_copy.png", 1000 + 1)  # the same picture as P1_tumour_1
    result = scan_dataset(DataConfig(root=str(root), group_by=r"re:^[a-z]+/(P\d+)_", seed=5))
    split = result.split
    part_of = {s.group: name for name in ("train", "val", "test") for s in getattr(split, name)}
    for name in ("train", "val", "test"):
        assert all(part_of[s.group] == name for s in getattr(split, name))
    groups = {Path(s.path).name: s.group for s in split.train + split.val + split.test}
    assert groups["P0_tumour_copy.png"] == groups["P1_tumour_1.png"] == groups["P0_normal_0.png"] == "P0"
    leakage = result.audit.leakage
    assert leakage.group_count == 7 and leakage.groups_per_class == {"normal": 7, "tumour": 7}
    assert sum(leakage.groups_per_split.values()) == 7 and leakage.straddling_groups == []
    assert len(leakage.mixed_label_groups) == 7  # every patient has normal and tumour images


def test_near_duplicates_across_parts_are_found_and_identical_copies_left_to_the_duplicate_list():
    from tl_desktop.engine.data.leakage import near_duplicates_across_parts

    hashes = {"/t/a": 0b1011 << 40, "/v/a2": (0b1011 << 40) ^ 0b111, "/v/far": 2**64 - 1, "/t/b": 0xFFFF0000,
              "/v/b": 0xFFFF0000}
    assignments = {"/t/a": ("x", "train"), "/v/a2": ("x", "val"), "/v/far": ("x", "val"), "/t/b": ("y", "train"),
                   "/v/b": ("y", "val")}
    assert near_duplicates_across_parts(hashes, assignments, [["/t/b", "/v/b"]]) == [["/t/a", "/v/a2"]]
    assignments["/v/a2"] = ("x", "train")  # both in one part: not a leak
    assert near_duplicates_across_parts(hashes, assignments, []) == [["/t/b", "/v/b"]]


def test_a_resized_recompressed_copy_in_another_part_is_a_near_duplicate(tmp_path):
    root = tmp_path / "images"
    blocks = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    for part in ("train", "val"):
        for c, name in enumerate(["a", "b"]):
            for i in range(3):
                _picture(root / part / name / f"{name}{i}.png", 10 * c + i + (100 if part == "val" else 0))
    picture = Image.fromarray(blocks).resize((90, 80), Image.Resampling.BILINEAR)
    picture.save(root / "train" / "a" / "scan.png")
    picture.resize((48, 48)).save(root / "val" / "a" / "scan_small.jpg", quality=70)
    result = scan_dataset(DataConfig(root=str(root)))
    near = result.audit.leakage.near_duplicates
    assert [[Path(p).name for p in pair] for pair in near] == [["scan.png", "scan_small.jpg"]]
    lines = result.audit.summary_lines()
    assert "Near-duplicates across splits: 1 pair of nearly identical pictures" in lines
    assert any("1 pair of nearly identical pictures (resized or recompressed copies) are split between" in w
               for w in result.audit.warnings)
    assert result.audit.leakage.near_duplicate_count == 1


def test_dicom_patient_groups_are_whole_and_only_their_salted_hash_is_ever_stored(tmp_path):
    import json

    from dicom_writer import MARKERS, write_dicom

    root = tmp_path / "scans"
    rng = np.random.default_rng(7)
    for c, name in enumerate(["normal", "nodule"]):
        for i in range(12):
            tags = {**MARKERS, "PatientID": f"{MARKERS['PatientID']}-{i % 6}"}
            write_dicom(root / name / f"s{i}.dcm", rng.integers(0, 4096, (12, 12), dtype=np.uint16), bits_stored=12,
                        tags=tags)
    result = scan_dataset(DataConfig(root=str(root), group_by="dicom:PatientID", seed=2))
    split = result.split
    part_of: dict[str, set[str]] = {}
    for name in ("train", "val", "test"):
        for s in getattr(split, name):
            part_of.setdefault(s.group, set()).add(name)
    assert len(part_of) == 6 and all(len(parts) == 1 for parts in part_of.values())
    assert all(len(group) == 16 for group in part_of)
    stored = json.dumps(split.to_dict()) + json.dumps(result.audit.to_dict()) + "\n".join(result.audit.summary_lines())
    assert MARKERS["PatientID"] not in stored and "the DICOM tag PatientID (stored only as a salted hash)" in stored
    again = scan_dataset(DataConfig(root=str(root), group_by="dicom:PatientID", seed=2))
    assert again.split == split  # the salt comes from the images: the same images give the same groups

    _picture(root / "normal" / "photo.png", 1)
    missing = r"1 of 25 images have no DICOM PatientID to group by, e\.g\. 'normal/photo\.png'"
    with pytest.raises(DataError, match=missing):
        scan_dataset(DataConfig(root=str(root), group_by="dicom:PatientID"))
    with pytest.raises(DataError, match="names no DICOM tag"):
        scan_dataset(DataConfig(root=str(root), group_by="dicom:PatientIdentity"))


def test_validation_held_out_of_given_train_folders_takes_whole_groups(tmp_path):
    root = tmp_path / "images"
    for part in ("train", "test"):
        for c, name in enumerate(["a", "b"]):
            for i in range(12 if part == "train" else 3):
                patient = f"P{i % 6}" if part == "train" else f"T{i}"
                _picture(root / part / name / f"{patient}_{i}.png", 1000 * c + i + (500 if part == "test" else 0))
    result = scan_dataset(DataConfig(root=str(root), group_by=r"re:/(\w\d+)_", seed=1))
    split = result.split
    val = {s.group for s in split.val}
    assert val and not val & {s.group for s in split.train}
    assert result.audit.leakage.straddling_groups == []
    assert "There is no val/ folder" in result.audit.warnings[0]


@MANY
@given(seeds=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), st.integers(0, 2)), min_size=2,
                      max_size=40))
def test_near_duplicates_are_exactly_the_close_pairs_across_parts(seeds):
    from tl_desktop.engine.data.leakage import near_duplicates_across_parts

    bases = [0, 2**64 - 1, 0x0F0F0F0F0F0F0F0F, 0x123456789ABCDEF0]
    hashes, assignments = {}, {}
    for i, (base, noise, part) in enumerate(seeds):
        flips = 0
        for bit in random.Random(noise).sample(range(64), noise % 7):  # 0-6 bits away from a base picture
            flips |= 1 << bit
        hashes[f"/p{i:02d}"] = bases[base] ^ flips
        assignments[f"/p{i:02d}"] = ("x", ("train", "val", "test")[part])
    paths = sorted(hashes)
    expected = [[a, b] for n, a in enumerate(paths) for b in paths[n + 1:]
                if assignments[a][1] != assignments[b][1] and bin(hashes[a] ^ hashes[b]).count("1") <= 4]
    assert near_duplicates_across_parts(hashes, assignments, []) == expected
