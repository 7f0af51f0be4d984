"""Which image goes to train, val or test: path -> part name, plus notes for the audit.

Without groups each class is split on its own (seeded, every class with two different pictures gets
a validation image, identical files kept together). With groups scikit-learn's
``StratifiedGroupKFold`` picks whole groups, stratified by class as far as the groups allow: a group
may hold several classes, so a per-class split cannot keep it whole. Given train/val/test parts (the
folder layout or a table's split column) are kept as they are. Every result depends only on the
paths, labels, groups, fractions and seed, never on the order the files were listed in.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict

import numpy as np

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.scanning import DataError, FoundImage

SPLITS = ("train", "val", "test")
Parts = dict[str, str]  # path -> "train" | "val" | "test"


def auto_parts(classes: list[str], found: list[FoundImage], digests: dict[str, str],
               cfg: DataConfig) -> tuple[Parts, list[str]]:
    """Stratified, seeded split; identical files stay together so no copy straddles splits, even when
    copies are filed under different classes (the audit reports those as conflicting labels)."""
    parts: Parts = {}
    notes: list[str] = []
    by_class: dict[str, list[str]] = {name: [] for name in classes}
    for f in found:
        by_class[f.class_name].append(f.path)
    placed: dict[str, str] = {}  # content digest -> the part its first copy went to
    for name in classes:
        paths = sorted(by_class[name])
        forced = {p: placed[digests[p]] for p in paths if digests.get(p) in placed}
        chosen = allocate([p for p in paths if p not in forced], digests, cfg.val_fraction, cfg.test_fraction,
                          f"{cfg.seed}:{name}")
        for path, split in forced.items():
            chosen[split].append(path)
        for split, members in chosen.items():
            parts.update(dict.fromkeys(members, split))
            placed.update({digests.get(p, p): split for p in members})
        if not chosen["val"]:
            notes.append(no_val_note(name, len(paths)))
    return parts, notes


def given_parts(classes: list[str], found: list[FoundImage], digests: dict[str, str], cfg: DataConfig,
                groups: dict[str, str], where: str = "val/ folder") -> tuple[Parts, list[str]]:
    """Keep the given parts; a class without validation images gets some held out from its training ones
    (whole groups, when there are groups)."""
    parts: Parts = {f.path: f.split or "train" for f in found}
    lacking = [name for name in classes if not any(f.class_name == name and parts[f.path] == "val" for f in found)]
    held_out: dict[str, int] = {}
    notes: list[str] = []
    if groups and lacking:
        held = _held_out_groups(classes, found, parts, groups, lacking, cfg)
        held_out = {name: sum(1 for f in found if f.path in held and f.class_name == name) for name in lacking}
        notes += [f"Class '{name}' has no validation images, and no group of it could be held out for "
                  "validation." for name, count in held_out.items() if not count]
    elif lacking:
        for name in lacking:
            train = sorted(f.path for f in found if f.class_name == name and parts[f.path] == "train")
            chosen = allocate(train, digests, cfg.val_fraction, 0.0, f"{cfg.seed}:{name}")
            parts.update(dict.fromkeys(chosen["val"], "val"))
            held_out[name] = len(chosen["val"])
            if not chosen["val"]:
                notes.append(no_val_note(name, len(train)))
    if not any(f.split == "val" for f in found):
        notes.insert(0, f"There is no {where}: {cfg.val_fraction:.0%} of each class's training images "
                        f"({sum(held_out.values()):,} in all) were held out for validation.")
    else:
        notes += [
            f"Class '{name}' has no validation images; {count} of its training images were held out for validation."
            for name, count in held_out.items() if count
        ]
    return parts, notes


def _held_out_groups(classes: list[str], found: list[FoundImage], parts: Parts, groups: dict[str, str],
                     lacking: list[str], cfg: DataConfig) -> set[str]:
    """Whole groups moved from train to val (in ``parts``) among the groups that hold training images of
    the ``lacking`` classes."""
    units = {f.path: groups.get(f.path) or f"file:{f.path}" for f in found}
    touched = {units[f.path] for f in found if f.class_name in lacking and parts[f.path] == "train"}
    pool = sorted(f.path for f in found if parts[f.path] == "train" and units[f.path] in touched)
    labels = {f.path: classes.index(f.class_name) for f in found}
    held = take_groups(pool, labels, units, cfg.val_fraction, cfg.seed)
    parts.update(dict.fromkeys(held, "val"))
    return held


def grouped_parts(classes: list[str], found: list[FoundImage], groups: dict[str, str],
                  cfg: DataConfig) -> tuple[Parts, list[str]]:
    """Whole groups to val and test (``StratifiedGroupKFold``), the rest to train; an image without a
    group is a group by itself."""
    paths = sorted(f.path for f in found)
    labels = {f.path: classes.index(f.class_name) for f in found}
    units = {p: groups.get(p) or f"file:{p}" for p in paths}
    count = len(set(units.values()))
    needed = 3 if cfg.test_fraction > 0 else 2
    if count < needed:
        raise DataError(f"the images form only {count} group{'s' if count != 1 else ''}: at least {needed} are "
                        "needed for separate training, validation" + (" and test" if needed == 3 else "")
                        + " parts. Add images of more groups (patients, fields, ...) or choose another grouping")
    test = take_groups(paths, labels, units, cfg.test_fraction, cfg.seed) if cfg.test_fraction > 0 else set()
    rest = [p for p in paths if p not in test]
    val = take_groups(rest, labels, units, cfg.val_fraction / (1.0 - cfg.test_fraction), cfg.seed)
    parts: Parts = {p: "test" if p in test else "val" if p in val else "train" for p in paths}
    notes = [f"Class '{name}' has no training images: all its images are in groups that went to validation or "
             "test. Add images of more groups to this class." for label, name in enumerate(classes)
             if not any(parts[p] == "train" and labels[p] == label for p in paths)]
    return parts, notes


def take_groups(paths: list[str], labels: dict[str, int], units: dict[str, str], fraction: float,
                seed: int) -> set[str]:
    """About ``fraction`` of ``paths`` as whole groups, stratified by label as far as groups allow.

    ``StratifiedGroupKFold`` with k folds gives shares of 1/k: the held part is one fold (or, for a
    fraction above one half, all folds but one)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    names = [units[p] for p in paths]
    count = len(set(names))
    if count < 2 or fraction <= 0:
        return set()
    flip = fraction > 0.5
    k = max(2, int(min(1.0 / (1.0 - fraction if flip else fraction), count) + 0.5))
    y = np.array([labels[p] for p in paths])
    # With no class holding k images stratifying is impossible (sklearn refuses): groups alone decide.
    splitter = (StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
                if np.bincount(y).max() >= k else GroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32))
    with warnings.catch_warnings():  # a class in fewer than k groups: sklearn warns and balances what it can
        warnings.simplefilter("ignore", UserWarning)
        _, held = next(splitter.split(np.zeros(len(paths)), y, names))
    chosen = {paths[i] for i in held}
    return set(paths) - chosen if flip else chosen


def allocate(paths: list[str], digests: dict[str, str], val_fraction: float, test_fraction: float,
             seed: str) -> dict[str, list[str]]:
    """Shuffle groups of identical files with ``seed`` and fill val, then test, leaving train at least one group."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        groups[digests.get(path, path)].append(path)
    units = sorted(groups.values())
    random.Random(seed).shuffle(units)
    n = len(paths)
    n_val = max(1, int(n * val_fraction + 0.5)) if n >= 2 else 0
    n_test = min(int(n * test_fraction + 0.5), max(0, n - 1 - n_val))
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split, quota in (("val", n_val), ("test", n_test)):
        while units[1:] and len(chosen[split]) < quota:
            chosen[split] += units.pop()
    chosen["train"] = [p for unit in units for p in unit]
    return {s: sorted(members) for s, members in chosen.items()}


def no_val_note(name: str, count: int) -> str:
    what = "a single image" if count == 1 else f"{count} copies of one image"
    return f"Class '{name}' has {what}: it is used for training only and cannot be validated."
