"""Step 6 — Predict: drop an image (top-k labels with the image) or choose a folder (a sortable table of every
image's answer, filtered to the unsure ones on request, saved as CSV where the user says)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.gui.pages.base import Page, Step
from tl_desktop.gui.session import Session
from tl_desktop.gui.widgets import dialogs
from tl_desktop.gui.widgets.common import (
    heading,
    hint,
    local_paths,
    stretch_first_column,
)
from tl_desktop.gui.widgets.predictions_table import PredictionsPanel
from tl_desktop.gui.widgets.thumbnails import pil_to_qimage
from tl_desktop.gui.worker import TaskContext

if TYPE_CHECKING:
    from tl_desktop.engine.models.predictor import PredictionResult, Predictor
    from tl_desktop.engine.workflows.prediction import PredictionRow

TOP_K = 5
PREVIEW_PX = 480
MODEL_FILTER = "Models (*.tlmodel *.onnx);;tl-desktop model (*.tlmodel);;ONNX export (*.onnx)"
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp);;All files (*)"
CSV_FILTER = "CSV table (*.csv)"
IMAGE_TAB, FOLDER_TAB = 0, 1
FOLDER_TASK = "predict-folder"


def default_csv_path(folder: Path) -> Path:
    """Next to the folder: ``<parent>/<folder name>_predictions.csv`` (the Save-as dialog frees the name)."""
    return folder.parent / f"{folder.name}_predictions.csv"


def folder_summary(folder: Path, classes: list[str], rows: list[PredictionRow], saved: Path | None = None) -> str:
    """The folder's answers in words: how many images, how many per predicted class, how many unreadable, and
    where they were saved (if they were)."""
    counts = {name: 0 for name in classes}
    for row in rows:
        if row.top_class:
            counts[row.top_class] += 1
    answered = sum(counts.values())
    per_class = ", ".join(f"{html.escape(name)} {count}" for name, count in counts.items())
    failed = len(rows) - answered
    unreadable = f"; {failed} file{'s' if failed != 1 else ''} could not be read (see Problem)" if failed else ""
    where = (f"Saved in <b>{html.escape(str(saved))}</b>." if saved is not None else
             "Not saved yet: “Save as CSV…” writes every answer.")
    return (f"<b>{html.escape(folder.name)}</b>: {answered} image{'s' if answered != 1 else ''} classified "
            f"({per_class}){unreadable}. {where} Double-click a row to see the image.")


class PredictPage(Page):
    """Loads a model file and classifies new images."""

    step = Step.PREDICT
    title = "Predict"
    step_hint = "classify new images"
    hint = "Classify new images with a trained model."

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.setAcceptDrops(True)
        self.loaded: Predictor | None = None
        self.model_label = QLabel("No model loaded.")
        self.model_label.setWordWrap(True)
        self.model_button = QPushButton("Open model file…")
        self.model_button.clicked.connect(self.choose_model)
        self.image_button = QPushButton("Choose image…")
        self.image_button.clicked.connect(self.choose_image)
        self.folder_button = QPushButton("Choose folder…")
        self.folder_button.setToolTip("Classify every image in a folder: a table of the answers, to sort, filter "
                                      "and save as a CSV file")
        self.folder_button.clicked.connect(self.choose_folder)
        self.saliency_button = QPushButton("Why? (saliency map)…")
        self.saliency_button.setToolTip("Show which parts of the image led to the answer")
        self.saliency_button.setEnabled(False)
        self.saliency_button.clicked.connect(self.show_saliency)
        self.last_image: Path | None = None
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop classifying the folder (nothing is kept)")
        self.cancel_button.clicked.connect(lambda: self.stop_tasks(FOLDER_TASK))
        self.cancel_button.hide()
        self.preview = QLabel("Drop an image or a folder here")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview.setMinimumSize(320, 320)
        self.preview.setStyleSheet("QLabel { border: 2px dashed #999; color: #666; font-size: 13pt; }")
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Class", "Probability"])
        stretch_first_column(self.table)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.folder_panel = PredictionsPanel()
        self.folder_panel.save_requested.connect(self.save_folder_csv)
        self.folder_panel.image_activated.connect(lambda path: self.predict_image(Path(path)))
        self.folder_result: tuple[Path, list[str], list[PredictionRow]] | None = None

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.model_button)
        input_row = QHBoxLayout()
        input_row.addWidget(self.image_button)
        input_row.addWidget(self.folder_button)
        input_row.addWidget(self.saliency_button)
        input_row.addWidget(self.progress, 1)
        input_row.addWidget(self.cancel_button)
        input_row.addStretch(0)
        results = QVBoxLayout()
        results.addWidget(self.answer)
        results.addWidget(self.table, 1)
        image_view = QWidget()
        body = QHBoxLayout(image_view)
        body.addWidget(self.preview, 1)
        body.addLayout(results, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(image_view, "Image")
        self.tabs.addTab(self.folder_panel, "Folder")
        layout = QVBoxLayout(self)
        layout.addWidget(heading("6. Predict"))
        layout.addWidget(hint("The model only knows the classes it was trained on; a low top "
                              "probability means it is unsure. Always check its answers."))
        layout.addLayout(model_row)
        layout.addLayout(input_row)
        layout.addWidget(self.tabs, 1)
        session.run_changed.connect(self._use_run_model)

    def _use_run_model(self) -> None:
        path = self.session.model_path()
        if path is not None:
            self.load_model(path)

    def on_shown(self) -> None:
        if self.loaded is None and not self.busy("load") and self.session.model_path() is not None:
            self.load_model(self.session.model_path())

    def choose_model(self) -> None:
        start = str(self.session.recall("folders/model", self.session.recall("folders/runs", "")))
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", start, MODEL_FILTER)
        if path:
            self.session.remember("folders/model", path)
            self.load_model(Path(path))

    def load_model(self, path: Path) -> None:
        """Open a model file (a .tlmodel or an ONNX export) in the background."""

        def load(ctx: TaskContext) -> Predictor:
            from tl_desktop.engine.workflows.prediction import open_predictor

            return open_predictor(path)

        self.model_label.setText(f"Loading {path}…")
        self.run_task(load, "load", on_success=lambda loaded: self._loaded(path, loaded),
                      error_title=f"Could not open the model file {path}.",
                      error_hint="Choose a .tlmodel file made by tl-desktop (from a run folder or an export), "
                                 "or an .onnx file exported by tl-desktop.")

    def _loaded(self, path: Path, loaded: Predictor) -> None:
        # torch came in with the model already, so the backbone registry costs nothing more here.
        from tl_desktop.engine.models.backbones import backbone_title

        self.loaded = loaded
        self.saliency_button.setEnabled(False)  # until an image is classified by this model
        classes = ", ".join(loaded.classes)
        self.model_label.setText(f"Model: <b>{path.name}</b> ({backbone_title(loaded.meta.backbone)}) — classes: {classes}")

    def open_paths(self, paths: list[str]) -> None:
        """An image file or a folder (dropped or chosen)."""
        if not paths:
            return
        target = Path(paths[0])
        if target.is_dir():
            self.predict_folder(target)
        else:
            self.predict_image(target)

    def choose_image(self) -> None:
        start = str(self.session.recall("folders/predict", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image", start, IMAGE_FILTER)
        if path:
            self.session.remember("folders/predict", str(Path(path).parent))
            self.predict_image(Path(path))

    def choose_folder(self) -> None:
        start = str(self.session.recall("folders/predict", ""))
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of images", start)
        if folder:
            self.session.remember("folders/predict", folder)
            self.predict_folder(Path(folder))

    def _need_model(self) -> bool:
        if self.loaded is None:
            self.show_error("No model is loaded.", "Train a model first, or click “Open model file…”.")
            return True
        return False

    def predict_image(self, path: Path) -> None:
        """Show ``path`` with its top-k classes."""
        if self._need_model():
            return
        loaded = self.loaded

        def predict(ctx: TaskContext) -> tuple[QImage, PredictionResult]:
            from tl_desktop.engine.data.images import load_rgb

            image = load_rgb(str(path), draft_size=(2 * PREVIEW_PX, 2 * PREVIEW_PX))
            image.thumbnail((PREVIEW_PX, PREVIEW_PX))
            return pil_to_qimage(image), loaded.predict_paths([str(path)], stop=ctx.stop)

        self.run_task(predict, "predict", on_success=lambda r: self._show_image(path, *r),
                      error_title=f"Could not classify {path.name}.",
                      error_hint="Check that the file is an image (JPEG, PNG, TIFF, BMP or WebP).")

    def _show_image(self, path: Path, qimage: QImage, result: PredictionResult) -> None:
        self.tabs.setCurrentIndex(IMAGE_TAB)
        self.preview.setPixmap(QPixmap.fromImage(qimage))
        self.preview.setToolTip(str(path))
        if result.failures:
            self.show_error(f"Could not read {path.name}: {result.failures[0][1]}", "Choose another image.")
            return
        self.last_image = path
        # Where it looked needs the network's gradients, which only the .tlmodel file (torch) gives.
        self.saliency_button.setEnabled(self.loaded.engine == "torch")
        self.saliency_button.setToolTip("Show which parts of the image led to the answer"
                                        if self.loaded.engine == "torch" else
                                        "Open the .tlmodel file to see where the model looked")
        probs, classes = result.probs[0], self.loaded.classes
        order = probs.argsort()[::-1][:TOP_K]
        self.answer.setText(f"<span style='font-size:15pt'><b>{classes[order[0]]}</b></span> "
                            f"({100 * probs[order[0]]:.1f}%) — {path.name}")
        self.status.emit(f"{path.name}: {classes[order[0]]} ({100 * probs[order[0]]:.1f}%).")
        self.table.setRowCount(len(order))
        for r, index in enumerate(order):
            self.table.setItem(r, 0, QTableWidgetItem(classes[index]))
            item = QTableWidgetItem(f"{100 * probs[index]:.1f}%")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, 1, item)

    def show_saliency(self) -> QDialog | None:
        """Open the saliency map of the last classified image."""
        from tl_desktop.gui.widgets.saliency import open_saliency_dialog

        if self.loaded is not None and self.loaded.engine == "torch" and self.last_image is not None:
            return open_saliency_dialog(self, self.loaded, str(self.last_image))
        return None

    def predict_folder(self, folder: Path) -> None:
        """Classify every image under ``folder`` in the background and show the answers in the Folder tab."""
        if self._need_model():
            return
        loaded = self.loaded

        def predict(ctx: TaskContext) -> list[PredictionRow]:
            from tl_desktop.engine.caching.onnx_models import inference_predictor
            from tl_desktop.engine.data.dataset import list_images
            from tl_desktop.engine.workflows.prediction import prediction_rows

            paths = list_images(str(folder))
            if not paths:
                raise ValueError(f"there are no images in {folder}")
            engine = inference_predictor(loaded, len(paths))
            return prediction_rows(loaded.classes, engine.predict_paths(paths, progress=ctx.progress, stop=ctx.stop))

        self.stop_tasks(FOLDER_TASK)  # a folder chosen while another is classified replaces it
        self._set_folder_busy(True)
        worker = self.run_task(predict, FOLDER_TASK,
                               on_success=lambda rows: self._show_folder(folder, loaded.classes, rows),
                               on_progress=self._on_progress, on_done=lambda: self._set_folder_busy(False),
                               error_title=f"Could not classify the images in {folder}.",
                               error_hint="Check that the folder holds images (JPEG, PNG, TIFF, BMP or WebP).")
        if worker is not None:
            worker.stopped.connect(lambda: self.status.emit(f"Stopped classifying {folder.name}."))

    def _set_folder_busy(self, busy: bool) -> None:
        busy = busy or self.busy(FOLDER_TASK)
        if busy:
            self.progress.setRange(0, 0)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("%v of %m images")

    def _show_folder(self, folder: Path, classes: list[str], rows: list[PredictionRow]) -> None:
        self.folder_result = (folder, classes, rows)
        self.folder_panel.show_rows(folder_summary(folder, classes, rows), rows)
        self.tabs.setCurrentIndex(FOLDER_TAB)
        answered = sum(1 for row in rows if row.top_class)
        self.status.emit(f"Classified {answered} images in {folder.name}; not saved yet.")

    def save_folder_csv(self) -> None:
        """Ask where to save the folder's answers (a free name proposed, replacing only when agreed), then write."""
        if self.folder_result is None or self.busy("save-csv"):
            return
        folder, classes, rows = self.folder_result
        target = dialogs.ask_save_path(self, "Save the answers as CSV", default_csv_path(folder), CSV_FILTER, ".csv")
        if target is None:
            return

        def write(_ctx: TaskContext) -> Path:
            from tl_desktop.engine.workflows.prediction import write_predictions_csv

            return write_predictions_csv(target, classes, rows)

        self.run_task(write, "save-csv", on_success=lambda path: self._saved(folder, classes, rows, path),
                      error_title=f"Could not save {target}.",
                      error_hint="Choose a folder you can write to, with enough free space.")

    def _saved(self, folder: Path, classes: list[str], rows: list[PredictionRow], path: Path) -> None:
        if self.folder_result is not None and self.folder_result[2] is rows:  # still the folder shown
            self.folder_panel.summary.setText(folder_summary(folder, classes, rows, saved=path))
        self.status.emit(f"Saved the answers in {path}.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self.open_paths(local_paths(event.mimeData()))
        event.acceptProposedAction()
