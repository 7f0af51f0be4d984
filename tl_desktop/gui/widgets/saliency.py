"""Saliency in the window: an image beside its Grad-CAM overlay, and a gallery of the confident mistakes.

The model is loaded and the heatmap computed on a worker thread; only QImages cross to the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tl_desktop.gui.tasks import Tasks
from tl_desktop.gui.widgets.common import hint
from tl_desktop.gui.widgets.thumbnails import pil_to_qimage
from tl_desktop.gui.worker import Worker

if TYPE_CHECKING:
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.models.bundle import LoadedModel

VIEW_PX = 320
METHOD_NOTE = ("Red marks the regions that pushed the model towards the class shown (Grad-CAM; HiResCAM for "
               "vision transformers). Areas outside the centre crop the model sees stay uncoloured.")


class ModelHolder:
    """Loads a run's model once, on a worker thread, and keeps it for later saliency requests."""

    def __init__(self, model_path: Path | None, loaded: LoadedModel | None = None) -> None:
        self.model_path = None if model_path is None else Path(model_path)
        self.loaded = loaded

    def get(self) -> LoadedModel:
        """The loaded model (call from a worker thread)."""
        if self.loaded is None:
            from tl_desktop.engine.models.bundle import load_bundle

            self.loaded = load_bundle(self.model_path)
        return self.loaded


def compute_overlay(holder: ModelHolder, path: str, target: int | None) -> tuple[QImage, QImage, str]:
    """(image, overlay, explained class) as QImages; runs on a worker thread."""
    from tl_desktop.engine.data.preprocess import load_for_model
    from tl_desktop.engine.evaluation.saliency import explain, overlay

    loaded = holder.get()
    image = load_for_model(path, loaded.preprocessing)
    explanation = explain(loaded, image, target)
    picture = image.copy()
    picture.thumbnail((VIEW_PX, VIEW_PX))
    blended = overlay(image, explanation.heatmap)
    blended.thumbnail((VIEW_PX, VIEW_PX))
    return pil_to_qimage(picture), pil_to_qimage(blended), explanation.target_class


class SaliencyView(QWidget):
    """The image and its saliency overlay side by side, with a caption."""

    def __init__(self, holder: ModelHolder) -> None:
        super().__init__()
        self.holder = holder
        self.tasks = Tasks(self)
        self.worker: Worker | None = None
        self.image_label, self.overlay_label = QLabel(), QLabel()
        for label in (self.image_label, self.overlay_label):
            label.setFixedSize(VIEW_PX, VIEW_PX)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("background: #f2f2f2;")
        self.caption = QLabel("Select an image.")
        self.caption.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.image_label)
        row.addWidget(self.overlay_label)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.caption)
        layout.addWidget(hint(METHOD_NOTE))

    def show_path(self, path: str, target: int | None = None, caption: str = "") -> None:
        """Compute and show the saliency of ``path`` for class index ``target`` (default: predicted)."""
        self.tasks.stop()
        self.caption.setText(f"Computing the saliency map of {Path(path).name}…")
        holder = self.holder

        def connect(worker: Worker) -> None:
            worker.succeeded.connect(lambda result: self._show(result, caption))
            worker.failed.connect(lambda message, _details: self.caption.setText(
                f"No saliency map for {Path(path).name}: {message}"))

        self.worker = self.tasks.start(lambda _ctx: compute_overlay(holder, path, target), "saliency", connect)

    def _show(self, result: tuple[QImage, QImage, str], caption: str) -> None:
        image, blended, explained = result
        self.image_label.setPixmap(QPixmap.fromImage(image))
        self.overlay_label.setPixmap(QPixmap.fromImage(blended))
        self.caption.setText(f"{caption} Map for: <b>{explained}</b>.")
        self.caption.setTextFormat(Qt.TextFormat.RichText)

    def stop(self) -> None:
        self.tasks.stop()


class MistakesDialog(QDialog):
    """The misclassified images, most confidently wrong first (optionally one matrix cell), with saliency.

    With a two-class ``decision`` (positive class, threshold) the mistakes are those at that threshold,
    furthest on the wrong side of it first."""

    def __init__(self, parent: QWidget | None, predictions: Predictions, model_path: Path,
                 true_class: str | None = None, predicted_class: str | None = None,
                 decision: tuple[str, float] | None = None) -> None:
        super().__init__(parent)
        from tl_desktop.engine.evaluation.evaluate import misclassified, most_confused

        positive, threshold = decision if decision is not None else (None, None)
        self.mistakes = misclassified(predictions, true_class, predicted_class, positive, threshold)
        self.classes = list(predictions.classes)
        self.decision = decision
        scope = f" of {true_class} taken for {predicted_class}" if true_class and predicted_class else ""
        self.setWindowTitle(f"Most confident mistakes{scope}")
        self.resize(1040, 560)
        if decision is None:
            pairs = most_confused(predictions, 3)
            summary = "; ".join(f"{t} → {p}: {n}" for t, p, n in pairs)
            order = "most confident first. " + (f"Most frequent confusions: {summary}." if pairs and not scope else "")
        else:
            order = (f"at the decision threshold you chose ({positive} when its probability is at least "
                     f"{threshold:.2f}), furthest from the threshold first.")
        intro = hint(f"{len(self.mistakes)} wrong answer(s){scope}, {order}")
        self.list = QListWidget()
        for m in self.mistakes:
            said = (f"p({positive}) {predictions.probs[m.index, self.classes.index(positive)]:.0%}"
                    if decision is not None else f"{m.confidence:.0%}")
            item = QListWidgetItem(f"{said}  {Path(m.path).name}\n     true {m.true_class} → said "
                                   f"{m.predicted_class}")
            item.setToolTip(m.path)
            self.list.addItem(item)
        self.view = SaliencyView(ModelHolder(model_path))
        self.list.currentRowChanged.connect(self.show_row)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.list)
        splitter.addWidget(self.view)
        splitter.setSizes([340, 680])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        self.finished.connect(lambda _result: self.view.stop())
        if self.mistakes:
            self.list.setCurrentRow(0)
        else:
            self.view.caption.setText("No mistakes here.")

    def show_row(self, row: int) -> None:
        """Show the saliency of mistake ``row`` for the class the model chose."""
        if 0 <= row < len(self.mistakes):
            m = self.mistakes[row]
            how = f"{m.confidence:.0%} confident" if self.decision is None else \
                f"{m.confidence:.0%} for it, decision threshold {self.decision[1]:.2f} for {self.decision[0]}"
            self.view.show_path(m.path, self.classes.index(m.predicted_class),
                                f"{Path(m.path).name}: true <b>{m.true_class}</b>, the model said "
                                f"<b>{m.predicted_class}</b> ({how}).")


def open_saliency_dialog(parent: QWidget | None, loaded: LoadedModel, path: str) -> QDialog:
    """A non-modal dialog with the saliency of ``path`` for the class ``loaded`` predicts."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(f"Why “{Path(path).name}”?")
    # A copy of its own (loaded from the same file) so the hooks never meet a prediction running meanwhile.
    model_path = getattr(loaded, "path", None)
    view = SaliencyView(ModelHolder(model_path) if model_path is not None else ModelHolder(None, loaded))
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(view)
    layout.addWidget(buttons)
    dialog.view = view
    dialog.finished.connect(lambda _result: view.stop())
    view.show_path(path, None, f"{Path(path).name}.")
    dialog.show()
    return dialog
