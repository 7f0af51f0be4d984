"""What could leak between train, validation and test: groups (patients, fields) and near-duplicates.

Part of the audit: how many groups each class and each part holds, groups that carry several
labels, groups that the user's own parts (folders or a table's split column) put in two parts, and
pictures that are nearly the same (a perceptual hash of the decoded thumbnail) in different parts.
Plain data; the sentences are for someone who is not a machine-learning expert.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
# Two dHashes this many bits apart (of 64) or fewer are the same picture, resized, recompressed or re-saved.
NEAR_DUPLICATE_BITS = 4
_MAX_LISTED = 10
# Rows compared at once when looking for near-duplicates (a block of hashes against one band's run).
_BLOCK = 512
# audit.json keeps this many near-duplicate pairs; the count covers them all.
MAX_STORED_PAIRS = 1000


@dataclass
class Leakage:
    """Groups and near-duplicates found by the scan, for the audit and ``audit.json``."""

    group_source: str = ""
    group_count: int = 0
    groups_per_class: dict[str, int] = field(default_factory=dict)
    groups_per_split: dict[str, int] = field(default_factory=dict)
    mixed_label_groups: list[str] = field(default_factory=list)
    straddling_groups: list[str] = field(default_factory=list)
    near_duplicates: list[list[str]] = field(default_factory=list)
    near_duplicate_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Leakage":
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)

    def lines(self, root: str) -> list[str]:
        """Summary lines for the audit (groups, then near-duplicates)."""
        lines: list[str] = []
        if self.group_source:
            per_split = ", ".join(f"{self.groups_per_split.get(s, 0):,} {s}" for s in SPLITS)
            per_class = ", ".join(f"{name} {count:,}" for name, count in self.groups_per_class.items())
            lines += [f"Groups: {self.group_count:,} from {self.group_source} ({per_split})",
                      f"  groups per class: {per_class}"]
        if self.near_duplicate_count:
            lines.append(f"Near-duplicates across splits: {_pairs(self.near_duplicate_count)} of nearly identical "
                         "pictures")
            lines += ["  " + " ~ ".join(_shorten(p, root) for p in pair) for pair in self.near_duplicates[:_MAX_LISTED]]
            if self.near_duplicate_count > _MAX_LISTED:
                lines.append(f"  ... and {self.near_duplicate_count - _MAX_LISTED:,} more (see audit.json)")
        return lines

    def warnings(self) -> list[str]:
        """Plain-language advice about what could leak."""
        out: list[str] = []
        if self.mixed_label_groups:
            out.append(f"{_some(self.mixed_label_groups, 'group')} {_verb(self.mixed_label_groups)} images of "
                       "more than one class; that is fine for a patient with several findings, but check the "
                       "labels if a group should be one class.")
        if self.straddling_groups:
            out.append(f"{_some(self.straddling_groups, 'group')} {_verb(self.straddling_groups)} images in more "
                       "than one of train/val/test: the validation and test scores will look better than they "
                       "really are. Put each group's images in one part (or let the app split by group).")
        if self.near_duplicate_count:
            out.append(f"{_pairs(self.near_duplicate_count)} of nearly identical pictures (resized or "
                       "recompressed copies) are split between train, val and test: "
                       "the validation and test scores will look better than they really are. Remove the copies "
                       "or group them together.")
        return out


def picture_hash(picture: Image.Image) -> int:
    """The 64-bit difference hash (``imagehash.dhash``) of a decoded picture: resizing, recompressing or
    re-saving a picture changes few of its bits, another picture about half of them."""
    import imagehash

    return int(str(imagehash.dhash(picture)), 16)


def find_leakage(source: str, groups: dict[str, str], assignments: dict[str, tuple[str, str]],
                 hashes: dict[str, int], identical: list[list[str]]) -> Leakage:
    """Groups (when ``source`` names where they came from) and near-duplicates across parts.
    ``assignments`` maps each used path to (class name, part), ``groups`` each grouped path to its group,
    ``hashes`` each path to its :func:`picture_hash`; ``identical`` are the byte-identical copies."""
    near = near_duplicates_across_parts(hashes, assignments, identical)
    grouped = group_leakage(source, groups, assignments) if source else Leakage()
    grouped.near_duplicates, grouped.near_duplicate_count = near[:MAX_STORED_PAIRS], len(near)
    return grouped


def group_leakage(source: str, groups: dict[str, str], assignments: dict[str, tuple[str, str]]) -> Leakage:
    """Group counts per class and per part, groups with several labels and groups in several parts."""
    labels: dict[str, set[str]] = defaultdict(set)
    parts: dict[str, set[str]] = defaultdict(set)
    per_class: dict[str, set[str]] = defaultdict(set)
    per_split: dict[str, set[str]] = defaultdict(set)
    for path, (name, part) in sorted(assignments.items()):
        group = groups.get(path, f"file:{path}")
        labels[group].add(name)
        parts[group].add(part)
        per_class[name].add(group)
        per_split[part].add(group)
    return Leakage(
        group_source=source, group_count=len(labels),
        groups_per_class={name: len(per_class[name]) for name in sorted(per_class)},
        groups_per_split={part: len(per_split[part]) for part in SPLITS},
        mixed_label_groups=sorted(g for g, names in labels.items() if len(names) > 1),
        straddling_groups=sorted(g for g, names in parts.items() if len(names) > 1),
    )


def near_duplicates_across_parts(hashes: dict[str, int], assignments: dict[str, tuple[str, str]],
                                 identical: list[list[str]], bits: int = NEAR_DUPLICATE_BITS) -> list[list[str]]:
    """Pairs of pictures in different parts whose perceptual hashes differ in at most ``bits`` bits,
    leaving out byte-identical copies (the audit lists those already)."""
    paths = sorted(p for p in hashes if p in assignments)
    if len(paths) < 2:
        return []
    same_file = {path: index for index, group in enumerate(identical) for path in group}
    values = np.array([hashes[p] for p in paths], dtype=np.uint64)
    parts = np.array([SPLITS.index(assignments[p][1]) for p in paths])
    copies = np.array([same_file.get(p, -1 - i) for i, p in enumerate(paths)])  # a lone file: a copy set of its own
    # Pigeonhole: two 64-bit hashes within ``bits`` bits agree exactly on one of ``bits + 1`` bands, so
    # only hashes sharing a band value are compared (each run of equal band values as one block).
    bands = bits + 1
    width = 64 // bands
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        keys = (values >> np.uint64(band * width)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1], True])
        for start, end in zip(starts[:-1], starts[1:]):
            if end - start > 1:
                pairs |= _close_pairs(order[start:end], values, parts, copies, bits)
    return [[paths[i], paths[j]] for i, j in sorted(pairs)]


def _close_pairs(members: np.ndarray, values: np.ndarray, parts: np.ndarray, copies: np.ndarray,
                 bits: int) -> set[tuple[int, int]]:
    """(i, j), i < j, among ``members`` within ``bits`` bits, in different parts and not copies of one file."""
    found: set[tuple[int, int]] = set()
    for begin in range(0, members.size, _BLOCK):
        rows = members[begin:begin + _BLOCK]
        close = np.bitwise_count(values[rows][:, None] ^ values[members][None, :]) <= bits
        close &= parts[rows][:, None] != parts[members][None, :]
        close &= copies[rows][:, None] != copies[members][None, :]
        close &= rows[:, None] < members[None, :]
        i, j = np.nonzero(close)
        found.update(zip(rows[i].tolist(), members[j].tolist()))
    return found


def _pairs(count: int) -> str:
    return f"{count:,} {'pair' if count == 1 else 'pairs'}"


def _some(groups: list[str], noun: str) -> str:
    shown = ", ".join(f"'{g}'" for g in groups[:3]) + (" ..." if len(groups) > 3 else "")
    return f"{len(groups):,} {noun}{'' if len(groups) == 1 else 's'} ({shown})"


def _verb(items: list[str]) -> str:
    return "has" if len(items) == 1 else "have"


def _shorten(path: str, root: str) -> str:
    prefix = root.rstrip("/\\") + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path
