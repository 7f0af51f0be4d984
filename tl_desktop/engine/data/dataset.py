"""Find the images, check every one of them, split them, and serve them to training.

Two layouts are accepted: a root with one sub-folder per class (split here: stratified, seeded,
duplicates kept together) or a root with ``train/``, ``val/`` and optionally ``test/`` sub-folders,
each with one sub-folder per class. Every image is decoded once during the scan; files that fail
are listed in the audit and skipped, never fatal. Splits depend only on the file names, the seed
and the fractions, never on the order the file system lists them.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.audit import SPLITS, Audit, build_audit
from tl_desktop.engine.data.dicom import DicomReading
from tl_desktop.engine.data.images import (
    SUPPORTED_EXTENSIONS,
    ImageLoadError,
    ImageProperties,
    is_supported_file,
    load_rgb,
)
from tl_desktop.engine.data.scanning import (
    DataError,
    FolderListing,
    FoundImage,
    ProgressFn,
    existing_folder,
    find_class_images,
    find_split_dirs,
    probe_all,
    subfolders,
    walk_files,
)
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
        """JSON-safe; paths under ``root`` are stored relative to it (POSIX separators)."""
        root = Path(self.root)
        return {
            "root": self.root,
            "layout": self.layout,
            "classes": list(self.classes),
            **{name: [[_relative(s.path, root), s.label] for s in getattr(self, name)] for name in SPLITS},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DatasetSplit":
        """Inverse of :meth:`to_dict`; relative paths are resolved against ``root``."""
        root = str(raw["root"])
        samples = {
            name: [Sample(os.path.normpath(os.path.join(root, p)), int(label)) for p, label in raw.get(name, [])]
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


def scan_dataset(cfg: DataConfig, progress: ProgressFn | None = None, stop: StopToken | None = None) -> ScanResult:
    """Scan ``cfg.root``, decode every image once, split it, and audit it."""
    started = time.perf_counter()
    root = existing_folder(cfg.root)
    unreadable: list[tuple[str, str]] = []
    split_dirs = find_split_dirs(root)
    layout = "folders" if split_dirs else "auto"
    folders = sorted(split_dirs.items()) if split_dirs else [(None, root)]
    listings = [find_class_images(folder, split, unreadable) for split, folder in folders]
    classes = _check_class_folders(root, listings, split_dirs)
    found = [f for listing in listings for f in listing.found]
    properties: dict[str, ImageProperties] = {}
    probes = probe_all([f.path for f in found], unreadable, progress, stop, root=root, properties=properties)
    readable = [f for f in found if f.path in probes]
    _check_readable(split_dirs.get("train", root), classes, readable)
    digests = {path: digest for path, (_, digest) in probes.items()}
    if split_dirs:
        split, notes = _split_by_folders(root, classes, readable, digests, cfg)
    else:
        split, notes = _split_auto(root, classes, readable, digests, cfg)
    assignments = {s.path: (classes[s.label], name) for name in SPLITS for s in getattr(split, name)}
    audit = build_audit(
        root=str(root), layout=layout, classes=classes, assignments=assignments, digests=digests,
        sizes={path: size for path, (size, _) in probes.items()}, unreadable=unreadable,
        ignored_files=sum(listing.ignored for listing in listings), notes=_loose_notes(folders, listings) + notes,
        scan_seconds=time.perf_counter() - started, properties=properties, dicom_frame=cfg.dicom_frame,
    )
    return ScanResult(split=split, audit=audit)


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
        return "found none. Put the images of each class in a sub-folder named after the class."
    only = folder / class_names[0]
    if subfolders(only, []):
        return f"found only '{class_names[0]}'. If it holds the class folders, choose {only} instead."
    return f"found only '{class_names[0]}'. Add a folder for at least one more class."


def _check_readable(train_dir: Path, classes: list[str], readable: list[FoundImage]) -> None:
    """Every class needs at least one readable training image."""
    usable = {f.class_name for f in readable if f.split in (None, "train")}
    for name in classes:
        if name not in usable:
            raise DataError(f"{train_dir / name} has no readable images: add images or remove this class folder")


def _loose_notes(folders: list[tuple[str | None, Path]], listings: list[FolderListing]) -> list[str]:
    return [
        f"{listing.loose_images:,} images lie directly in {folder} instead of a class sub-folder and were ignored."
        for (_, folder), listing in zip(folders, listings)
        if listing.loose_images
    ]


def _split_auto(root: Path, classes: list[str], readable: list[FoundImage], digests: dict[str, str], cfg: DataConfig) -> tuple[DatasetSplit, list[str]]:
    """Stratified, seeded split; identical files stay together so no copy straddles splits, even when
    copies are filed under different classes (the audit reports those as conflicting labels)."""
    parts: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    notes: list[str] = []
    by_class: dict[str, list[str]] = {name: [] for name in classes}
    for f in readable:
        by_class[f.class_name].append(f.path)
    placed: dict[str, str] = {}  # content digest -> the part its first copy went to
    for label, name in enumerate(classes):
        paths = sorted(by_class[name])
        forced = {p: placed[digests[p]] for p in paths if digests.get(p) in placed}
        chosen = _allocate([p for p in paths if p not in forced], digests, cfg.val_fraction, cfg.test_fraction,
                           f"{cfg.seed}:{name}")
        for path, split in forced.items():
            chosen[split].append(path)
        for split, members in chosen.items():
            parts[split] += [Sample(p, label) for p in sorted(members)]
            placed.update({digests.get(p, p): split for p in members})
        if not chosen["val"]:
            notes.append(_no_val_note(name, len(paths)))
    return DatasetSplit(str(root), classes, layout="auto", **parts), notes


def _split_by_folders(root: Path, classes: list[str], readable: list[FoundImage], digests: dict[str, str], cfg: DataConfig) -> tuple[DatasetSplit, list[str]]:
    """Use the given train/val/test folders; a class without validation images gets some held out from train."""
    parts: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    held_out: dict[str, int] = {}
    notes: list[str] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for f in readable:
        grouped.setdefault((f.class_name, f.split or "train"), []).append(f.path)
    for label, name in enumerate(classes):
        by_split = {s: sorted(grouped.get((name, s), [])) for s in SPLITS}
        if not by_split["val"]:
            held = _allocate(by_split["train"], digests, cfg.val_fraction, 0.0, f"{cfg.seed}:{name}")
            by_split["train"], by_split["val"] = held["train"], held["val"]
            held_out[name] = len(held["val"])
            if not held["val"]:
                notes.append(_no_val_note(name, len(held["train"])))
        for split in SPLITS:
            parts[split] += [Sample(p, label) for p in by_split[split]]
    if not any(f.split == "val" for f in readable):
        notes.insert(0, f"There is no val/ folder: {cfg.val_fraction:.0%} of each class's training images "
                        f"({sum(held_out.values()):,} in all) were held out for validation.")
    else:
        notes += [
            f"Class '{name}' has no validation images; {count} of its training images were held out for validation."
            for name, count in held_out.items() if count
        ]
    return DatasetSplit(str(root), classes, layout="folders", **parts), notes


def _allocate(paths: list[str], digests: dict[str, str], val_fraction: float, test_fraction: float, seed: str) -> dict[str, list[str]]:
    """Shuffle groups of identical files with ``seed`` and fill val, then test, leaving train at least one group."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(digests.get(path, path), []).append(path)
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


def _no_val_note(name: str, count: int) -> str:
    what = "a single image" if count == 1 else f"{count} copies of one image"
    return f"Class '{name}' has {what}: it is used for training only and cannot be validated."


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path
