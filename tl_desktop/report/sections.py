"""The report as a list of sections made of simple blocks; the HTML and PDF writers render the same list."""

from __future__ import annotations

from functools import partial
from typing import Any

from tl_desktop.engine.evaluation.evaluate import most_confused
from tl_desktop.engine.evaluation.formatting import (
    HEADLINE_LABELS,
    TOO_FEW,
    fmt,
    is_percent,
    methods_note,
    with_interval,
)
from tl_desktop.engine.evaluation.glossary import explain_all
from tl_desktop.engine.evaluation.metrics import MIN_IMAGES_TO_JUDGE, Metrics
from tl_desktop.report import figures
from tl_desktop.report.blocks import (
    Bullets,
    Fig,
    FigRow,
    Gallery,
    PageBreak,
    Para,
    Preformatted,
    Section,
    Table,
)
from tl_desktop.report.data import EvaluationSection, ReportData

SIDE_BY_SIDE_MAX_CLASSES = 5


def _ci_cell(value: float | None, interval: Any, percent: bool = True) -> str:
    return with_interval(value, interval, percent, prefix="")


def headline_table(sections: list[EvaluationSection]) -> Table:
    """One row per evaluated image set with the headline metrics and their 95% intervals."""
    keys = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
    rows = []
    for s in sections:
        m = s.metrics
        cells = [_ci_cell(m.headline()[k], m.intervals.get(k), is_percent(k)) for k in keys]
        rows.append([s.title, str(m.num_samples), *cells, fmt(m.ece, percent=False)])
    note = methods_note(sections[0].metrics, per_class=False) if sections else ""
    return Table(["Images", "n", *(HEADLINE_LABELS[k] for k in keys), "ECE"], rows,
                 f"Point estimates with 95% intervals in brackets. {note} ECE: expected calibration error "
                 "(0 = probabilities match observed accuracy).")


def per_class_table(m: Metrics) -> Table:
    """Per-class precision, recall, specificity, F1 and AUC with 95% intervals."""
    rows = []
    for r in m.per_class:
        ci = m.class_intervals.get(r.name, {})
        images = f"{r.support} ({TOO_FEW})" if r.too_few_images else str(r.support)
        rows.append([r.name, images, *(_ci_cell(getattr(r, k), ci.get(k), is_percent(k))
                                       for k in ("precision", "recall", "specificity", "f1", "auc"))])
    avg = [["macro average", str(m.num_samples), *(fmt(m.macro[k]) for k in ("precision", "recall", "specificity",
                                                                              "f1")), fmt(m.macro_auc, False)],
           ["weighted average", str(m.num_samples), *(fmt(m.weighted[k]) for k in ("precision", "recall",
                                                                                   "specificity", "f1")), ""]]
    columns = ["Class", "Images", "Precision (PPV)", "Recall (sensitivity)", "Specificity", "F1", "AUC"]
    return Table(columns, rows + avg, f"{explain_all(columns).replace(chr(10), ' ')} 'undefined' = no images of "
                 f"the class (recall) or never predicted (precision). {methods_note(m)}")


def evaluation_blocks(section: EvaluationSection) -> list[Any]:
    m = section.metrics
    blocks: list[Any] = [Para(f"Evaluated on {section.description}. Unreadable images skipped: "
                              f"{len(section.predictions.failures)}.")]
    lines = [f"{HEADLINE_LABELS[k]}: {with_interval(v, m.intervals.get(k), is_percent(k), method=True)}"
             for k, v in m.headline().items()]
    blocks.append(Bullets(lines))
    if m.binary is None and len(m.classes) == 2:
        from tl_desktop.engine.evaluation.evaluate import compute_metrics

        b = compute_metrics(section.predictions, positive_class=m.classes[1], threshold=0.5,
                            n_bootstrap=m.n_bootstrap, seed=m.seed)
        blocks.append(Para(f"Taking '{m.classes[1]}' as the positive class at a threshold of 0.50: "
                           + "; ".join(f"{HEADLINE_LABELS[k]} {with_interval(getattr(b.binary, k), b.intervals.get(k))}"
                                       for k in ("sensitivity", "specificity", "ppv", "npv")) + "."))
    pairs = most_confused(section.predictions, 5)
    if pairs:
        blocks.append(Para("Most frequent mistakes: " + "; ".join(f"{t} taken for {p} ({n}×)" for t, p, n in pairs) + "."))
    if m.absent_classes:
        blocks.append(Para(f"No images of {', '.join(m.absent_classes)} in this set: their recall is undefined "
                           "and averages leave them out."))
    few = [f"{r.name} ({r.support} image{'s' if r.support > 1 else ''})" for r in m.per_class if r.too_few_images]
    if few:
        blocks.append(Para(f"{TOO_FEW[0].upper()}{TOO_FEW[1:]}: {', '.join(few)}. Their per-class "
                           f"numbers are shown, but with fewer than {MIN_IMAGES_TO_JUDGE} images a class's recall "
                           "or precision can swing widely by chance; see how wide their intervals are."))
    counts = partial(figures.confusion_matrix_figure, m.confusion, m.classes)
    shares = partial(figures.confusion_matrix_figure, m.confusion, m.classes, normalize=True)
    counts_text = "Counts: rows are the true classes, columns what the model said; the diagonal holds the correct answers."
    shares_text = "Each row divided by its total, so the diagonal is each class's recall."
    if len(m.classes) <= SIDE_BY_SIDE_MAX_CLASSES:
        blocks.append(FigRow([counts, shares], f"Left: {counts_text[0].lower()}{counts_text[1:]} Right: "
                             f"{shares_text[0].lower()}{shares_text[1:]}"))
    else:
        blocks += [Fig(counts, counts_text, 0.8), Fig(shares, shares_text, 0.8)]
    blocks += [PageBreak(), per_class_table(m),
               FigRow([partial(figures.roc_figure, m.roc), partial(figures.reliability_figure, m.reliability, m.ece)],
                      "Left: ROC curves; each shows, for one class against all others, the sensitivity reached at "
                      "each false-positive rate (AUC 1.0 is perfect, 0.5 is guessing). Right: calibration; bars on "
                      "the diagonal mean the model's confidence can be taken at face value, bars below it mean it "
                      "is over-confident, and the grey histogram shows how many images had each confidence.")]
    return blocks


def build_sections(data: ReportData) -> list[Section]:
    """The report's sections in order."""
    from tl_desktop.report.provenance import (
        dataset_blocks,
        model_blocks,
        training_blocks,
    )

    sections = [Section("summary", "Summary", "what was trained and how well it does",
                        _summary_blocks(data)),
                Section("dataset", "Dataset", "classes, image counts per split and data-quality findings",
                        dataset_blocks(data)),
                Section("model", "Model and settings", "backbone, frozen blocks, training settings, versions",
                        model_blocks(data)),
                Section("training", "Training", "loss and accuracy per epoch", training_blocks(data))]
    for e in data.evaluations:
        sections.append(Section(f"eval-{e.key}", f"Results: {e.title}", "metrics with 95% intervals, "
                                "confusion matrices, per-class table, ROC curves and calibration",
                                evaluation_blocks(e)))
    sections.append(Section("mistakes", "Most confident mistakes", "wrong answers given with the highest "
                            "confidence, with saliency maps", _mistake_blocks(data)))
    sections.append(Section("external", "External validation", "internal against external results",
                            _external_blocks(data)))
    sections.append(Section("card", "Intended use and limitations", "the model card",
                            [Preformatted(data.model_card)]))
    return sections


def _summary_blocks(data: ReportData) -> list[Any]:
    status = data.ended.status if data.ended else "unknown"
    blocks: list[Any] = [Para(
        f"This model is the {data.backbone_title} network fine-tuned to tell apart {len(data.classes)} classes "
        f"({', '.join(data.classes)}). Training status: {status}. Report generated {data.generated} from run "
        f"folder {data.run_dir}.")]
    if data.evaluations:
        blocks.append(headline_table(data.evaluations))
    else:
        blocks.append(Para("No validation, test or external images were available, so nothing could be measured."))
    if data.notes:
        blocks.append(Bullets(data.notes))
    return blocks


def _mistake_blocks(data: ReportData) -> list[Any]:
    if not data.mistakes:
        return [Para("The model made no mistakes on the evaluated images." if data.evaluations else
                     "No evaluation was possible, so there are no mistakes to show.")]
    return [Para(f"The {len(data.mistakes)} images the model got wrong with the highest confidence, across "
                 f"{data.mistakes_source}, most confident first. Left: the image; right: the saliency map "
                 "(Grad-CAM; HiResCAM for transformers) for the class the model chose — red marks the regions "
                 "that pushed it towards that answer. Areas outside the centre crop the model sees stay "
                 "uncoloured."), Gallery(data.mistakes)]


def _external_blocks(data: ReportData) -> list[Any]:
    external = data.external()
    if not external:
        return [Para("No external evaluation has been run. Models often lose accuracy on images from another "
                     "site, device or season: evaluate on such a folder (one sub-folder per class) in the "
                     "window's Results page or with `tl-desktop evaluate --model RUN --data FOLDER`, then "
                     "create this report again.")]
    return [Para("The same metrics on the run's own held-out images and on external folders, side by side. "
                 "A large drop means the model may not transfer to new settings."),
            headline_table(data.internal() + external)]
