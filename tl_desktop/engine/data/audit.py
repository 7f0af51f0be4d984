"""The data audit shown before training: counts, unreadable files, duplicates, imbalance, image sizes,
DICOM files, and file properties that give a class away (:mod:`shortcuts`).

Everything here is plain data built from what the scan found; ``warnings`` are sentences written for
someone who is not a machine-learning expert and says what will happen or what to do.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from tl_desktop.engine.data.images import ImageProperties
from tl_desktop.engine.data.leakage import Leakage
from tl_desktop.engine.data.overrides import AppliedMarks
from tl_desktop.engine.data.shortcuts import (
    PropertyBaseline,
    ShortcutFinding,
    baseline_line,
    find_shortcuts,
    property_baseline,
    property_values,
    shortcut_warnings,
)

SPLITS = ("train", "val", "test")

# Largest / smallest class at or above this ratio counts as imbalanced (class balancing kicks in).
IMBALANCE_THRESHOLD = 3.0
# Images above this many pixels decode slowly; the audit counts them.
HUGE_PIXELS = 24_000_000
# Images whose sides are both below this are far smaller than any model input (a quarter of the 224 px
# most backbones take): they are blown up many times and carry little detail. The audit counts them.
TINY_SIDE = 56
# Fewer images than this in a class gives unreliable results for that class.
SMALL_CLASS = 10
_MAX_LISTED = 10
_LAYOUT_WORDS = {"folders": "train/val/test folders", "table": "a label table, split automatically",
                 "table-split": "a label table with its own train/val/test split"}


@dataclass(frozen=True)
class SizeStats:
    """Width/height statistics of the readable images (upright, in pixels)."""

    count: int = 0
    min_width: int = 0
    median_width: int = 0
    max_width: int = 0
    min_height: int = 0
    median_height: int = 0
    max_height: int = 0
    huge: int = 0
    tiny: int = 0

    @classmethod
    def from_sizes(cls, sizes: list[tuple[int, int]]) -> "SizeStats":
        """Summarise a list of (width, height)."""
        if not sizes:
            return cls()
        widths = [w for w, _ in sizes]
        heights = [h for _, h in sizes]
        return cls(
            count=len(sizes),
            min_width=min(widths),
            median_width=int(statistics.median(widths)),
            max_width=max(widths),
            min_height=min(heights),
            median_height=int(statistics.median(heights)),
            max_height=max(heights),
            huge=sum(1 for w, h in sizes if w * h > HUGE_PIXELS),
            tiny=sum(1 for w, h in sizes if w < TINY_SIDE and h < TINY_SIDE),
        )


@dataclass
class Audit:
    """What the scan found, for the CLI, the window and ``audit.json``."""

    root: str
    layout: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)
    cross_split_duplicates: list[list[str]] = field(default_factory=list)
    cross_class_duplicates: list[list[str]] = field(default_factory=list)
    imbalance_ratio: float = 1.0
    sizes: SizeStats = field(default_factory=SizeStats)
    ignored_files: int = 0
    scan_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    leakage: Leakage = field(default_factory=Leakage)
    table: str = ""  # the label table the images came from, if any
    shortcuts: list[ShortcutFinding] = field(default_factory=list)
    property_baseline: PropertyBaseline | None = None
    dicom_files: int = 0
    dicom_multi_frame: int = 0
    dicom_frame: str = "middle"
    marks_file: str = ""  # the user's marks applied (overrides.csv), if any
    relabelled: list[list[str]] = field(default_factory=list)  # [path, class before, class after]
    excluded: list[str] = field(default_factory=list)
    unmatched_marks: list[str] = field(default_factory=list)  # marks of images no longer in the data

    @property
    def imbalanced(self) -> bool:
        """Largest / smallest class at or above IMBALANCE_THRESHOLD."""
        return self.imbalance_ratio >= IMBALANCE_THRESHOLD

    def class_totals(self) -> dict[str, int]:
        """Images per class over all splits."""
        return {c: sum(self.counts.get(c, {}).values()) for c in self.classes}

    def split_totals(self) -> dict[str, int]:
        """Images per split over all classes."""
        return {s: sum(self.counts.get(c, {}).get(s, 0) for c in self.classes) for s in SPLITS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, with the derived ``imbalanced`` flag added for readers of audit.json."""
        raw = asdict(self)
        raw["unreadable"] = [list(item) for item in self.unreadable]
        raw["imbalanced"] = self.imbalanced
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Audit":
        """Inverse of :meth:`to_dict`."""
        fields = {k: v for k, v in raw.items() if k != "imbalanced"}
        fields["unreadable"] = [(str(p), str(r)) for p, r in raw.get("unreadable", [])]
        fields["sizes"] = SizeStats(**raw.get("sizes", {}))
        fields["leakage"] = Leakage.from_dict(raw.get("leakage", {}))
        fields["shortcuts"] = [ShortcutFinding(**item) for item in raw.get("shortcuts", [])]
        baseline = raw.get("property_baseline")
        fields["property_baseline"] = PropertyBaseline(**baseline) if baseline else None
        return cls(**fields)

    def add_marks(self, marks: AppliedMarks) -> None:
        """Record what the user's marks did (paths as the marks file stores them)."""
        self.marks_file = marks.file
        self.relabelled = [list(item) for item in marks.relabelled]
        self.excluded = list(marks.excluded)
        self.unmatched_marks = list(marks.unmatched)
        if marks.unmatched:
            self.warnings.append(
                f"{_count(len(marks.unmatched), 'marked image')} (in {os.path.basename(marks.file)}) "
                f"{'is' if len(marks.unmatched) == 1 else 'are'} no longer among these images (moved, renamed or "
                "deleted): the mark was ignored. Undo it under “Marked images…”.")

    def marks_line(self) -> str:
        """'3 images relabelled by you, 2 excluded' ("" when no mark changed anything)."""
        if not self.relabelled:
            return f"{_count(len(self.excluded), 'image')} excluded by you" if self.excluded else ""
        excluded = f", {len(self.excluded):,} excluded" if self.excluded else ""
        return f"{_count(len(self.relabelled), 'image')} relabelled by you{excluded}"

    def _marks_lines(self) -> list[str]:
        line = self.marks_line()
        if not line:
            return []
        lines = [f"Your marks ({self.marks_file}): {line}"]
        listed = [f"  {path}: {before} → {after}" for path, before, after in self.relabelled]
        listed += [f"  {path}: excluded" for path in self.excluded]
        lines += listed[:_MAX_LISTED]
        if len(listed) > _MAX_LISTED:
            lines.append(f"  ... and {len(listed) - _MAX_LISTED:,} more (see audit.json)")
        return lines

    def property_lines(self) -> list[str]:
        """The DICOM files and the properties-only baseline, for the summary and the report."""
        lines = [baseline_line(self.property_baseline)] if len(self.classes) >= 2 else []
        if self.dicom_files:
            frames = (f"; {self.dicom_multi_frame:,} hold several frames and give their {_frame_words(self.dicom_frame)} "
                      "(the dicom_frame setting picks another)") if self.dicom_multi_frame else ""
            lines.append(f"DICOM: {self.dicom_files:,} files, windowed to 8 bits{frames}")
        return lines

    def summary_lines(self) -> list[str]:
        """A short human summary, one line per fact, warnings last."""
        splits = self.split_totals()
        total = sum(splits.values())
        layout = _LAYOUT_WORDS.get(self.layout, "one folder per class, split automatically")
        lines = [
            f"Data: {self.table or self.root} ({layout})",
            f"{len(self.classes)} classes, {total:,} images: "
            + ", ".join(f"{splits[s]:,} {s}" for s in SPLITS),
        ]
        width = max((len(c) for c in self.classes), default=0)
        for name in self.classes:
            row = self.counts.get(name, {})
            lines.append(f"  {name:<{width}}  " + "  ".join(f"{s} {row.get(s, 0):>5,}" for s in SPLITS))
        lines.append(_size_line(self.sizes))
        lines += _unreadable_lines(self.unreadable, self.root)
        lines += _duplicate_lines(self)
        lines += self.leakage.lines(self.root)
        if len(self.classes) >= 2:
            flag = " (imbalanced)" if self.imbalanced else ""
            lines.append(f"Balance: largest class has {self.imbalance_ratio:.1f}x the images of the smallest{flag}")
        lines += self.property_lines()
        lines += self._marks_lines()
        lines.append(f"Scanned in {self.scan_seconds:.1f} s")
        lines += [f"Warning: {text}" for text in self.warnings]
        return lines


def build_audit(
    *,
    root: str,
    layout: str,
    classes: list[str],
    assignments: dict[str, tuple[str, str]],
    digests: dict[str, str],
    sizes: dict[str, tuple[int, int]],
    unreadable: list[tuple[str, str]],
    ignored_files: int,
    notes: list[str],
    scan_seconds: float,
    properties: dict[str, ImageProperties] | None = None,
    dicom_frame: str = "middle",
) -> Audit:
    """Assemble the audit; ``assignments`` maps each used path to (class name, split name), ``properties``
    each scanned path to the header facts the shortcut audit compares."""
    counts = {c: {s: 0 for s in SPLITS} for c in classes}
    for name, split in assignments.values():
        counts[name][split] += 1
    groups = _duplicate_groups(digests)
    audit = Audit(
        root=root,
        layout=layout,
        classes=list(classes),
        counts=counts,
        unreadable=sorted(unreadable),
        duplicate_groups=groups,
        cross_split_duplicates=[g for g in groups if len({assignments[p][1] for p in g if p in assignments}) > 1],
        cross_class_duplicates=[g for g in groups if len({assignments[p][0] for p in g if p in assignments}) > 1],
        imbalance_ratio=_imbalance(counts),
        sizes=SizeStats.from_sizes([sizes[p] for p in sorted(assignments) if p in sizes]),
        ignored_files=ignored_files,
        scan_seconds=scan_seconds,
    )
    audit.warnings = list(notes) + _warnings(audit)
    if properties:
        _add_property_findings(audit, assignments, properties, dicom_frame)
    return audit


def _add_property_findings(audit: Audit, assignments: dict[str, tuple[str, str]],
                           properties: dict[str, ImageProperties], dicom_frame: str) -> None:
    """DICOM counts, separating properties and the properties-only baseline, over every image in use."""
    used = [p for p in sorted(assignments) if p in properties]
    facts = [properties[p] for p in used]
    labels = [assignments[p][0] for p in used]
    dicom = [f for f in facts if f.format == "DICOM"]
    audit.dicom_files, audit.dicom_frame = len(dicom), dicom_frame
    audit.dicom_multi_frame = sum(1 for f in dicom if f.frames > 1)
    if len(audit.classes) < 2:
        return
    audit.shortcuts = find_shortcuts(labels, [property_values(f) for f in facts], audit.classes)
    audit.property_baseline = property_baseline(labels, facts)
    audit.warnings += shortcut_warnings(audit.shortcuts, audit.property_baseline)


def _frame_words(rule: str) -> str:
    return f"{rule} frame" if rule in ("middle", "first", "last") else f"frame {rule}"


def _duplicate_groups(digests: dict[str, str]) -> list[list[str]]:
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in sorted(digests):
        by_digest[digests[path]].append(path)
    return sorted(group for group in by_digest.values() if len(group) > 1)


def _imbalance(counts: dict[str, dict[str, int]]) -> float:
    totals = [sum(row.values()) for row in counts.values()]
    if len(totals) < 2 or min(totals) == 0:
        return 1.0
    return max(totals) / min(totals)


def _warnings(audit: Audit) -> list[str]:
    """Plain-language advice about the problems the audit found."""
    out: list[str] = []
    totals = audit.class_totals()
    if totals:
        largest = max(totals, key=lambda c: (totals[c], c))
        for name in audit.classes:
            ratio = totals[largest] / max(totals[name], 1)
            if ratio >= IMBALANCE_THRESHOLD:
                out.append(
                    f"Class '{name}' has only {totals[name]:,} images, {ratio:.1f}x fewer than '{largest}'; "
                    "class balancing will be used (unless you turn it off)."
                )
    small = [c for c in audit.classes if totals[c] < SMALL_CLASS]
    if small:
        out.append(
            f"{_names(small)} {'has' if len(small) == 1 else 'have'} fewer than {SMALL_CLASS} images; "
            f"results for {'it' if len(small) == 1 else 'them'} will be unreliable. Aim for at least 30 images per class."
        )
    no_test = [c for c in audit.classes if audit.counts[c]["test"] == 0]
    if audit.split_totals()["test"] and no_test:
        out.append(f"{_names(no_test)} {'has' if len(no_test) == 1 else 'have'} no test images; the test score does not cover them.")
    if audit.unreadable:
        out.append(f"{_count(len(audit.unreadable), 'file')} could not be read and will be skipped (listed in the audit).")
    if audit.cross_class_duplicates:
        out.append(
            f"{_count(len(audit.cross_class_duplicates), 'image')} appear identically in more than one class: "
            "check their labels (the model cannot learn two answers for one picture)."
        )
    if audit.cross_split_duplicates:
        out.append(
            f"{_count(len(audit.cross_split_duplicates), 'group')} of identical images are in more than one of train/val/test: "
            "the validation and test scores will look better than they really are. Remove the copies."
        )
    elif audit.duplicate_groups and audit.layout in ("auto", "table"):
        out.append(
            f"{_count(len(audit.duplicate_groups), 'group')} of identical images found; each group was kept in one split."
        )
    if audit.sizes.huge:
        out.append(
            f"{audit.sizes.huge:,} images are larger than {HUGE_PIXELS // 1_000_000} megapixels; "
            "they are read at reduced size, but scanning and caching them takes longer."
        )
    if audit.sizes.tiny:
        out.append(
            f"{audit.sizes.tiny:,} images are smaller than {TINY_SIDE}x{TINY_SIDE} pixels (the shortest side is "
            f"{min(audit.sizes.min_width, audit.sizes.min_height)} px), far below the {TINY_SIDE * 4} px or more a model "
            "looks at: they are enlarged many times and carry little detail. Check they are not thumbnails or icons."
        )
    return out


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _names(classes: list[str]) -> str:
    quoted = [f"'{c}'" for c in classes]
    if len(quoted) == 1:
        return f"Class {quoted[0]}"
    shown = ", ".join(quoted[:_MAX_LISTED]) + (f" and {len(quoted) - _MAX_LISTED} more" if len(quoted) > _MAX_LISTED else "")
    return f"Classes {shown}"


def _size_line(sizes: SizeStats) -> str:
    if sizes.count == 0:
        return "Image size: no readable images"
    if sizes.min_width == sizes.max_width and sizes.min_height == sizes.max_height:
        return f"Image size: {sizes.min_width}x{sizes.min_height} (all {sizes.count:,} images)"
    huge = f"; {sizes.huge:,} over {HUGE_PIXELS // 1_000_000} MP" if sizes.huge else ""
    return (
        f"Image size: width {sizes.min_width}-{sizes.max_width} (median {sizes.median_width}), "
        f"height {sizes.min_height}-{sizes.max_height} (median {sizes.median_height}){huge}"
    )


def _unreadable_lines(unreadable: list[tuple[str, str]], root: str) -> list[str]:
    if not unreadable:
        return ["Unreadable files: none"]
    lines = [f"Unreadable files (skipped): {len(unreadable):,}"]
    lines += [f"  {_shorten(path, root)}: {reason}" for path, reason in unreadable[:_MAX_LISTED]]
    if len(unreadable) > _MAX_LISTED:
        lines.append(f"  ... and {len(unreadable) - _MAX_LISTED:,} more (see audit.json)")
    return lines


def _duplicate_lines(audit: Audit) -> list[str]:
    if not audit.duplicate_groups:
        return ["Duplicates: none"]
    files = sum(len(g) for g in audit.duplicate_groups)
    lines = [
        f"Duplicates: {_count(len(audit.duplicate_groups), 'group')} of identical files ({files:,} files); "
        f"{len(audit.cross_split_duplicates):,} straddle splits, {len(audit.cross_class_duplicates):,} straddle classes"
    ]
    # Leaks and label conflicts first: they are the groups a user must act on.
    ordered: list[list[str]] = []
    for group in audit.cross_split_duplicates + audit.cross_class_duplicates + audit.duplicate_groups:
        if group not in ordered:
            ordered.append(group)
    lines += ["  " + " = ".join(_shorten(p, audit.root) for p in group) for group in ordered[:_MAX_LISTED]]
    if len(audit.duplicate_groups) > _MAX_LISTED:
        lines.append(f"  ... and {len(audit.duplicate_groups) - _MAX_LISTED:,} more groups (see audit.json)")
    return lines


def _shorten(path: str, root: str) -> str:
    """``path`` relative to the data folder, for display."""
    prefix = root.rstrip("/\\") + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path
