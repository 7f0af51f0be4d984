"""Metrics as text for people: the same digits and wording in the command line, the report and the window.

A point estimate is rounded to the nearest printed digit and an interval's bounds are rounded
outwards (the lower bound down, the upper bound up), so a printed interval always contains its
printed estimate and an interval of positive width never prints as a point. Decimal arithmetic on
the exact binary value keeps that true at every rounding edge.
"""

from __future__ import annotations

import textwrap
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

from tl_desktop.engine.evaluation.metrics import MIN_IMAGES_TO_JUDGE, Interval, Metrics

PERCENT_DIGITS = 1
PLAIN_DIGITS = 3
UNDEFINED = "undefined"
NOT_ESTIMABLE = "interval not estimable"
TOO_FEW = "too few images to judge"
# Below this many groups a cluster bootstrap has few distinct resamples and its percentile intervals run narrow
# (Cameron, Gelbach & Miller 2008, Rev. Econ. Stat. 90:414–427: over few clusters tests reject too often,
# a plain cluster bootstrap's included).
FEW_GROUPS = 10
# Exact: a double has at most 767 significant decimal digits.
_EXACT = Context(prec=800)
_SNAP = Decimal("1e-9")

HEADLINE_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "macro_auc": "Macro AUC (one-vs-rest)",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV (precision)",
    "npv": "NPV",
}
METHOD_LABELS = {
    "wilson": "Wilson",
    "wilson_design_effect": "Wilson with design effect",
    "delong_logit": "DeLong",
    "obuchowski_logit": "Obuchowski (clustered DeLong)",
    "hanley_mcneil_score": "Hanley–McNeil score",
    "bootstrap_percentile": "bootstrap",
    "cluster_bootstrap_percentile": "cluster bootstrap",
}
PERCENT_KEYS_EXCEPT = ("macro_auc", "auc", "ece", "log_loss")


def is_percent(key: str) -> bool:
    """Whether a metric is shown as a percentage (proportions) or as a plain number (AUC, ECE)."""
    return key not in PERCENT_KEYS_EXCEPT


def _digits(value: float, percent: bool, rounding: str, nudge: Decimal = Decimal(0)) -> str:
    exact = _EXACT.add(_EXACT.multiply(Decimal(float(value)), Decimal(100 if percent else 1)), nudge)
    places = Decimal(1).scaleb(-(PERCENT_DIGITS if percent else PLAIN_DIGITS))
    text = str(exact.quantize(places, rounding=rounding, context=_EXACT))
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text


def fmt(value: float | None, percent: bool = True) -> str:
    """A metric for people: a percentage with one decimal or a number with three, or 'undefined'."""
    if value is None:
        return UNDEFINED
    return _digits(value, percent, ROUND_HALF_EVEN) + ("%" if percent else "")


def fmt_bounds(ci: Interval | None, percent: bool = True) -> str:
    """'79.6–100.0%' (bounds rounded outwards), or 'interval not estimable'."""
    if ci is None or not ci.estimable:
        return NOT_ESTIMABLE
    # A bound a hair's breadth from a printed digit (0.55 is stored as 0.55000000000000004) prints as
    # that digit: the estimate, never further from it than the bound, still rounds inside.
    low, high = _digits(ci.low, percent, ROUND_FLOOR, _SNAP), _digits(ci.high, percent, ROUND_CEILING, -_SNAP)
    if low == high and ci.low < ci.high:
        low, high = _digits(ci.low, percent, ROUND_FLOOR), _digits(ci.high, percent, ROUND_CEILING)
    return f"{low}–{high}" + ("%" if percent else "")


def method_label(ci: Interval) -> str:
    """'Wilson', or 'cluster bootstrap over 12 groups' for a method that accounted for groups."""
    label = METHOD_LABELS.get(ci.method, ci.method)
    return label if ci.groups is None else f"{label} over {ci.groups:,} group{'s' if ci.groups != 1 else ''}"


def with_interval(value: float | None, ci: Interval | None, percent: bool = True, prefix: str = "95% CI ",
                  method: bool = False) -> str:
    """'100.0% (95% CI 79.6–100.0%)', '1.000 (interval not estimable)', or the value alone without an interval."""
    text = fmt(value, percent)
    if value is None or ci is None:
        return text
    if not ci.estimable:
        return f"{text} ({NOT_ESTIMABLE})"
    return f"{text} ({prefix}{fmt_bounds(ci, percent)}{', ' + method_label(ci) if method else ''})"


def fmt_ci(result: Metrics, key: str, value: float | None, percent: bool = True, method: bool = False) -> str:
    """A headline value with its 95% interval when one was computed."""
    return with_interval(value, result.intervals.get(key), percent, method=method)


def methods_note(result: Metrics, per_class: bool = True) -> str:
    """A few sentences naming the interval methods used, for under a table."""
    if not result.intervals:
        return "No intervals were computed."
    if result.groups is not None:
        text = (f"The images come in {result.groups:,} groups (patients, fields, ...) and images of one group "
                f"resemble each other, so every 95% interval accounts for the groups: Wilson score on the "
                f"design-effect-corrected effective number of images (Korn & Graubard) for proportions; Obuchowski's "
                f"clustered DeLong (logit scale) for AUC, Hanley–McNeil score over groups where the classes are "
                f"completely separated; cluster bootstrap drawing whole groups ({result.n_bootstrap} resamples, seed "
                f"{result.seed}) for balanced accuracy, F1 and the macro AUC of three or more classes, "
                f"'{NOT_ESTIMABLE}' where every resample agrees.")
        if result.groups < FEW_GROUPS:
            text += (f" With only {result.groups} groups the bootstrap intervals are likely too narrow (few distinct "
                     "resamples exist): read them as a lower bound on the uncertainty.")
    else:
        text = (f"95% intervals: Wilson score for proportions; DeLong (logit scale) for AUC, Hanley–McNeil score "
                f"where the classes are completely separated; percentile bootstrap ({result.n_bootstrap} resamples, "
                f"seed {result.seed}) for balanced accuracy, F1 and the macro AUC of three or more classes, "
                f"'{NOT_ESTIMABLE}' where every resample agrees.")
    if per_class:
        text += f" Classes with fewer than {MIN_IMAGES_TO_JUDGE} images are marked '{TOO_FEW}'."
    return text


def _class_table(result: Metrics) -> list[str]:
    width = max([len(c) for c in result.classes] + [5])
    keys = ("precision", "recall", "specificity", "f1", "auc")
    cell = 16
    lines = [(f"  {'class':<{width}}  {'images':>6}  " + "".join(f"{h:<{cell}}" for h in
              ("precision", "recall", "specificity", "F1", "AUC"))).rstrip()]
    for row in result.per_class:
        intervals = result.class_intervals.get(row.name, {})
        values = [fmt(getattr(row, k), is_percent(k)) for k in keys]
        note = f"  {TOO_FEW}" if row.too_few_images else ""
        lines.append((f"  {row.name:<{width}}  {row.support:>6}  " + "".join(f"{v:<{cell}}" for v in values)
                      ).rstrip() + note)
        if intervals:
            bounds = [_bounds_cell(getattr(row, k), intervals.get(k), is_percent(k)) for k in keys]
            lines.append((f"  {'':<{width}}  {'':>6}  " + "".join(f"{b:<{cell}}" for b in bounds)).rstrip())
    return lines


def _bounds_cell(value: float | None, ci: Interval | None, percent: bool) -> str:
    if value is None or ci is None:
        return ""
    return f"({fmt_bounds(ci, percent)})" if ci.estimable else "(not estimable)"


def summary_lines(result: Metrics) -> list[str]:
    """The metrics as readable text lines (the CLI prints them)."""
    lines = [f"{result.num_samples} images, {len(result.classes)} classes"]
    if result.binary is not None:
        lines.append(f"Positive class: {result.binary.positive_class}, decision threshold "
                     f"{result.binary.threshold:.2f}")
    for key, value in result.headline().items():
        lines.append(f"  {HEADLINE_LABELS[key]:<24} {fmt_ci(result, key, value, is_percent(key), method=True)}")
    lines.append(f"  {'Calibration error (ECE)':<24} {fmt(result.ece, percent=False)}")
    lines += _class_table(result)
    if result.intervals:
        lines += textwrap.wrap(methods_note(result), width=100, initial_indent="  ", subsequent_indent="  ")
    if result.absent_classes:
        lines.append("No images of: " + ", ".join(result.absent_classes)
                     + " (their recall is undefined; averages leave them out)")
    never = [r.name for r in result.per_class if r.support > 0 and r.predicted == 0]
    if never:
        lines.append("Never predicted: " + ", ".join(never) + " (precision undefined, counted as 0 in averages)")
    return lines
