"""Step 5 — Export: the model file, the confusion matrix as PNG and the metrics as CSV/JSON, and the model as
a standard ONNX file checked against the app (the engine's ONNX export workflow, as ``tl-desktop export
--format onnx`` runs it)."""

from __future__ import annotations

import html
import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from tl_desktop.engine.deploy import ONNX_SUFFIX
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import PathPicker, heading, hint
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.engine.workflows.onnx_export import OnnxExport

REPORT_MODULE = "tl_desktop.gui.report_action"
ONNX_FILTER = "ONNX model (*.onnx)"
ONNX_TASK = "onnx"


def export_targets(run_dir: Path, folder: Path, what: dict[str, bool]) -> dict[str, Path]:
    """The file each chosen item is saved to in ``folder``, by item."""
    run = RunFolder(run_dir)
    names = {"model": f"{run.name}{run.model_file.suffix}", "matrix": "confusion_matrix.png",
             "matrix_normalised": "confusion_matrix_normalised.png", "per_class": "metrics_per_class.csv",
             "predictions": "predictions.csv", "json": "metrics.json"}
    chosen = {"model": what.get("model"), "matrix": what.get("matrix"), "matrix_normalised": what.get("matrix"),
              "per_class": what.get("csv"), "predictions": what.get("csv"), "json": what.get("json")}
    return {item: folder / name for item, name in names.items() if chosen[item]}


def export_files(run_dir: Path, targets: dict[str, Path], evaluation: tuple[Predictions, Metrics] | None,
                 split: str, ctx: TaskContext) -> list[Path]:
    """Write each item of ``targets`` to its path (worker thread; the user agreed to replace what exists);
    returns the paths written."""
    from tl_desktop.fileio import atomic_write_bytes, atomic_write_text, atomic_writer

    if "model" in targets:
        with RunFolder(run_dir).model_file.open("rb") as source, atomic_writer(targets["model"]) as handle:
            shutil.copyfileobj(source, handle)
    if not targets.keys() - {"model"}:
        return list(targets.values())
    if evaluation is None:
        from tl_desktop.engine.evaluation.evaluate import evaluate_run

        evaluation = evaluate_run(run_dir, split, progress=ctx.progress, stop=ctx.stop)
    predictions, metrics = evaluation
    for item, normalize in (("matrix", False), ("matrix_normalised", True)):
        if item in targets:
            from tl_desktop.report.figures import confusion_matrix_figure

            figure = confusion_matrix_figure(metrics.confusion, metrics.classes, normalize=normalize)
            with atomic_writer(targets[item]) as handle:
                figure.savefig(handle, format="png", dpi=150)
    if "per_class" in targets:
        from tl_desktop.engine.evaluation.evaluate import per_class_csv, predictions_csv

        atomic_write_text(targets["per_class"], per_class_csv(metrics))
        atomic_write_text(targets["predictions"], predictions_csv(predictions))
    if "json" in targets:
        payload = {"run": run_dir.name, "split": split, "metrics": metrics.to_dict()}
        atomic_write_bytes(targets["json"], json.dumps(payload, indent=2).encode("utf-8"))
    return list(targets.values())


@dataclass(frozen=True)
class OnnxRefusal:
    """Why the ONNX export was not made (nothing was written): the user's answer, not a program failure."""

    reason: str


def onnx_files(target: Path) -> list[Path]:
    """The files an ONNX export to ``target`` writes: the model and its parity figures."""
    from tl_desktop.engine.workflows.onnx_export import parity_path_of

    return [target, parity_path_of(target)]


def export_onnx_file(model_file: Path, target: Path, ctx: TaskContext) -> OnnxExport | OnnxRefusal:
    """Export and check the model on the worker thread (the user agreed to replace what exists); an export
    the workflow refuses comes back as an :class:`OnnxRefusal`."""
    from tl_desktop.engine.deploy.export import OnnxExportError
    from tl_desktop.engine.workflows.onnx_export import OnnxExportRefused, export_onnx

    try:
        return export_onnx(model_file, target, force=True, stop=ctx.stop)
    except (OnnxExportRefused, OnnxExportError) as exc:
        return OnnxRefusal(str(exc))


def onnx_result_text(done: OnnxExport) -> str:
    """The export in words: which file, how it compared with the app, where the figures are."""
    name, folder, figures = (html.escape(str(p)) for p in (done.path.name, done.path.parent, done.parity_path.name))
    return (f"Exported <b>{name}</b> ({done.path.stat().st_size / 1e6:.1f} MB) in {folder} in {done.seconds:.0f} s."
            f"<br>Checked against the app: {html.escape(done.parity.summary())}.<br>"
            f"The figures are in {figures}, beside it.")


class ExportPage(Page):
    """Copies the trained model and its evaluation to a folder of the user's choice."""

    step = Step.EXPORT
    title = "Export"
    step_hint = "save model & results"
    hint = "Save the model and its results to a folder."

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)
        self.folder = PathPicker("Export folder", button_text="Choose folder…",
                                 placeholder="Where to put the exported files")
        self.folder.set_path(str(session.recall("folders/export", "")))
        self.split_box = QComboBox()
        self.split_box.addItem("Validation images", "val")
        self.split_box.addItem("Test images", "test")
        self.model_check = QCheckBox("Model file (.tlmodel) — open it on the Predict page or with "
                                     "“tl-desktop predict”")
        self.matrix_check = QCheckBox("Confusion matrix pictures (PNG, counts and normalised)")
        self.csv_check = QCheckBox("Metrics per class and every prediction (CSV, opens in a spreadsheet)")
        self.json_check = QCheckBox("All metrics (JSON, for other programs)")
        for box in (self.model_check, self.matrix_check, self.csv_check, self.json_check):
            box.setChecked(True)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.report_button = QPushButton("Create report…")
        self.report_button.setToolTip("A printable report of the data, the model and its results")
        self.report_button.clicked.connect(self.create_report)
        self.report_button.setVisible(importlib.util.find_spec(REPORT_MODULE) is not None)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.onnx_button = QPushButton("Save as ONNX…")
        self.onnx_button.setToolTip("A standard ONNX file of the model, checked against the app before it is saved")
        self.onnx_button.clicked.connect(self.export_onnx)
        self.onnx_progress = QProgressBar()
        self.onnx_progress.setRange(0, 0)
        self.onnx_progress.setFormat("Exporting and checking…")
        self.onnx_progress.hide()
        self.onnx_cancel = QPushButton("Cancel")
        self.onnx_cancel.clicked.connect(lambda: self.stop_tasks(ONNX_TASK))
        self.onnx_cancel.hide()
        self.onnx_result = QLabel()
        self.onnx_result.setWordWrap(True)
        self.onnx_result.setTextFormat(Qt.TextFormat.RichText)
        self.onnx_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Metrics computed on:"))
        split_row.addWidget(self.split_box)
        split_row.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.report_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("5. Export"))
        layout.addWidget(self.run_label)
        layout.addWidget(hint("The model file contains everything needed to classify new images, "
                              "including the exact image preprocessing used in training."))
        layout.addWidget(self.folder)
        layout.addLayout(split_row)
        for box in (self.model_check, self.matrix_check, self.csv_check, self.json_check):
            layout.addWidget(box)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        onnx_row = QHBoxLayout()
        for widget in (self.onnx_button, self.onnx_progress, self.onnx_cancel):
            onnx_row.addWidget(widget)
        onnx_row.addStretch(1)
        layout.addSpacing(12)
        layout.addWidget(heading("For other programs: ONNX"))
        layout.addWidget(hint("An ONNX file runs the model without this app (for example with onnxruntime). "
                              "Before it is saved it is checked on up to 64 validation images: it must give "
                              "the app's class for every image and the same probabilities (to within 0.0001), "
                              "or it is not saved."))
        layout.addLayout(onnx_row)
        layout.addWidget(self.onnx_result)
        layout.addStretch(1)
        session.run_changed.connect(self.on_shown)
        session.training_state_changed.connect(lambda _running: self.on_shown())
        self.on_shown()

    def on_shown(self) -> None:
        run_dir = self.session.run_dir
        ready = run_dir is not None and self.session.model_path() is not None and not self.session.training
        self.run_label.setText(f"Run: <b>{run_dir}</b>" if run_dir else
                               "Nothing to export yet: train a model or open a previous run on the Results page.")
        self.export_button.setEnabled(ready)
        self.report_button.setEnabled(ready)
        self.onnx_button.setEnabled(ready and not self.busy(ONNX_TASK))
        shown = self.split_box.findData(self.session.shown_split)  # follow what the Results page shows
        if shown >= 0:
            self.split_box.setCurrentIndex(shown)

    def choices(self) -> dict[str, bool]:
        return {"model": self.model_check.isChecked(), "matrix": self.matrix_check.isChecked(),
                "csv": self.csv_check.isChecked(), "json": self.json_check.isChecked()}

    def export(self) -> None:
        """Write the chosen files to the chosen folder in the background."""
        run_dir = self.session.run_dir
        folder_text = self.folder.path()
        if run_dir is None:
            return
        if not folder_text:
            self.folder.browse()
            folder_text = self.folder.path()
            if not folder_text:
                return
        folder = Path(folder_text)
        self.session.remember("folders/export", folder_text)
        split = str(self.split_box.currentData())
        evaluation = self.session.evaluations.get(split)
        planned = export_targets(run_dir, folder, self.choices())
        if not planned:
            self.result.setText("Nothing to export: tick at least one of the files above.")
            return
        paths = dialogs.choose_targets(self, list(planned.values()))  # asks before replacing anything
        if paths is None:
            self.result.setText("Nothing was exported.")
            return
        targets = dict(zip(planned, paths))
        self.export_button.setEnabled(False)
        self.result.setText("Exporting…")
        self.run_task(lambda ctx: export_files(run_dir, targets, evaluation, split, ctx), "export",
                      on_success=self._exported, on_done=self.on_shown,
                      error_title=f"Could not export to {folder}.",
                      error_hint="Choose a folder you can write to, with enough free space.")

    def _exported(self, written: list[Path]) -> None:
        names = "".join(f"<li>{html.escape(p.name)}</li>" for p in written)
        where = html.escape(str(written[0].parent)) if written else ""
        self.result.setText(f"Saved {len(written)} file(s) in {where}:<ul>{names}</ul>")
        self.status.emit(f"Exported {len(written)} file(s).")

    def create_report(self) -> None:
        """Hand over to the report module (which owns the report dialog)."""
        if self.session.run_dir is not None:
            importlib.import_module(REPORT_MODULE).create_report(self, self.session.run_dir)

    def export_onnx(self) -> None:
        """Ask where to save the ONNX file, confirm replacing files, then export and check it in the background."""
        model_file, run_dir = self.session.model_path(), self.session.run_dir
        if model_file is None or run_dir is None or self.busy(ONNX_TASK):
            return
        folder = Path(self.folder.path() or run_dir)
        target = dialogs.ask_save_path(self, "Save the model as ONNX", folder / f"{RunFolder(run_dir).name}"
                                       f"{ONNX_SUFFIX}", ONNX_FILTER, ONNX_SUFFIX,
                                       companions=lambda path: onnx_files(path)[1:])
        if target is None:
            return
        self._set_onnx_busy(True)
        self.onnx_result.setText(f"Exporting {html.escape(target.name)} and checking it against the app…")
        self.status.emit(f"Exporting {target.name}…")
        worker = self.run_task(lambda ctx: export_onnx_file(model_file, target, ctx), ONNX_TASK,
                               on_success=self._onnx_done, on_done=lambda: self._set_onnx_busy(False),
                               error_title=f"Could not export the model to {target}.",
                               error_hint="Choose a folder you can write to, with enough free space.")
        if worker is not None:
            worker.stopped.connect(lambda: self.onnx_result.setText("Stopped; no ONNX file was written."))
            worker.failed.connect(lambda message, _details: self.onnx_result.setText(
                f"No ONNX file was written: {html.escape(message)}"))

    def _set_onnx_busy(self, busy: bool) -> None:
        self.onnx_progress.setVisible(busy)
        self.onnx_cancel.setVisible(busy)
        if busy:
            self.onnx_button.setEnabled(False)
        else:
            self.on_shown()

    def _onnx_done(self, done: OnnxExport | OnnxRefusal) -> None:
        if isinstance(done, OnnxRefusal):
            self.onnx_result.setText("No ONNX file was written.")
            self.show_error(f"The model was not exported to ONNX.\n\n{done.reason}",
                            "The model file (.tlmodel) is not affected: it still works on the Predict page "
                            "and with “tl-desktop predict”.")
            return
        self.onnx_result.setText(onnx_result_text(done))
        self.status.emit(f"Exported {done.path.name}.")
