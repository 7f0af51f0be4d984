"""The intended-use and limitations section (a model card): a starting text the user edits before export.

The draft states facts the program knows (classes, data, evaluation, weaknesses it can detect) and
leaves clearly marked places for what only the user knows. The window shows it in a text box; the
CLI reads it from ``--card FILE`` or ``<run>/model_card.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from tl_desktop.engine.evaluation.formatting import fmt_bounds
from tl_desktop.engine.evaluation.metrics import MIN_IMAGES_TO_JUDGE
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.report.data import ReportData

FILL_IN = "[to be completed by the person responsible for this model]"
PLACEHOLDER = re.compile(r"\[to be completed[^\]]*\]", re.IGNORECASE)  # FILL_IN, or one the user shortened
WIDE_INTERVAL = 0.15


def default_model_card(data: ReportData) -> str:
    """A draft model card for ``data``; every statement is either a fact of the run or marked FILL_IN."""
    classes = ", ".join(data.classes)
    lines = [
        "Intended use",
        f"This model sorts an image into one of {len(data.classes)} classes: {classes}. "
        f"Intended users and setting: {FILL_IN}.",
        "It is meant to support a trained person's judgement, not to replace it.",
        "",
        "Not intended for",
        f"Images that belong to none of these classes: the model always answers with one of them, however "
        f"different the image is. Other uses: {FILL_IN}.",
        "",
        "Training data",
        f"Images from {data.config.data.labels or data.config.data.root or 'an unknown folder'}. "
        f"Where and how they were collected (sites, devices, period, who labelled them): {FILL_IN}.",
        "",
        "Limitations found by this program",
    ]
    lines += [f"- {text}" for text in detected_limitations(data)] or ["- none detected automatically"]
    lines += ["", "Other known limitations", f"- {FILL_IN}"]
    return "\n".join(lines)


def detected_limitations(data: ReportData) -> list[str]:
    """Weaknesses visible in the run's own numbers."""
    found = []
    if data.audit is not None and data.audit.imbalanced:
        found.append(f"The classes are imbalanced (largest/smallest = {data.audit.imbalance_ratio:.1f}); "
                     "rare classes are learned from few examples.")
    if data.audit is not None and data.audit.cross_split_duplicates:
        found.append(f"{len(data.audit.cross_split_duplicates)} groups of identical images occur in more than one "
                     "split, which makes the evaluation look better than it is.")
    for section in data.evaluations:
        m = section.metrics
        ci = m.intervals.get("accuracy")
        if ci is not None and ci.estimable and ci.high - ci.low > WIDE_INTERVAL:
            found.append(f"{section.title}: only {m.num_samples} images, so accuracy is uncertain "
                         f"(95% interval {fmt_bounds(ci)}).")
        few = [r.name for r in m.per_class if r.too_few_images]
        if few:
            found.append(f"{section.title}: too few images to judge {', '.join(few)} (fewer than "
                         f"{MIN_IMAGES_TO_JUDGE} each).")
        weak = [r.name for r in m.per_class if r.recall is not None and r.recall < 0.5]
        if weak:
            found.append(f"{section.title}: fewer than half of the images of {', '.join(weak)} are recognised.")
    if not data.external():
        found.append("The model has not been evaluated on images from another site, device or period; "
                     "its accuracy there is unknown.")
    internal = [e for e in data.internal() if e.metrics.accuracy is not None]
    for section in data.external():
        if internal and section.metrics.accuracy is not None and \
                section.metrics.accuracy < internal[0].metrics.accuracy - 0.05:
            found.append(f"Accuracy drops from {internal[0].metrics.accuracy:.0%} ({internal[0].title.lower()}) to "
                         f"{section.metrics.accuracy:.0%} on {section.title.removeprefix('External: ')}.")
    if data.meta.temperature == 1.0:
        found.append("Probabilities are not calibrated by temperature scaling; read them as scores, "
                     "check the calibration diagram.")
    return found


def unfinished_parts(card: str) -> list[str]:
    """The headings of the card's parts that still hold a "[to be completed …]" placeholder, in order.

    A heading is a line that starts a paragraph (first line, or after a blank line) and is not a list item;
    a placeholder before any heading is reported as "the first part".
    """
    parts: list[str] = []
    heading, previous_blank = "the first part", True
    for line in card.splitlines():
        text = line.strip()
        if previous_blank and text and not text.startswith(("-", "*")):
            heading = text if not PLACEHOLDER.search(text) else heading
        if PLACEHOLDER.search(text) and heading not in parts:
            parts.append(heading)
        previous_blank = not text
    return parts


def read_saved_card(run_dir: str | Path) -> str | None:
    """The card text saved in a run folder by an earlier export, if any."""
    path = RunFolder(Path(run_dir)).card_file
    return path.read_text(encoding="utf-8") if path.is_file() else None
