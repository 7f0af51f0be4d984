"""Which group (patient, field, plant, ...) each image belongs to, so no group is split across parts.

A group comes from a label-table column, from a regular expression with one capture group applied
to the path relative to the data root, or from a DICOM tag (stored only as a salted hash, never the
value itself). Identical files join one group whatever their source says, so a copy can never sit
on both sides of a split.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

from tl_desktop.config import group_source
from tl_desktop.engine.data.scanning import DataError

COPY_PREFIX = "copy:"


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to ``root`` with POSIX separators (the absolute path when it lies outside)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def image_groups(paths: list[str], root: Path, group_by: str, table_groups: dict[str, str],
                 digests: dict[str, str]) -> dict[str, str]:
    """path -> group name for ``paths`` (only images that have one); raises DataError for images the
    source cannot place. ``table_groups`` are the groups a label table gave (its group column)."""
    kind, value = group_source(group_by)
    if kind == "regex":
        return _regex_groups(paths, root, value)
    if kind == "dicom":
        return _dicom_groups(paths, root, value, digests)
    return {path: group for path, group in table_groups.items() if group}


def describe_source(group_by: str, table_column: str) -> str:
    """Where the groups come from, in words ("" when there are none)."""
    kind, value = group_source(group_by)
    if kind == "regex":
        return f"the pattern {value!r} on each path"
    if kind == "dicom":
        return f"the DICOM tag {value} (stored only as a salted hash)"
    return f"the table column {table_column!r}" if table_column else ""


def _regex_groups(paths: list[str], root: Path, pattern: str) -> dict[str, str]:
    compiled = re.compile(pattern)
    found: dict[str, str] = {}
    missed: list[str] = []
    for path in sorted(paths):
        relative = relative_path(path, root)
        match = compiled.search(relative)
        if match and match.group(1):
            found[path] = match.group(1)
        else:
            missed.append(relative)
    if missed:
        raise DataError(
            f"the group pattern {pattern!r} finds no group in {len(missed):,} of {len(paths):,} images, "
            f"e.g. {missed[0]!r} (it is matched against the path relative to {root}, with / between folders); "
            "change the pattern so that its capture group (...) matches every file"
        )
    return found


def _dicom_groups(paths: list[str], root: Path, keyword: str, digests: dict[str, str]) -> dict[str, str]:
    """Groups from a DICOM tag, kept only as a salted hash (``dicom.hashed_group``), never the value.

    The salt is a digest of every image's content: the same images give the same groups (and so the
    same split for a seed) on any machine, while whoever holds only a run folder cannot test guesses
    of a PatientID against the stored hashes."""
    from tl_desktop.engine.data.dicom import DicomReadError, hashed_group, read_tag

    salt = hashlib.blake2b("".join(sorted(digests[p] for p in paths if p in digests)).encode("ascii")).digest()
    found: dict[str, str] = {}
    missed: list[tuple[str, str]] = []
    for path in sorted(paths):
        try:
            value = read_tag(path, keyword)
        except DicomReadError as exc:
            if "not a DICOM tag keyword" in str(exc):
                raise DataError(f"the group source dicom:{keyword} names no DICOM tag "
                                "(use a keyword such as PatientID or StudyInstanceUID)") from None
            value = ""
        if value:
            found[path] = hashed_group(value, salt)
        else:
            missed.append((relative_path(path, root), "has no " + keyword))
    if missed:
        raise DataError(
            f"{len(missed):,} of {len(paths):,} images have no DICOM {keyword} to group by, e.g. {missed[0][0]!r} "
            f"(a non-DICOM file or an empty tag); group them another way or remove them"
        )
    return found


def merge_copies(paths: list[str], groups: dict[str, str], digests: dict[str, str]) -> dict[str, str]:
    """path -> the group it is split with: groups joined by identical files merge (under the first name
    in sorted order); copies without a group form a group of their own. Images alone stay out."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        first, second = sorted((find(a), find(b)))
        parent[second] = first

    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        if path in digests:
            by_digest[digests[path]].append(path)
    for path in paths:
        if path in groups:
            union("g:" + groups[path], "p:" + path)
    for digest, copies in by_digest.items():
        if len(copies) > 1:
            for path in copies:
                union(f"c:{digest}", "p:" + path)
    members: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        members[find("p:" + path)].append(path)
    merged: dict[str, str] = {}
    for root, component in members.items():
        if len(component) == 1 and component[0] not in groups:
            continue
        names = sorted({groups[p] for p in component if p in groups})
        name = names[0] if names else COPY_PREFIX + digests[component[0]][:16]
        merged.update(dict.fromkeys(component, name))
    return merged
