"""Find the images, check every one of them, split them, and serve them to training.

Three sources are accepted: a root with one sub-folder per class (split here: stratified, seeded,
duplicates kept together), a root with ``train/``, ``val/`` and optionally ``test/`` sub-folders,
each with one sub-folder per class, or a label table (``tables.py``; its own split column, or split
here). The user's marks (``overrides.py``: relabel, exclude) are applied first. With groups (``groups.py``)
whole groups go to one part. Every image is decoded once during
the scan; files that fail are listed in the audit and skipped, never fatal. Splits depend only on
the file names, groups, seed and fractions, never on the order the file system lists them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from tl_desktop.config import DataConfig, group_source
from tl_desktop.engine.data.audit import SPLITS, Audit, build_audit
from tl_desktop.engine.data.dicom import DicomReading
from tl_desktop.engine.data.groups import describe_source, image_groups, merge_copies
from tl_desktop.engine.data.images import (
    SUPPORTED_EXTENSIONS,
    ImageLoadError,
    ImageProperties,
    is_supported_file,
    load_rgb,
)
from tl_desktop.engine.data.leakage import find_leakage
from tl_desktop.engine.data.overrides import apply_marks
from tl_desktop.engine.data.scanning import (
    DataError,
    FolderListing,
    FoundImage,
    ProbeMemo,
    ProgressFn,
    existing_folder,
    find_class_images,
    find_split_dirs,
    probe_all,
    subfolders,
    walk_files,
)
from tl_desktop.engine.data.splits import auto_parts, given_parts, grouped_parts
from tl_desktop.engine.data.tables import read_table
from tl_desktop.engine.runtime.stop import StopToken

__all__ = [
    "Audit", "DataError", "DatasetSplit", "ImageDataset", "Sample", "ScanResult",
    "list_images", "scan_dataset", "scan_labelled_folder",
]


@dataclass(frozen=True)
class Sample:
    """One image file, its class index and its group (patient, field, ...; "" when it has none).
    Images of one group always land in the same part of a split or fold."""

    path: str
    label: int
    group: str = ""


@dataclass
class DatasetSplit:
    """Which image goes where; written to ``split.json`` in every run folder."""

    root: str
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    layout: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; paths under ``root`` are stored relative to it (POSIX separators), a group as a third item."""
        root = Path(self.root)
        return {
            "root": self.root,
            "layout": self.layout,
            "classes": list(self.classes),
            **{name: [[_relative(s.path, root), s.label, *([s.group] if s.group else [])] for s in getattr(self, name)]
               for name in SPLITS},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DatasetSplit":
        """Inverse of :meth:`to_dict`; relative paths are resolved against ``root``; entries written
        before samples had groups ([path, label]) load with no group."""
        root = str(raw["root"])
        samples = {
            name: [Sample(os.path.normpath(os.path.join(root, p)), int(label), str(group[0]) if group else "")
                   for p, label, *group in raw.get(name, [])]
            for name in SPLITS
        }
        return cls(root=root, classes=list(raw["classes"]), layout=str(raw.get("layout", "auto")), **samples)


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan_dataset` returns: the split to train on and the audit to show."""

    split: DatasetSplit
    audit: Audit


class ImageDataset(torch.utils.data.Dataset):
    """(tensor, label) pairs read with :func:`load_rgb`; a file broken since the scan raises ImageLoadError."""

    def __init__(self, samples: list[Sample], transform: Callable[[Any], torch.Tensor], draft_size: tuple[int, int] | None = None,
                 dicom: DicomReading | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.draft_size = draft_size
        self.dicom = dicom

    @property
    def labels(self) -> list[int]:
        """Class index of every sample, in order (for class-balanced sampling)."""
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        try:
            image = load_rgb(sample.path, self.draft_size, self.dicom)
        except ImageLoadError as exc:
            raise ImageLoadError(sample.path, f"{exc.reason} (the file changed after the data were scanned)") from None
        return self.transform(image), sample.label


@dataclass
class _Source:
    """What the images are and how they came: a folder layout or a label table."""

    root: Path
    layout: str
    classes: list[str]
    found: list[FoundImage]
    given_parts: bool
    link_root: Path | None
    table_groups: dict[str, str] = field(default_factory=dict)
    ignored: int = 0
    notes: list[str] = field(default_factory=list)
    no_val: str = "val/ folder"
    table: str = ""  # the label table's path, when there is one
    group_column: str = ""  # the table column groups come from
    train_dir: Path | None = None  # the folder of training class folders, for a folder


def scan_dataset(cfg: DataConfig, progress: ProgressFn | None = None, stop: StopToken | None = None,
                 memo: ProbeMemo | None = None) -> ScanResult:
    """Scan ``cfg.root`` (or the label table ``cfg.labels``), apply the user's marks (``cfg.overrides``), decode
    every image once, split it, and audit it; with ``memo`` (an earlier scan's probes), only files new or changed since are decoded."""
    started = time.perf_counter()
    unreadable: list[tuple[str, str]] = []
    source = _table_source(cfg) if cfg.labels else _folder_source(cfg, unreadable)
    source.found, marks = apply_marks(source.found, source.root, source.classes, cfg.overrides)
    properties: dict[str, ImageProperties] = {}
    probes = probe_all([f.path for f in source.found], unreadable, progress, stop, root=source.link_root,
                       properties=properties, memo=memo)
    readable = [f for f in source.found if f.path in probes]
    _check_readable(source, readable)
    digests = {path: digest for path, (_, digest) in probes.items()}
    paths = [f.path for f in readable]
    user_groups = image_groups(paths, source.root, cfg.group_by, source.table_groups, digests)
    groups = merge_copies(paths, user_groups, digests)
    if source.given_parts:
        parts, notes = given_parts(source.classes, readable, digests, cfg,
                                   groups if user_groups else {}, source.no_val)
    elif user_groups:
        parts, notes = grouped_parts(source.classes, readable, groups, cfg)
    else:
        parts, notes = auto_parts(source.classes, readable, digests, cfg)
    split = _build_split(source, readable, parts, groups)
    assignments = {s.path: (split.classes[s.label], name) for name in SPLITS for s in getattr(split, name)}
    audit = build_audit(
        root=str(source.root), layout=source.layout, classes=source.classes, assignments=assignments,
        digests=digests, sizes={path: size for path, (size, _) in probes.items()}, unreadable=unreadable,
        ignored_files=source.ignored, notes=source.notes + notes, scan_seconds=time.perf_counter() - started,
        properties=properties, dicom_frame=cfg.dicom_frame,
    )
    hashes = {path: facts.picture_hash for path, facts in properties.items() if facts.picture_hash is not None}
    audit.leakage = find_leakage(describe_source(cfg.group_by, source.group_column), groups, assignments, hashes,
                                 audit.duplicate_groups)
    audit.warnings += audit.leakage.warnings()
    audit.table = source.table
    audit.add_marks(marks)
    return ScanResult(split=split, audit=audit)


def _folder_source(cfg: DataConfig, unreadable: list[tuple[str, str]]) -> _Source:
    root = existing_folder(cfg.root)
    split_dirs = find_split_dirs(root)
    folders = sorted(split_dirs.items()) if split_dirs else [(None, root)]
    listings = [find_class_images(folder, split, unreadable) for split, folder in folders]
    classes = _check_class_folders(root, listings, split_dirs)
    return _Source(
        root=root, layout="folders" if split_dirs else "auto", classes=classes,
        found=[f for listing in listings for f in listing.found], given_parts=bool(split_dirs), link_root=root,
        ignored=sum(listing.ignored for listing in listings), notes=_loose_notes(folders, listings),
        train_dir=split_dirs.get("train", root),
    )


def _table_source(cfg: DataConfig) -> _Source:
    kind, column = group_source(cfg.group_by)
    table = read_table(cfg.labels, column if kind == "column" else "")
    classes = sorted({row.label for row in table.rows})
    if len(classes) < 2:
        raise DataError(f"{table.path}: every row has the label {classes[0]!r}; at least two classes are needed")
    return _Source(
        root=Path(table.folder), layout="table-split" if table.has_split else "table", classes=classes,
        found=[FoundImage(row.path, row.label, row.split or None) for row in table.rows],
        given_parts=table.has_split, link_root=None, table_groups={row.path: row.group for row in table.rows},
        notes=list(table.notes),
        no_val="row with the split 'val'", table=table.path, group_column=table.group_column,
    )


def _build_split(source: _Source, readable: list[FoundImage], parts: dict[str, str], groups: dict[str, str]) -> DatasetSplit:
    """Samples in class order, paths sorted within each part; each carries the group it was split with."""
    by_part: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for f in sorted(readable, key=lambda f: (source.classes.index(f.class_name), f.path)):
        by_part[parts[f.path]].append(Sample(f.path, source.classes.index(f.class_name), groups.get(f.path, "")))
    return DatasetSplit(str(source.root), list(source.classes), layout=source.layout, **by_part)


def scan_labelled_folder(
    root: str | Path, class_names: list[str] | None = None, progress: ProgressFn | None = None, stop: StopToken | None = None
) -> tuple[list[str], list[Sample], list[tuple[str, str]]]:
    """An evaluation folder (one sub-folder per class, every image used): classes, samples, unreadable."""
    folder = existing_folder(root)
    unreadable: list[tuple[str, str]] = []
    found = find_class_images(folder, None, unreadable).found
    folder_classes = sorted({f.class_name for f in found})
    classes = list(class_names) if class_names is not None else folder_classes
    unknown = [c for c in folder_classes if c not in classes]
    if unknown:
        raise DataError(
            f"{folder}: the folders {', '.join(repr(c) for c in unknown)} are not classes of this model "
            f"(its classes are {', '.join(repr(c) for c in classes)})"
        )
    probes = probe_all([f.path for f in found], unreadable, progress, stop, root=folder)
    samples = [Sample(f.path, classes.index(f.class_name)) for f in found if f.path in probes]
    if not samples:
        raise DataError(f"{folder} contains no readable images in class sub-folders")
    return classes, samples, unreadable


def list_images(path: str | Path) -> list[str]:
    """A supported image file, or every supported image under a folder (recursive), sorted."""
    target = Path(path)
    if target.is_file():
        if not is_supported_file(target):
            raise DataError(f"{target} is not a supported image file ({', '.join(sorted(SUPPORTED_EXTENSIONS))})")
        return [str(target)]
    if not target.is_dir():
        raise DataError(f"{target} does not exist")
    return sorted(p for p in walk_files(target, []) if is_supported_file(p))


def _check_class_folders(root: Path, listings: list[FolderListing], split_dirs: dict[str, Path]) -> list[str]:
    """Class names (sorted) from the class folders; a layout that cannot work raises DataError naming the folder."""
    train_dir = split_dirs.get("train", root)
    train_listing = next(listing for listing in listings if listing.split in (None, "train"))
    class_names = sorted(train_listing.class_names)
    if len(class_names) < 2:
        raise DataError(f"{train_dir} needs at least two class sub-folders with images; {_class_hint(train_dir, class_names)}")
    for listing in listings:
        extra = sorted(set(listing.class_names) - set(class_names))
        if extra:
            raise DataError(
                f"{split_dirs[listing.split or 'train']} has class folders that are not in {train_dir.name}/: {', '.join(extra)}"
            )
    return class_names


def _class_hint(folder: Path, class_names: list[str]) -> str:
    """What was found instead, and the likely fix."""
    if not class_names:
        loose = _loose_image_count(folder)
        if loose:
            return (f"found none, but {loose} image{'s' if loose != 1 else ''} directly in this folder. Put each "
                    "class in its own sub-folder named after the class (for example healthy/ and diseased/).")
        return "found none. Put the images of each class in a sub-folder named after the class."
    only = folder / class_names[0]
    if subfolders(only, []):
        return f"found only '{class_names[0]}'. If it holds the class folders, choose {only} instead."
    return f"found only '{class_names[0]}'. Add a folder for at least one more class."


def _loose_image_count(folder: Path) -> int:
    """How many supported image files lie directly in ``folder`` (not in sub-folders)."""
    try:
        return sum(1 for p in folder.iterdir() if p.is_file() and is_supported_file(p))
    except OSError:
        return 0


def _check_readable(source: _Source, readable: list[FoundImage]) -> None:
    """Every class needs at least one readable training image."""
    usable = {f.class_name for f in readable if f.split in (None, "train")}
    for name in source.classes:
        if name in usable:
            continue
        if source.table:
            raise DataError(f"{source.table}: class '{name}' has no readable training images: "
                            "add images or remove its rows")
        raise DataError(f"{(source.train_dir or source.root) / name} has no readable images: add images or remove this class folder")


def _loose_notes(folders: list[tuple[str | None, Path]], listings: list[FolderListing]) -> list[str]:
    return [
        f"{listing.loose_images:,} images lie directly in {folder} instead of a class sub-folder and were ignored."
        for (_, folder), listing in zip(folders, listings)
        if listing.loose_images
    ]


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path
