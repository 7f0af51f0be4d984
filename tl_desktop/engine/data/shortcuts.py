"""The shortcut audit: file properties that give a class away, so a model could learn them instead of the content.

From the facts the scan reads anyway (file format, colour mode and bit depth, size, JPEG quality,
compression, EXIF camera model, DICOM manufacturer/model/modality), two checks:

- a property value that nearly separates one class from the rest: at least ``NEAR_ALL`` of the class's
  images have it and at most ``NEAR_NONE`` of the other images do;
- a tiny classifier (a shallow decision tree, cross-validated) that sees only these properties: its
  balanced accuracy against chance says how much of the label the files alone give away.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from tl_desktop.engine.data.images import ImageProperties

NEAR_ALL = 0.9
NEAR_NONE = 0.1
# A class needs this many images (and so do the others) before a share of them means anything.
MIN_IMAGES = 5
# The properties-only classifier warns when it closes this share of the gap between chance and 100%.
BASELINE_MARGIN = 0.6
MAX_BASELINE_ROWS = 20_000
_FOLDS = 5
_SIZE_BANDS = ((0.1, "under 0.1 megapixels"), (0.5, "0.1-0.5 megapixels"), (2.0, "0.5-2 megapixels"),
               (8.0, "2-8 megapixels"), (math.inf, "over 8 megapixels"))
# What each property's value says about an image, for the warning sentence.
_PHRASES = {
    "file format": "are {} files", "colour mode": "are {}", "image size": "measure {}", "size range": "are {}",
    "JPEG quality": "have JPEG quality {}", "compression": "use {} compression", "camera model": "come from camera '{}'",
    "DICOM manufacturer": "come from manufacturer '{}'", "DICOM device model": "come from device model '{}'",
    "DICOM modality": "have modality {}",
}
_DEVICE_PROPERTIES = frozenset({"camera model", "DICOM manufacturer", "DICOM device model", "DICOM modality"})


@dataclass(frozen=True)
class ShortcutFinding:
    """A property value held by ``share_in`` of one class's images and ``share_out`` of the other images."""

    class_name: str
    prop: str
    value: str
    share_in: float
    share_out: float
    others: str


@dataclass(frozen=True)
class PropertyBaseline:
    """Cross-validated balanced accuracy of a classifier that sees only the file properties."""

    balanced_accuracy: float
    chance: float
    folds: int
    images: int

    @property
    def alarming(self) -> bool:
        """Far better than chance: the properties alone give the label away."""
        return self.balanced_accuracy >= self.chance + BASELINE_MARGIN * (1.0 - self.chance)


def property_values(facts: ImageProperties) -> dict[str, str]:
    """Each compared property of one image as text ("" where it does not apply, e.g. JPEG quality of a PNG)."""
    megapixels = facts.width * facts.height / 1e6
    quality = "" if facts.jpeg_quality is None else f"about {5 * round(facts.jpeg_quality / 5)}"
    return {
        "file format": facts.format, "colour mode": facts.colour, "image size": f"{facts.width}x{facts.height}",
        "size range": next(name for limit, name in _SIZE_BANDS if megapixels < limit), "JPEG quality": quality,
        "compression": facts.compression, "camera model": facts.camera, "DICOM manufacturer": facts.manufacturer,
        "DICOM device model": facts.model, "DICOM modality": facts.modality,
    }


def find_shortcuts(labels: list[str], rows: list[dict[str, str]], classes: list[str]) -> list[ShortcutFinding]:
    """Property values that nearly separate a class from the rest, at most one per class and property.

    With two classes a value that separates one separates the other too: it is reported once.
    """
    totals = Counter(labels)
    findings: list[ShortcutFinding] = []
    for name in classes:
        inside = [row for row, label in zip(rows, labels) if label == name]
        outside = [row for row, label in zip(rows, labels) if label != name]
        if len(inside) < MIN_IMAGES or len(outside) < MIN_IMAGES:
            continue
        found = [f for prop in _PHRASES if (f := _separating(name, prop, inside, outside))]
        if any(f.prop == "image size" for f in found):  # the exact size says it better than its band
            found = [f for f in found if f.prop != "size range"]
        findings += found
    if len(totals) == 2:
        seen: set[str] = set()
        kept = []
        for finding in findings:
            if finding.prop not in seen:
                kept.append(finding)
            seen.add(finding.prop)
        findings = kept
    return findings


def _separating(name: str, prop: str, inside: list[dict[str, str]], outside: list[dict[str, str]]) -> ShortcutFinding | None:
    value, count = Counter(row[prop] for row in inside).most_common(1)[0]
    if not value or count / len(inside) < NEAR_ALL:
        return None
    out_counts = Counter(row[prop] for row in outside)
    share_out = out_counts[value] / len(outside)
    if share_out > NEAR_NONE:
        return None
    common, common_count = out_counts.most_common(1)[0]
    if common_count / len(outside) >= 0.5:
        others = f"mostly {common}" if common else f"mostly without a {prop}"
    else:
        others = f"{len(out_counts)} different values"
    return ShortcutFinding(name, prop, value, count / len(inside), share_out, others)


def property_baseline(labels: list[str], facts: list[ImageProperties], seed: int = 0) -> PropertyBaseline | None:
    """Balanced accuracy of a shallow tree on the properties alone (stratified k-fold), or None when too few images."""
    counts = Counter(labels)
    if len(counts) < 2 or min(counts.values()) < 2:
        return None
    if len(labels) > MAX_BASELINE_ROWS:  # a fixed stride keeps every class and the result reproducible
        step = math.ceil(len(labels) / MAX_BASELINE_ROWS)
        labels, facts = labels[::step], facts[::step]
        counts = Counter(labels)
        if len(counts) < 2 or min(counts.values()) < 2:
            return None
    chance = 1.0 / len(counts)
    folds = min(_FOLDS, min(counts.values()))
    rows = [property_values(f) for f in facts]
    if all(row == rows[0] for row in rows) and all(f.jpeg_quality == facts[0].jpeg_quality for f in facts):
        return PropertyBaseline(chance, chance, folds, len(labels))  # nothing to tell images apart by
    return PropertyBaseline(_cross_validated(labels, rows, facts, folds, seed), chance, folds, len(labels))


def _cross_validated(labels: list[str], rows: list[dict[str, str]], facts: list[ImageProperties], folds: int,
                     seed: int) -> float:
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    categorical = np.array([[row[p] for p in _PHRASES if p not in ("image size", "size range", "JPEG quality")]
                            for row in rows], dtype=object)
    numeric = np.array([[math.log2(f.width), math.log2(f.height), -1.0 if f.jpeg_quality is None else f.jpeg_quality]
                        for f in facts])
    encoded = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit_transform(categorical)
    features = np.hstack([encoded, numeric])
    tree = DecisionTreeClassifier(max_depth=4, class_weight="balanced", random_state=seed)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(tree, features, np.array(labels), cv=split)
    return float(balanced_accuracy_score(labels, predicted))


def shortcut_warnings(findings: list[ShortcutFinding], baseline: PropertyBaseline | None) -> list[str]:
    """Plain-language warnings: one per class with a separating property, else one for an alarming baseline."""
    by_class: dict[str, list[ShortcutFinding]] = {}
    for finding in findings:
        by_class.setdefault(finding.class_name, []).append(finding)
    out = [_class_warning(name, found, baseline) for name, found in by_class.items()]
    if not out and baseline is not None and baseline.alarming:
        out.append(
            f"The file properties alone (format, colour mode, size, JPEG quality, camera, DICOM device) predict the "
            f"class with {baseline.balanced_accuracy:.0%} balanced accuracy, against {baseline.chance:.0%} by chance: "
            "a model can use them instead of the picture, so its accuracy will look better than it is. "
            "Convert all images to one format and size, and take every class from the same devices, before training."
        )
    return out


def _class_warning(name: str, found: list[ShortcutFinding], baseline: PropertyBaseline | None) -> str:
    facts = "; ".join(
        f"{_share(f.share_in)} of its images {_PHRASES[f.prop].format(f.value)} "
        f"(the other images: {f.share_out:.0%}, {f.others})" for f in found
    )
    if any(f.prop in _DEVICE_PROPERTIES for f in found):
        advice = "Take the images of every class with the same devices, or balance the devices across classes."
    else:
        advice = "Convert all images to one format and size before training."
    told = (f" Image properties alone predict the class with {baseline.balanced_accuracy:.0%} balanced accuracy "
            f"(chance {baseline.chance:.0%}).") if baseline is not None and baseline.alarming else ""
    return (f"Class '{name}' differs from the others in its files, not only its pictures: {facts}. A model can "
            f"tell '{name}' apart by this alone, so its accuracy will look better than it is.{told} {advice}")


def _share(share: float) -> str:
    return "all" if share >= 1.0 else f"{share:.0%}"


def baseline_line(baseline: PropertyBaseline | None) -> str:
    """One summary line for the audit and the report."""
    if baseline is None:
        return "Properties-only baseline: too few images per class to judge"
    return (f"Properties-only baseline: {baseline.balanced_accuracy:.0%} balanced accuracy from file properties alone "
            f"(chance {baseline.chance:.0%}; {baseline.folds}-fold cross-validated over {baseline.images:,} images)")
