"""Open any model a user can name for prediction (a ``.tlmodel`` file, a run folder, or an ONNX export), and
the one definition of a folder prediction's rows and CSV file. The command line's ``predict`` and the
window's Predict page both open models and write their answers here."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tl_desktop.engine.deploy import ONNX_SUFFIX
from tl_desktop.engine.deploy.onnx_file import OnnxFileError
from tl_desktop.engine.deploy.runner import load_onnx_model
from tl_desktop.engine.models.bundle import BundleError, load_bundle
from tl_desktop.engine.models.predictor import PredictionResult, Predictor
from tl_desktop.engine.training.runfolder import model_file_of

# Every way a named model can be unusable; each message names the file and says why.
MODEL_ERRORS: tuple[type[Exception], ...] = (BundleError, OnnxFileError)


def open_predictor(model: str | Path, device: str | torch.device = "cpu",
                   note: Callable[[str], None] | None = None) -> Predictor:
    """The model behind ``model`` (a model file, a run folder or a ``.onnx`` export), ready to predict."""
    path = Path(model).expanduser()
    if path.suffix.lower() == ONNX_SUFFIX and not path.is_dir():
        return load_onnx_model(path, torch.device(device).type)
    return load_bundle(model_file_of(path, note=note), device=device)


@dataclass(frozen=True)
class PredictionRow:
    """One image's answer: the two most probable classes and every class probability, or why it was unreadable."""

    path: str
    probabilities: tuple[float, ...] = ()  # one per class, in the model's class order; empty when unreadable
    top_class: str = ""
    probability: float | None = None
    second_class: str = ""
    second_probability: float | None = None
    error: str = ""

    def csv_cells(self, n_classes: int) -> list[str]:
        """The row as the CSV file has it (see :func:`csv_header`); an unreadable file has empty class cells."""
        def number(value: float | None) -> str:
            return "" if value is None else f"{value:.6f}"

        cells = [number(p) for p in self.probabilities] if self.probabilities else [""] * n_classes
        return [self.path, self.top_class, number(self.probability), *cells, self.error]


def csv_header(classes: list[str]) -> list[str]:
    """The CSV columns: path, top label, its probability, one column per class, and the error of an unreadable
    file (the second class is the second largest of the class columns)."""
    return ["path", "label", "probability", *classes, "error"]


def prediction_rows(classes: list[str], result: PredictionResult) -> list[PredictionRow]:
    """One row per readable image (in ``result``'s order), then one per unreadable file with its reason."""
    rows = []
    for path, probs in zip(result.paths, result.probs):
        order = sorted(range(len(classes)), key=lambda i: -probs[i])  # a tie goes to the first class
        second = order[1] if len(order) > 1 else None
        rows.append(PredictionRow(
            path=path, probabilities=tuple(float(p) for p in probs), top_class=classes[order[0]],
            probability=float(probs[order[0]]), second_class=classes[second] if second is not None else "",
            second_probability=float(probs[second]) if second is not None else None))
    rows += [PredictionRow(path=path, error=reason) for path, reason in result.failures]
    return rows


def predictions_csv_text(classes: list[str], rows: list[PredictionRow]) -> str:
    """The CSV file's text for ``rows``; unreadable files get empty class cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_header(classes))
    writer.writerows(row.csv_cells(len(classes)) for row in rows)
    return buffer.getvalue()


def write_predictions_csv(path: str | Path, classes: list[str], rows: list[PredictionRow]) -> Path:
    """Write the CSV atomically (the caller made sure replacing ``path``, if it exists, is wanted)."""
    from tl_desktop.fileio import atomic_write_text

    atomic_write_text(Path(path), predictions_csv_text(classes, rows))
    return Path(path)
