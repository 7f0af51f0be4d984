"""The Data page's sources: a folder or a label table, the group-by choice, and a bad table's dialog text;
the scan itself (through the open project's scan record when there is one) with a few thumbnails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox

from tl_desktop.config import DataConfig, RunConfig
from tl_desktop.gui.widgets.thumbnails import Thumbnail, load_thumbnails
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import DatasetSplit, ScanResult
    from tl_desktop.engine.data.leakage import Leakage
    from tl_desktop.engine.data.tables import TableError
    from tl_desktop.engine.workflows.project import Project
    from tl_desktop.engine.workflows.project_scan import ProjectScan

THUMBS_PER_CLASS = 8


@dataclass(frozen=True)
class ScanOutcome:
    """A finished scan with a few thumbnails per class; for a project, what its scan record did."""

    scan: ScanResult
    thumbs: dict[int, list[Thumbnail]]
    project_scan: ProjectScan | None = None


def examples_per_class(split: DatasetSplit, k: int) -> dict[int, list[str]]:
    """The first ``k`` image paths of each class (training images first)."""
    chosen: dict[int, list[str]] = {i: [] for i in range(len(split.classes))}
    for sample in [*split.train, *split.val, *split.test]:
        if len(chosen[sample.label]) < k:
            chosen[sample.label].append(sample.path)
    return chosen


def scan_with_thumbnails(config: RunConfig, ctx: TaskContext, project: Project | None = None) -> ScanOutcome:
    """Scan and audit ``config``'s data (for ``project``: decoding only what changed since its last scan, and
    saving the data source and settings in it), then decode a few thumbnails per class (worker thread)."""
    from tl_desktop.engine.data.dataset import scan_dataset
    from tl_desktop.engine.workflows.project_scan import scan_project

    project_scan = None if project is None else scan_project(project, config, ctx.progress, ctx.stop)
    scan = project_scan.scan if project_scan is not None else scan_dataset(config.data, ctx.progress, ctx.stop)
    root = Path(scan.split.root)
    thumbs = {}
    for label, paths in examples_per_class(scan.split, THUMBS_PER_CLASS).items():
        full = [p if Path(p).is_absolute() else str(root / p) for p in paths]
        thumbs[label] = load_thumbnails(full, should_stop=lambda: ctx.stop.requested)
    ctx.stop.raise_if_requested()
    return ScanOutcome(scan, thumbs, project_scan)


def scan_or_table_problems(config: RunConfig, ctx: TaskContext, project: Project | None = None) -> ScanOutcome | TableError:
    """:func:`scan_with_thumbnails`, or the bad label table's error (every line of it goes in a dialog)."""
    from tl_desktop.engine.data.tables import TableError

    try:
        return scan_with_thumbnails(config, ctx, project)
    except TableError as exc:
        return exc


def source_config(path: str, group_by: str, **split: Any) -> DataConfig:
    """A DataConfig for a folder or, for a table file, a label table."""
    from tl_desktop.engine.data.tables import is_table_file

    if is_table_file(path) and not Path(path).is_dir():
        return DataConfig(labels=path, group_by=group_by, **split)
    return DataConfig(root=path, group_by=group_by, **split)


def group_by_box() -> QComboBox:
    """An editable choice of what groups the images: none, a table column, a DICOM tag or a pattern."""
    box = QComboBox()
    box.setEditable(True)
    box.setMinimumContentsLength(18)
    box.lineEdit().setPlaceholderText("none")
    box.setToolTip("Keep all images of one patient, field or plant in one part: a table column, "
                   "dicom:PatientID (stored only hashed), or re: and a pattern with one (group) "
                   "on the path, e.g. re:^(P\\d+)_")
    box.addItems(["", "dicom:PatientID"])
    return box


def table_problems(error: TableError) -> tuple[str, str, str]:
    """What, next step and details for the dialog about a bad label table: every bad line in the details."""
    count = len(error.problems)
    return (f"The label table {error.table} cannot be used: {count} "
            f"{'line needs' if count == 1 else 'lines need'} fixing.\n\n{error}",
            "Fix the lines listed under Details (line 1 is the header), save the table and scan again.",
            "\n".join(f"line {line}: {text}" for line, text in error.problems))


def group_words(leakage: Leakage) -> str:
    """The groups per part, for the Data page's summary ("" without groups)."""
    if not leakage.group_count:
        return ""
    parts = ", ".join(f"{leakage.groups_per_split.get(name, 0):,} {name}" for name in ("train", "val", "test"))
    return f" <b>{leakage.group_count:,} groups</b> from {leakage.group_source}: {parts}."


def split_words(layout: str, groups: int) -> str:
    """How the images were split, in words."""
    if layout == "folders":
        return "Using the folder's own train / val / test sub-folders."
    if layout == "table-split":
        return "Using the table's own split column (train / val / test)."
    if groups:
        return f"Whole groups ({groups:,}) go to one part each, keeping class proportions as far as groups allow."
    return "Images are split at random, keeping class proportions."
