"""One plain sentence per metric, for the window's tooltips and the report's notes (one place for them).

``explain`` accepts the names a user reads in tables and headers ("Recall (sensitivity)", "Macro F1",
"Calibration error (ECE)", "PPV", ...), case and surrounding words aside.
"""

from __future__ import annotations

import re

DEFINITIONS: dict[str, str] = {
    "accuracy": "Accuracy: the share of all images the model classified correctly.",
    "balanced_accuracy": "Balanced accuracy: the average of each class's recall, so a large class cannot hide "
                         "a small one the model gets wrong.",
    "sensitivity": "Sensitivity (recall): of the images that truly belong to the class, the share the model "
                   "found.",
    "specificity": "Specificity: of the images that do not belong to the class, the share the model correctly "
                   "left out.",
    "ppv": "PPV (precision): of the images the model called this class, the share that really were.",
    "npv": "NPV: of the images the model said are not this class, the share that really were not.",
    "f1": "F1: one number balancing precision and recall (their harmonic mean); high only when both are high.",
    "auc": "AUC: the chance that the model scores a random image of the class higher than a random image of "
           "another class (1.0 perfect, 0.5 guessing).",
    "ece": "ECE (expected calibration error): how far the model's stated confidence is, on average, from how "
           "often it is actually right (0 is perfectly calibrated).",
}

# Names as users read them, each mapped to its definition's key; checked longest first.
ALIASES: dict[str, str] = {
    "balanced accuracy": "balanced_accuracy",
    "accuracy": "accuracy", "sensitivity": "sensitivity", "recall": "sensitivity",
    "true-positive rate": "sensitivity", "specificity": "specificity", "ppv": "ppv", "precision": "ppv",
    "npv": "npv", "f1": "f1", "auc": "auc", "ece": "ece", "calibration error": "ece",
}
_PATTERN = re.compile(r"\b(" + "|".join(re.escape(a) for a in sorted(ALIASES, key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)


def explain(name: str) -> str | None:
    """The one-sentence definition of the metric named in ``name``, or None when it names none.

    The first metric named wins ("Recall (sensitivity)" → sensitivity, "Macro F1" → F1).
    """
    found = _PATTERN.search(name.replace("_", " "))  # metric keys too: "balanced_accuracy", "macro_f1"
    return DEFINITIONS[ALIASES[found.group(1).lower()]] if found else None


def explain_all(names: list[str]) -> str:
    """The definitions of the metrics in ``names`` (each once, in order), one per line."""
    seen: list[str] = []
    for name in names:
        text = explain(name)
        if text is not None and text not in seen:
            seen.append(text)
    return "\n".join(seen)
