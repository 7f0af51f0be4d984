"""Step 1 — Data: choose a folder or a label table, see classes with thumbnails, the split and the audit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.config import DataConfig
from tl_desktop.gui.marks_dialog import add_marks_check, checks_heading
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.pages.data_source import (
    ScanOutcome,
    group_by_box,
    group_words,
    scan_or_table_problems,
    source_config,
    split_words,
    table_problems,
)
from tl_desktop.gui.project_line import ProjectLine
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import (
    PathPicker,
    heading,
    hint,
    stretch_first_column,
)
from tl_desktop.gui.widgets.thumbnails import Thumbnail, ThumbnailStrip

if TYPE_CHECKING:
    from tl_desktop.engine.data.audit import Audit
    from tl_desktop.engine.data.dataset import DatasetSplit, ScanResult
    from tl_desktop.engine.data.tables import TableError
    from tl_desktop.engine.workflows.project_scan import ProjectScan

def class_counts(split: DatasetSplit) -> list[tuple[str, int, int, int]]:
    """Per class: (name, train, val, test) image counts of a DatasetSplit."""
    counts = [[0, 0, 0] for _ in split.classes]
    for column, samples in enumerate((split.train, split.val, split.test)):
        for sample in samples:
            counts[sample.label][column] += 1
    return [(name, *c) for name, c in zip(split.classes, counts)]


class DataPage(Page):
    """Choose the image folder, check it, and set the split."""

    step = Step.DATA
    title = "Data"
    step_hint = "choose images"
    hint = "Choose a folder of images (one sub-folder per class) or a label table."

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.folder = PathPicker("Image folder or label table",
                                 placeholder="A folder with one sub-folder per class, or a CSV/TSV label table…",
                                 button_text="Choose folder…")
        self.folder.path_chosen.connect(self.open_folder)
        self.table_button = QPushButton("Choose table…")
        self.table_button.setToolTip("A CSV or TSV file with the columns path and label (optionally group and split)")
        self.table_button.clicked.connect(self.choose_table)
        self.group_by = group_by_box()
        self.scan_button = QPushButton("Scan")
        self.scan_button.setToolTip("Read the folder again with the split settings below")
        self.scan_button.clicked.connect(self.scan)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.stop_tasks("scan"))
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()

        self.val_pct = self._percent_box(DataConfig.val_fraction, "Share of images kept aside to pick the best epoch")
        self.test_pct = self._percent_box(DataConfig.test_fraction, "Share of images kept aside for the final check")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The same seed gives the same split every time")
        self.split_info = QLabel()
        self.split_info.setWordWrap(True)
        split_box = QGroupBox("Split")
        split_row = QHBoxLayout(split_box)
        for text, widget in (("Validation", self.val_pct), ("Test", self.test_pct), ("Seed", self.seed),
                             ("Group by", self.group_by)):
            label = QLabel(text)
            label.setBuddy(widget)
            split_row.addWidget(label)
            split_row.addWidget(widget)
        split_row.addWidget(self.split_info, 1)
        self.cv_button = QPushButton("Cross-validate…")
        self.cv_button.setToolTip("Train and test one model per fold instead of trusting one split "
                                  "(uses the Model page's settings)")
        self.cv_button.setEnabled(False)
        self.cv_button.clicked.connect(self.cross_validate)
        split_row.addWidget(self.cv_button)

        self.summary = QLabel("No folder scanned yet.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Class", "Train", "Validation", "Test", "Total"])
        stretch_first_column(self.table)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.warnings = QListWidget()
        self.warnings.setWordWrap(True)
        self.warnings.itemActivated.connect(self._show_warning_details)
        self.warnings.itemClicked.connect(self._show_warning_details)
        self.thumbs_box = QWidget()
        self.thumbs_layout = QVBoxLayout(self.thumbs_box)
        self.thumbs_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.thumbs_box)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(heading("Classes"))
        left_layout.addWidget(self.table, 3)
        left_layout.addLayout(checks_heading(self, session))
        left_layout.addWidget(self.warnings, 2)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(heading("Examples of each class"))
        right_layout.addWidget(scroll)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([420, 580])

        top = QHBoxLayout()
        top.addWidget(self.folder, 1)
        top.addWidget(self.table_button)
        top.addWidget(self.scan_button)
        top.addWidget(self.cancel_button)
        self._rescan_when_done = False
        self.project_line = ProjectLine(session)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("1. Choose your images"))
        layout.addWidget(self.project_line)
        layout.addWidget(hint("Put the images of each class in its own sub-folder (for example healthy/ "
                              "and diseased/). A folder that already has train/, val/ and test/ "
                              "sub-folders is used as it is. Or choose a label table (CSV/TSV with the columns "
                              "path and label). You can also drag a folder onto this window. When several "
                              "images show one patient or field, choose what groups them so no group is split."))
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(split_box)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self._load_settings()
        session.marks_changed.connect(lambda: self.session.scan is not None and self.show_source(self.data_config()))

    def _percent_box(self, fraction: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0, 80)
        box.setDecimals(0)
        box.setSuffix(" %")
        box.setValue(round(fraction * 100))
        box.setToolTip(tip)
        return box

    def _load_settings(self) -> None:
        self.val_pct.setValue(float(self.session.recall("data/val_pct", self.val_pct.value())))
        self.test_pct.setValue(float(self.session.recall("data/test_pct", self.test_pct.value())))
        self.seed.setValue(int(self.session.recall("data/seed", 0)))
        self.folder.set_path(str(self.session.recall("data/folder", "")))
        self._offer_columns(self.folder.path())
        self.group_by.setCurrentText(str(self.session.recall("data/group_by", "")))

    def data_config(self) -> DataConfig:
        """The images (folder or table), grouping and split settings as a DataConfig."""
        project = self.session.project  # its marks (overrides.csv) apply to the scan and the next run
        return source_config(self.folder.path(), self.group_by.currentText().strip(),
                             val_fraction=self.val_pct.value() / 100, test_fraction=self.test_pct.value() / 100,
                             seed=self.seed.value(), overrides=project.marks_setting() if project else "")

    def show_source(self, data: DataConfig) -> None:
        """Show ``data``'s source and split settings (an opened project's) and scan it; without a source,
        clear the page."""
        for box, fraction in ((self.val_pct, data.val_fraction), (self.test_pct, data.test_fraction)):
            box.setValue(round(fraction * 100))
        self.seed.setValue(data.seed)
        source = data.labels or data.root
        self.folder.set_path(source)
        self._offer_columns(source)
        self.group_by.setCurrentText(data.group_by)
        if source and self.busy("scan"):  # the scan of what was shown before: this one follows it
            self._rescan_when_done = True
            self.stop_tasks("scan")
            return
        if source:
            self.scan()
            return
        self.session.set_scan(None)
        self.summary.setText("No folder scanned yet.")
        self.table.setRowCount(0)
        self.warnings.clear()
        self._show_thumbnails([], {})
        self.cv_button.setEnabled(False)

    def open_folder(self, path: str) -> None:
        """Use ``path`` (an image folder or a label table) and scan it."""
        self.folder.set_path(path)
        self._offer_columns(path)
        self.scan()

    def choose_table(self) -> None:
        """Pick a label table file and scan it."""
        from tl_desktop.engine.data.tables import TABLE_SUFFIXES

        patterns = " ".join(f"*{suffix}" for suffix in sorted(TABLE_SUFFIXES))
        chosen, _ = QFileDialog.getOpenFileName(self, "Label table", self.folder.path() or str(Path.home()),
                                                f"Label tables ({patterns});;All files (*)")
        if chosen:
            self.open_folder(chosen)

    def _offer_columns(self, path: str) -> None:
        """A table's extra columns become group-by choices (as typed text they work anyway)."""
        from tl_desktop.engine.data.tables import is_table_file, table_columns

        columns = table_columns(path) if is_table_file(path) and Path(path).is_file() else []
        current = self.group_by.currentText()
        self.group_by.clear()
        self.group_by.addItems(["", *[c for c in columns if c not in ("path", "label", "split")], "dicom:PatientID"])
        self.group_by.setCurrentText(current)

    def scan(self) -> None:
        """Scan the chosen folder in the background."""
        from tl_desktop.config import ConfigError

        cfg = self.data_config()
        source = cfg.labels or cfg.root
        if not source:
            self.show_error("No folder chosen.", "Click “Choose folder…” and pick the folder with your images, "
                            "or “Choose table…” for a label table.")
            return
        if not (Path(cfg.root).is_dir() if cfg.root else Path(cfg.labels).is_file()):
            what = "label table" if cfg.labels else "folder"
            self.show_error(f"The {what} {source} does not exist.", f"Choose an existing {what}.")
            return
        try:
            cfg.validate()
        except ConfigError as exc:
            self.show_error(f"The split settings are not usable: {exc}",
                            "Lower the validation or test share, or change “Group by”.")
            return
        if self.busy("scan"):
            return
        self.session.remember("data/folder", source)
        self.session.remember("data/group_by", cfg.group_by)
        self.session.remember("data/val_pct", self.val_pct.value())
        self.session.remember("data/test_pct", self.test_pct.value())
        self.session.remember("data/seed", self.seed.value())
        self._set_scanning(True)
        self.status.emit(f"Scanning {source}…")
        config, project = self.session.config.replace(data=cfg), self.session.project
        self.run_task(lambda ctx: scan_or_table_problems(config, ctx, project), "scan",
                      on_success=lambda result: self._scan_done(cfg, result),
                      on_progress=self._on_progress, on_done=self._scan_finished,
                      error_title=f"Could not read the {'label table' if cfg.labels else 'image folder'} {source}.",
                      error_hint="Check the table's rows." if cfg.labels else
                      "Check that it has one sub-folder per class with images in it.")

    def _scan_finished(self) -> None:
        self._set_scanning(False)
        if self._rescan_when_done:
            self._rescan_when_done = False
            self.scan()

    def _scan_done(self, cfg: DataConfig, result: ScanOutcome | TableError) -> None:
        if self._rescan_when_done:  # another project's data were chosen meanwhile
            return
        if not isinstance(result, ScanOutcome):  # a TableError
            self.show_error(*table_problems(result))
            return
        project = self.session.project
        if result.project_scan is not None and project is not None and result.project_scan.project.folder == project.folder:
            self.session.set_project(result.project_scan.project)
        self._scanned(cfg, result.scan, result.thumbs, result.project_scan)

    def cross_validate(self) -> None:
        """Open the cross-validation dialog on the scanned images with the window's settings."""
        from tl_desktop.gui.cv_dialog import CrossValidationDialog

        if self.session.scan is not None:
            self._cv_dialog = CrossValidationDialog(self, self.session.config, self.session.scan)
            self._cv_dialog.show()

    def _set_scanning(self, scanning: bool) -> None:
        self.progress.setVisible(scanning)
        self.cancel_button.setVisible(scanning)
        self.scan_button.setEnabled(not scanning)
        self.progress.setRange(0, 0)

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("Checked %v of %m images")

    def _scanned(self, cfg: DataConfig, scan: ScanResult, thumbs: dict[int, list[Thumbnail]],
                 project_scan: ProjectScan | None) -> None:
        self.session.set_config(self.session.config.replace(data=cfg))
        self.session.set_scan(scan)
        self.show_scan(scan, thumbs)
        self.cv_button.setEnabled(True)
        n = len(scan.split.train) + len(scan.split.val) + len(scan.split.test)
        reread = "" if project_scan is None or not project_scan.reused else (
            " (unchanged since the last scan)" if not project_scan.decoded else
            f" ({project_scan.decoded} new or changed since the last scan read now, {project_scan.reused} unchanged)")
        self.status.emit(f"Found {n} images in {len(scan.split.classes)} classes{reread}. Next: choose a model.")
        if project_scan is not None and project_scan.problem:
            self.show_error(f"The scan is done, but the project could not be saved: {project_scan.problem}",
                            "Check that the project folder can be written (a folder on a CD or a read-only "
                            "share cannot); the images are shown all the same.")

    def show_scan(self, scan: ScanResult, thumbs: dict[int, list[Thumbnail]]) -> None:
        """Fill the class table, thumbnails and checks from a scan result."""
        split = scan.split
        rows = class_counts(split)
        self.table.setRowCount(len(rows))
        for r, (name, *counts) in enumerate(rows):
            for c, value in enumerate([name, *counts, sum(counts)]):
                item = QTableWidgetItem(str(value))
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        total = [sum(row[i] for row in rows) for i in (1, 2, 3)]
        folders = split.layout in ("folders", "table-split")
        self.summary.setText(
            f"<b>{len(rows)} classes, {sum(total)} images</b> — {total[0]} to train on, "
            f"{total[1]} to pick the best epoch (validation), {total[2]} for the final test."
            + group_words(scan.audit.leakage))
        for box in (self.val_pct, self.test_pct, self.seed):
            box.setEnabled(not folders)
        self.split_info.setText(split_words(split.layout, scan.audit.leakage.group_count))
        self._show_thumbnails(rows, thumbs)
        self._show_checks(scan.audit)

    def _show_thumbnails(self, rows: list[tuple[str, int, int, int]], thumbs: dict[int, list[Thumbnail]]) -> None:
        while self.thumbs_layout.count() > 1:
            widget = self.thumbs_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for label, (name, *counts) in enumerate(rows):
            title = QLabel(f"<b>{name}</b> — {sum(counts)} images")
            strip = ThumbnailStrip()
            strip.set_images(thumbs.get(label, []))
            strip.setAccessibleName(f"Examples of {name}")
            self.thumbs_layout.insertWidget(self.thumbs_layout.count() - 1, title)
            self.thumbs_layout.insertWidget(self.thumbs_layout.count() - 1, strip)

    def _show_checks(self, audit: Audit) -> None:
        self.warnings.clear()
        style = self.style()
        warn_icon = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        if audit.unreadable:
            item = QListWidgetItem(warn_icon, f"{len(audit.unreadable)} file(s) could not be read and will "
                                   "be left out. Click to see which and why.")
            item.setData(Qt.ItemDataRole.UserRole, "\n".join(f"{p}: {r}" for p, r in audit.unreadable))
            self.warnings.addItem(item)
        for text in audit.warnings:
            self.warnings.addItem(QListWidgetItem(warn_icon, text))
        if self.warnings.count() == 0:
            ok_icon = style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton)
            self.warnings.addItem(QListWidgetItem(ok_icon, "No problems found: every image could be read, "
                                                  "no duplicates, classes reasonably balanced."))
        add_marks_check(self.warnings, audit)

    def _show_warning_details(self, item: QListWidgetItem) -> None:
        details = item.data(Qt.ItemDataRole.UserRole)
        if details:
            dialogs.show_error(self, "Some files could not be read.",
                               "They are left out of training. Fix or remove them and scan again "
                               "if you need them.", details)

