"""Saliency in the window: an image beside its Grad-CAM overlay, a gallery of the confident mistakes, and one
evaluated image enlarged (true and predicted class, confidence, the Mark buttons of :mod:`gui.marks`).

The model is loaded and the heatmap computed on a worker thread; only QImages cross to the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
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
    from tl_desktop.gui.marks import Marker
    from tl_desktop.gui.session import Session

VIEW_PX = 320
ENLARGED_PX = 440
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


def compute_overlay(holder: ModelHolder, path: str, target: int | None,
                    size: int = VIEW_PX) -> tuple[QImage, QImage, str]:
    """(image, overlay, explained class) as QImages at most ``size`` pixels a side; runs on a worker thread."""
    from tl_desktop.engine.data.preprocess import load_for_model
    from tl_desktop.engine.evaluation.saliency import explain, overlay

    loaded = holder.get()
    image = load_for_model(path, loaded.preprocessing)
    explanation = explain(loaded, image, target)
    from PIL import ImageOps

    # contain() enlarges as well as shrinks: the enlarged view shows the model's input at the full view size
    picture = ImageOps.contain(image, (size, size))
    blended = ImageOps.contain(overlay(image, explanation.heatmap), (size, size))
    return pil_to_qimage(picture), pil_to_qimage(blended), explanation.target_class


class SaliencyView(QWidget):
    """The image and its saliency overlay side by side, with a caption."""

    def __init__(self, holder: ModelHolder, size: int = VIEW_PX) -> None:
        super().__init__()
        self.holder = holder
        self.size_px = size
        self.tasks = Tasks(self)
        self.worker: Worker | None = None
        self.image_label, self.overlay_label = QLabel(), QLabel()
        for label in (self.image_label, self.overlay_label):
            label.setFixedSize(size, size)
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
        holder, size = self.holder, self.size_px

        def connect(worker: Worker) -> None:
            worker.succeeded.connect(lambda result: self._show(result, caption))
            worker.failed.connect(lambda message, _details: self.caption.setText(
                f"No saliency map for {Path(path).name}: {message}"))

        self.worker = self.tasks.start(lambda _ctx: compute_overlay(holder, path, target, size), "saliency",
                                       connect)

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
    furthest on the wrong side of it first. With ``session`` each mistake can be marked (mislabelled or
    excluded) in the open project; a double-click enlarges it."""

    def __init__(self, parent: QWidget | None, predictions: Predictions, model_path: Path,
                 true_class: str | None = None, predicted_class: str | None = None,
                 decision: tuple[str, float] | None = None, session: Session | None = None) -> None:
        super().__init__(parent)
        from tl_desktop.engine.evaluation.evaluate import misclassified, most_confused
        from tl_desktop.gui.marks import MarkBar, Marker

        positive, threshold = decision if decision is not None else (None, None)
        self.mistakes = misclassified(predictions, true_class, predicted_class, positive, threshold)
        self.classes = list(predictions.classes)
        self.decision = decision
        self.predictions, self.model_path = predictions, model_path
        self.marker = Marker(session) if session is not None else None
        self.enlarged: list[QDialog] = []
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
        self.list.itemDoubleClicked.connect(lambda item: self.enlarge(self.list.row(item)))
        self.mark_bar = MarkBar(self.marker, self.classes) if self.marker is not None else None
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.list)
        splitter.addWidget(self.view)
        splitter.setSizes([340, 680])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(splitter, 1)
        if self.mark_bar is not None:
            layout.addWidget(self.mark_bar)
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
                                f"<b>{m.predicted_class}</b> ({how}). Double-click it in the list to enlarge.")
            if self.mark_bar is not None:
                self.mark_bar.set_image(m.path, m.true_class)

    def enlarge(self, row: int) -> QDialog | None:
        """Mistake ``row`` enlarged with its saliency map and the Mark buttons."""
        if not 0 <= row < len(self.mistakes):
            return None
        m = self.mistakes[row]
        dialog = EnlargeDialog(self, self.predictions, m.index, self.model_path, self.marker,
                               said=self.classes.index(m.predicted_class))
        self.enlarged.append(dialog)
        dialog.finished.connect(lambda _r: self.enlarged.remove(dialog) if dialog in self.enlarged else None)
        dialog.show()
        return dialog


class EnlargeDialog(QDialog):
    """Image ``index`` of ``predictions`` enlarged with its saliency map and the Mark buttons; ``said`` is the
    class index the model's decision chose (default: the most probable; another under a two-class threshold)."""

    def __init__(self, parent: QWidget | None, predictions: Predictions, index: int, model_path: Path,
                 marker: Marker | None, said: int | None = None) -> None:
        super().__init__(parent)
        classes = list(predictions.classes)
        self.path = str(predictions.paths[index])
        true_class = classes[int(predictions.labels[index])]
        predicted = int(predictions.probs[index].argmax()) if said is None else said
        confidence = float(predictions.probs[index, predicted])
        self.setWindowTitle(Path(self.path).name)
        verdict = "right" if classes[predicted] == true_class else "wrong"
        self.facts = QLabel(f"<span style='font-size:13pt'>True class <b>{true_class}</b> · the model said "
                            f"<b>{classes[predicted]}</b> ({confidence:.0%} confident, {verdict})</span>")
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.file_label = QLabel(self.path)
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label.setStyleSheet("color: #555;")
        self.target = QComboBox()
        for position, name in enumerate(classes):
            self.target.addItem(f"{name} (the model said)" if position == predicted else
                                f"{name} (true class)" if name == true_class else name, position)
        self.target.setCurrentIndex(predicted)
        self.target.setToolTip("Which class the map explains: what made the model answer it")
        self.view = SaliencyView(ModelHolder(model_path), ENLARGED_PX)
        self.target.currentIndexChanged.connect(lambda _i: self._explain())
        target_row = QHBoxLayout()
        target_row.addWidget(QLabel("Map for the class:"))
        target_row.addWidget(self.target)
        target_row.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.facts)
        layout.addWidget(self.file_label)
        layout.addLayout(target_row)
        layout.addWidget(self.view, 1)
        from tl_desktop.gui.marks import MarkBar

        self.mark_bar: MarkBar | None = None
        if marker is not None:
            self.mark_bar = MarkBar(marker, classes)
            self.mark_bar.set_image(self.path, true_class)
            layout.addWidget(self.mark_bar)
        layout.addWidget(buttons)
        self.finished.connect(lambda _result: self.view.stop())
        self._explain()

    def _explain(self) -> None:
        target = int(self.target.currentData())
        self.view.show_path(self.path, target, f"{Path(self.path).name}.")


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
