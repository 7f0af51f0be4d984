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

from PIL import Image

SPLITS = ("train", "val", "test")
# Two dHashes this many bits apart (of 64) or fewer are the same picture, resized, recompressed or re-saved.
NEAR_DUPLICATE_BITS = 4
_MAX_LISTED = 10


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
        if self.near_duplicates:
            lines.append(f"Near-duplicates across splits: {len(self.near_duplicates):,} "
                         f"{'set' if len(self.near_duplicates) == 1 else 'sets'} of nearly identical pictures")
            lines += ["  " + " ~ ".join(_shorten(p, root) for p in pair) for pair in self.near_duplicates[:_MAX_LISTED]]
            if len(self.near_duplicates) > _MAX_LISTED:
                lines.append(f"  ... and {len(self.near_duplicates) - _MAX_LISTED:,} more (see audit.json)")
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
        if self.near_duplicates:
            out.append(f"{len(self.near_duplicates):,} {'set' if len(self.near_duplicates) == 1 else 'sets'} of nearly "
                       "identical pictures (resized or recompressed copies) are in more than one of train/val/test: "
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
    grouped.near_duplicates = near
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
    same_file = {path: index for index, group in enumerate(identical) for path in group}
    paths = sorted(p for p in hashes if p in assignments)
    # Pigeonhole: two 64-bit hashes within ``bits`` bits agree exactly on one of ``bits + 1`` bands.
    bands = bits + 1
    width = 64 // bands
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path in paths:
        for band in range(bands):
            buckets[(band, (hashes[path] >> (band * width)) & ((1 << width) - 1))].append(path)
    pairs: set[tuple[str, str]] = set()
    for members in buckets.values():
        for i, first in enumerate(members):
            for second in members[i + 1:]:
                if (assignments[first][1] != assignments[second][1]
                        and (first not in same_file or same_file.get(second) != same_file[first])
                        and bin(hashes[first] ^ hashes[second]).count("1") <= bits):
                    pairs.add((first, second))
    return [list(pair) for pair in sorted(pairs)]


def _some(groups: list[str], noun: str) -> str:
    shown = ", ".join(f"'{g}'" for g in groups[:3]) + (" ..." if len(groups) > 3 else "")
    return f"{len(groups):,} {noun}{'' if len(groups) == 1 else 's'} ({shown})"


def _verb(items: list[str]) -> str:
    return "has" if len(items) == 1 else "have"


def _shorten(path: str, root: str) -> str:
    prefix = root.rstrip("/\\") + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path
