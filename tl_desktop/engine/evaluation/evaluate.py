"""Evaluate a model: predictions on a split or an external folder, metrics, and error analysis."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tl_desktop.engine.evaluation import calibration, metrics
from tl_desktop.engine.evaluation.intervals import metric_intervals
from tl_desktop.engine.evaluation.metrics import Metrics
from tl_desktop.engine.training.runfolder import RunFolder, model_file_of

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import DatasetSplit, Sample
    from tl_desktop.engine.models.bundle import LoadedModel
    from tl_desktop.engine.runtime.stop import StopToken

SPLITS = ("val", "test")


class EvaluationError(Exception):
    """The evaluation cannot run (no images, class names that do not match the model, ...)."""


@dataclass
class Predictions:
    """Per-image probabilities with true labels; ``failures`` lists images that could not be read.

    ``groups`` holds each image's group (patient, field; see :func:`interval_groups`) when the images
    come in groups, so that the intervals resample groups rather than images; None otherwise."""

    paths: list[str]
    labels: np.ndarray
    probs: np.ndarray
    classes: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.probs = np.asarray(self.probs, dtype=np.float64).reshape(len(self.labels), len(self.classes))
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        if self.groups is not None and len(self.groups) != len(self.paths):
            raise ValueError(f"{len(self.groups)} groups but {len(self.paths)} images")

    def __len__(self) -> int:
        return len(self.labels)

    def predicted(self) -> np.ndarray:
        """The most probable class of each image."""
        return self.probs.argmax(axis=1)


def interval_groups(paths: Sequence[str], samples: Sequence["Sample"]) -> list[str] | None:
    """The group of each of ``paths`` for the intervals, or None when no image has a group the user's data
    named (identical copies share a group of their own, which alone does not make the data grouped).

    An image without a group is a group of its own; group names are those of the run's split (a DICOM
    tag only as its salted hash)."""
    from tl_desktop.engine.data.groups import COPY_PREFIX

    group_of = {s.path: s.group for s in samples}
    found = [group_of.get(path, "") for path in paths]
    if not any(g and not g.startswith(COPY_PREFIX) for g in found):
        return None
    return [f"group:{g}" if g else f"image:{path}" for g, path in zip(found, paths)]


def compute_metrics(predictions: Predictions, positive_class: str | None = None, threshold: float | None = None,
                    n_bootstrap: int = 1000, seed: int = 0) -> Metrics:
    """All metrics for ``predictions``; for two classes, decisions use ``positive_class`` and ``threshold``.

    With ``n_bootstrap`` > 0 every metric gets a 95% interval (see :mod:`intervals` for the methods; with
    ``predictions.groups`` methods that account for groups); 0 means no intervals at all.
    """
    classes = list(predictions.classes)
    k = len(classes)
    labels, probs = predictions.labels, predictions.probs
    positive_index = _positive_index(classes, positive_class, threshold)
    if positive_index is not None and threshold is None:
        threshold = 0.5
    predicted = metrics.decide(probs, positive_index, threshold)
    cm = metrics.confusion_matrix(labels, predicted, k)
    rows = metrics.per_class_from_confusion(cm, classes)
    roc = []
    for c, row in enumerate(rows):
        positives = labels == c
        fpr, tpr, _ = metrics.roc_curve(probs[:, c], positives)
        row.auc = metrics.auc_score(probs[:, c], positives)
        roc.append(metrics.RocCurve(name=classes[c], fpr=fpr.tolist(), tpr=tpr.tolist(), auc=row.auc))
    defined_aucs = [r.auc for r in rows if r.auc is not None]
    macro, weighted = metrics.averages(rows)
    result = Metrics(
        classes=classes, num_samples=int(labels.size), confusion=cm,
        accuracy=metrics.accuracy_from_confusion(cm),
        balanced_accuracy=metrics.balanced_accuracy_from_confusion(cm),
        per_class=rows, macro=macro, weighted=weighted,
        absent_classes=[r.name for r in rows if r.support == 0],
        roc=roc, macro_auc=float(np.mean(defined_aucs)) if defined_aucs else None,
        log_loss=calibration.log_loss(probs, labels),
        ece=calibration.expected_calibration_error(probs, labels),
        reliability=calibration.reliability_bins(probs, labels),
        binary=metrics.binary_metrics(cm, classes, positive_index, threshold) if positive_index is not None else None,
        n_bootstrap=n_bootstrap if labels.size else 0, seed=seed,
    )
    if n_bootstrap > 0 and labels.size > 0:
        result.intervals, result.class_intervals = metric_intervals(
            result, labels, predicted, probs, positive_index, n_bootstrap, seed, groups=predictions.groups)
        result.groups = None if predictions.groups is None else len(set(predictions.groups))
    return result


def _positive_index(classes: list[str], positive_class: str | None, threshold: float | None) -> int | None:
    if positive_class is None and threshold is None:
        return None
    if len(classes) != 2:
        raise EvaluationError(f"a positive class and threshold need exactly two classes; this model has "
                              f"{len(classes)} ({', '.join(classes)})")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise EvaluationError(f"the threshold must be between 0 and 1, got {threshold}")
    if positive_class is None:
        return 1
    if positive_class not in classes:
        raise EvaluationError(f"positive class {positive_class!r} is not one of the model's classes: "
                              f"{', '.join(classes)}")
    return classes.index(positive_class)


@dataclass(frozen=True)
class Mistake:
    """One misclassified image; ``beyond_threshold``: at a two-class threshold, how far the positive class's
    probability lies on the wrong side of it (None without a threshold)."""

    index: int
    path: str
    true_class: str
    predicted_class: str
    confidence: float
    beyond_threshold: float | None = None


def misclassified(predictions: Predictions, true_class: str | None = None, predicted_class: str | None = None,
                  positive_class: str | None = None, threshold: float | None = None) -> list[Mistake]:
    """Wrong predictions, most confidently wrong first, optionally one confusion-matrix cell only.

    With a two-class ``positive_class`` and ``threshold`` the decisions are those at the threshold and the
    mistakes furthest on the wrong side of it come first (a false alarm at 0.95 before one at 0.35)."""
    classes = predictions.classes
    positive_index = _positive_index(classes, positive_class, threshold) if threshold is not None else None
    predicted = metrics.decide(predictions.probs, positive_index, threshold)
    # The probability of the class the decision chose (below 0.5 for a positive call under a low threshold).
    confidence = predictions.probs[np.arange(len(predictions)), predicted] if len(predictions) else np.zeros(0)
    wrong = np.flatnonzero(predicted != predictions.labels)
    beyond = None if positive_index is None else np.abs(predictions.probs[:, positive_index] - threshold)
    mistakes = [Mistake(int(i), predictions.paths[i], classes[predictions.labels[i]], classes[predicted[i]],
                        float(confidence[i]), None if beyond is None else float(beyond[i])) for i in wrong]
    if true_class is not None:
        mistakes = [m for m in mistakes if m.true_class == true_class]
    if predicted_class is not None:
        mistakes = [m for m in mistakes if m.predicted_class == predicted_class]
    if beyond is not None:
        return sorted(mistakes, key=lambda m: (-m.beyond_threshold, m.path))
    return sorted(mistakes, key=lambda m: (-m.confidence, m.path))


def cell_members(predictions: Predictions, true_class: str, predicted_class: str) -> list[int]:
    """Indices of the images in one confusion-matrix cell (correct ones too), most confident first."""
    classes = predictions.classes
    predicted = predictions.predicted()
    mask = (predictions.labels == classes.index(true_class)) & (predicted == classes.index(predicted_class))
    idx = np.flatnonzero(mask)
    return [int(i) for i in idx[np.argsort(-predictions.probs[idx].max(axis=1), kind="mergesort")]]


def most_confused(predictions: Predictions, k: int = 5) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (true class, predicted class, count) mistakes, largest first."""
    cm = metrics.confusion_matrix(predictions.labels, predictions.predicted(), len(predictions.classes))
    np.fill_diagonal(cm, 0)
    pairs = [(predictions.classes[i], predictions.classes[j], int(cm[i, j]))
             for i, j in zip(*np.nonzero(cm))]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:k]


def predict_split(loaded: "LoadedModel", samples: Sequence["Sample"],
                  progress: Callable[[int, int], None] | None = None,
                  stop: "StopToken | None" = None) -> Predictions:
    """Run the model on labelled samples (on onnxruntime where that is faster, with the same answers);
    unreadable images go to ``failures`` instead of crashing."""
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.caching.onnx_models import inference_predictor

    paths = [s.path for s in samples]
    try:
        engine = inference_predictor(loaded, len(paths))
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    result = engine.predict_paths(paths, progress=progress, stop=stop)
    label_of = {s.path: s.label for s in samples}
    return Predictions(paths=list(result.paths), labels=np.array([label_of[p] for p in result.paths], dtype=np.int64),
                       probs=np.asarray(result.probs), classes=list(loaded.classes), failures=list(result.failures),
                       groups=interval_groups(list(result.paths), samples))


def evaluate_run(run_dir: str | Path, split: str = "val", progress: Callable[[int, int], None] | None = None,
                 stop: "StopToken | None" = None, **metric_options: Any) -> tuple[Predictions, Metrics]:
    """Evaluate a run's model on its own validation or test split (as the run stored it)."""
    from tl_desktop.engine.models.bundle import load_bundle

    if split not in SPLITS:
        raise EvaluationError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = RunFolder(run_dir)
    dataset = run_split(run)
    samples = getattr(dataset, split)
    if not samples:
        raise EvaluationError(f"run {run.name} has no {'validation' if split == 'val' else 'test'} images")
    loaded = load_bundle(model_file_of(run.path))
    _check_same_classes(list(loaded.classes), list(dataset.classes), f"the split of run {run.name}")
    predictions = predict_split(loaded, samples, progress=progress, stop=stop)
    require_readable(predictions, f"{'validation' if split == 'val' else 'test'} images of run {run.name}")
    return predictions, compute_metrics(predictions, **metric_options)


def run_split(run: RunFolder) -> "DatasetSplit":
    """The split a run stored (its images, labels and groups)."""
    from tl_desktop.engine.data.dataset import DatasetSplit

    try:
        return DatasetSplit.from_dict(json.loads(run.split_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as exc:
        raise EvaluationError(f"cannot read the split of run {run.path}: {exc}") from exc


def require_readable(predictions: Predictions, where: str) -> None:
    """Refuse an evaluation that could read none of its images (moved or deleted): results of n=0 must never
    be shown as results, nor replace earlier ones."""
    if len(predictions):
        return
    count = len(predictions.failures)
    first = f" (first: {predictions.failures[0][0]}: {predictions.failures[0][1]})" if count else ""
    raise EvaluationError(f"none of the {count} {where} could be read{first}; were they moved or deleted? "
                          "Nothing was evaluated or written")


def evaluate_folder(loaded: "LoadedModel", folder: str | Path, progress: Callable[[int, int], None] | None = None,
                    stop: "StopToken | None" = None, **metric_options: Any) -> tuple[Predictions, Metrics]:
    """Evaluate on an external folder with one sub-folder per class, named like the model's classes."""
    from tl_desktop.engine.data.dataset import DataError, scan_labelled_folder

    classes = list(loaded.classes)
    try:
        _, samples, unreadable = scan_labelled_folder(folder, class_names=classes, stop=stop)
    except DataError as exc:
        raise EvaluationError(f"{exc}. Each sub-folder must be named exactly like one of the model's classes "
                              f"({', '.join(classes)}); classes without a folder are reported as having no "
                              "images.") from exc
    if not samples:
        raise EvaluationError(f"folder {folder} has no readable images in sub-folders named after the "
                              f"model's classes ({', '.join(classes)})")
    predictions = predict_split(loaded, samples, progress=progress, stop=stop)
    predictions.failures = list(unreadable) + predictions.failures
    require_readable(predictions, f"images of folder {folder}")
    return predictions, compute_metrics(predictions, **metric_options)


def _check_same_classes(model_classes: list[str], other: list[str], where: str) -> None:
    missing = [c for c in other if c not in model_classes]
    if missing:
        raise EvaluationError(
            f"{where} has classes the model does not know: {', '.join(missing)}. The model's classes are: "
            f"{', '.join(model_classes)}. Rename the sub-folders to match (names are compared exactly).")


def per_class_csv(result: Metrics) -> str:
    """The per-class table (with 95% intervals and their methods when computed) as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out)
    keys = ("precision", "recall", "specificity", "f1", "auc")
    header = ["class", "support", "predicted"]
    for key in keys:
        header += [key, f"{key}_ci_low", f"{key}_ci_high", f"{key}_ci_method"]
    writer.writerow(header + ["too_few_images_to_judge"])
    for row in result.per_class:
        line: list[Any] = [row.name, row.support, row.predicted]
        for key in keys:
            ci = result.class_intervals.get(row.name, {}).get(key)
            line += [_csv_value(getattr(row, key)), _csv_value(ci.low if ci else None),
                     _csv_value(ci.high if ci else None), ci.method if ci else ""]
        writer.writerow(line + ["yes" if row.too_few_images else "no"])
    return out.getvalue()


def _csv_value(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def predictions_csv(predictions: Predictions) -> str:
    """One row per image: path, true class, predicted class, confidence and every class probability."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "true_class", "predicted_class", "confidence", *predictions.classes])
    predicted = predictions.predicted()
    for i, path in enumerate(predictions.paths):
        writer.writerow([path, predictions.classes[predictions.labels[i]], predictions.classes[predicted[i]],
                         f"{predictions.probs[i].max():.6f}", *(f"{p:.6f}" for p in predictions.probs[i])])
    return out.getvalue()
