"""Step 5 — Export: the model file, the confusion matrix as PNG and the metrics as CSV/JSON."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets.common import PathPicker, heading, hint
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics

REPORT_MODULE = "tl_desktop.gui.report_action"


def export_files(run_dir: Path, folder: Path, evaluation: tuple[Predictions, Metrics] | None, split: str,
                 what: dict[str, bool], ctx: TaskContext) -> list[Path]:
    """Write the chosen files into ``folder`` (worker thread); returns the paths written."""
    from tl_desktop.fileio import atomic_write_bytes, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if what.get("model"):
        run = RunFolder(run_dir)
        target = folder / f"{run.name}{run.model_file.suffix}"
        shutil.copyfile(run.model_file, target)
        written.append(target)
    if not any(what.get(k) for k in ("matrix", "csv", "json")):
        return written
    if evaluation is None:
        from tl_desktop.engine.evaluation.evaluate import evaluate_run

        evaluation = evaluate_run(run_dir, split, progress=ctx.progress, stop=ctx.stop)
    predictions, metrics = evaluation
    if what.get("matrix"):
        from tl_desktop.report.figures import confusion_matrix_figure

        for normalize, name in ((False, "confusion_matrix.png"), (True, "confusion_matrix_normalised.png")):
            figure = confusion_matrix_figure(metrics.confusion, metrics.classes, normalize=normalize)
            figure.savefig(folder / name, dpi=150)
            written.append(folder / name)
    if what.get("csv"):
        from tl_desktop.engine.evaluation.evaluate import per_class_csv, predictions_csv

        atomic_write_text(folder / "metrics_per_class.csv", per_class_csv(metrics))
        atomic_write_text(folder / "predictions.csv", predictions_csv(predictions))
        written += [folder / "metrics_per_class.csv", folder / "predictions.csv"]
    if what.get("json"):
        payload = {"run": run_dir.name, "split": split, "metrics": metrics.to_dict()}
        atomic_write_bytes(folder / "metrics.json", json.dumps(payload, indent=2).encode("utf-8"))
        written.append(folder / "metrics.json")
    return written


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
        what = self.choices()
        self.export_button.setEnabled(False)
        self.result.setText("Exporting…")
        self.run_task(lambda ctx: export_files(run_dir, folder, evaluation, split, what, ctx), "export",
                      on_success=self._exported, on_done=self.on_shown,
                      error_title=f"Could not export to {folder}.",
                      error_hint="Choose a folder you can write to, with enough free space.")

    def _exported(self, written: list[Path]) -> None:
        names = "".join(f"<li>{p.name}</li>" for p in written)
        self.result.setText(f"Saved {len(written)} file(s) in {written[0].parent if written else ''}:<ul>{names}</ul>")
        self.status.emit(f"Exported {len(written)} file(s).")

    def create_report(self) -> None:
        """Hand over to the report module (which owns the report dialog)."""
        if self.session.run_dir is not None:
            importlib.import_module(REPORT_MODULE).create_report(self, self.session.run_dir)
