"""Intervals as people read them: a printed interval always holds its printed value, never prints as a
point when it has width, and classes with too few images are marked wherever per-class numbers appear."""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pytest

from tl_desktop.engine.evaluation.evaluate import Predictions, compute_metrics
from tl_desktop.engine.evaluation.formatting import (
    NOT_ESTIMABLE,
    TOO_FEW,
    fmt,
    fmt_bounds,
    summary_lines,
    with_interval,
)
from tl_desktop.engine.evaluation.metrics import Interval

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NUMBER = r"(-?\d+\.\d+)"


def _parse(text: str, percent: bool) -> tuple[Decimal, Decimal, Decimal]:
    unit = "%" if percent else ""
    match = re.fullmatch(rf"{NUMBER}{unit} \(95% CI {NUMBER}–{NUMBER}{unit}\)", text)
    assert match, text
    return tuple(Decimal(g) for g in match.groups())


unit_floats = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(a=unit_floats, b=unit_floats, c=unit_floats, percent=st.booleans())
def test_printed_interval_holds_printed_value(a, b, c, percent):
    low, value, high = sorted((a, b, c))
    text = with_interval(value, Interval(low, high, value=value, method="wilson"), percent)
    shown_value, shown_low, shown_high = _parse(text, percent)
    assert shown_low <= shown_value <= shown_high
    if low < high:
        assert shown_low < shown_high  # an interval with width never prints as a point
    # Outward rounding: the printed bounds enclose the true ones (up to a bound's last binary digit).
    scale, snap = 100 if percent else 1, Decimal("1e-9")
    assert shown_low <= Decimal(low) * scale + snap and Decimal(high) * scale - snap <= shown_high


@pytest.mark.parametrize(("value", "low", "high", "percent", "expected"), [
    (1.0, 0.7961166989641515, 1.0, True, "100.0% (95% CI 79.6–100.0%)"),        # 15 of 15, Wilson
    (0.998, 0.99551, 0.99995, False, "0.998 (95% CI 0.995–1.000)"),            # was "0.998 (1.00–1.00)"
    (0.0, 0.0, 0.2038833, True, "0.0% (95% CI 0.0–20.4%)"),                     # 0 of 15: the top rounds up
    (0.9996, 0.99951, 0.99999, True, "100.0% (95% CI 99.9–100.0%)"),
    (0.5, 0.45, 0.55, True, "50.0% (95% CI 45.0–55.0%)"),                        # exact bounds stay put
])
def test_known_intervals_print_as_expected(value, low, high, percent, expected):
    assert with_interval(value, Interval(low, high, value=value), percent) == expected


def test_not_estimable_and_undefined_read_as_words():
    degenerate = Interval(None, None, value=1.0, note="every resample gave the same value")
    assert with_interval(1.0, degenerate) == f"100.0% ({NOT_ESTIMABLE})"
    assert fmt_bounds(degenerate) == NOT_ESTIMABLE
    assert with_interval(None, Interval(None, None)) == "undefined"
    assert with_interval(0.25, None) == "25.0%"
    assert fmt(0.125, percent=False) == "0.125" and fmt(0.0005) == "0.1%" and fmt(0.00049) == "0.0%"


def _three_classes(counts: dict[str, int]) -> Predictions:
    rng = np.random.default_rng(2)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts.values())])
    probs = rng.dirichlet(np.ones(len(counts)), size=labels.size)
    probs[np.arange(labels.size), labels] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    return Predictions([f"{i}.png" for i in range(labels.size)], labels, probs, list(counts))


def test_command_line_summary_marks_classes_with_too_few_images():
    m = compute_metrics(_three_classes({"cat": 15, "dog": 10, "hamster": 9}), n_bootstrap=200)
    lines = summary_lines(m)
    row = {name: next(line for line in lines if line.startswith(f"  {name} ")) for name in ("cat", "dog", "hamster")}
    assert row["hamster"].endswith(TOO_FEW)
    assert TOO_FEW not in row["cat"] and TOO_FEW not in row["dog"]  # 10 images are enough to be judged
    text = "\n".join(lines)
    assert "Accuracy                 100.0% (95% CI 89.8–100.0%, Wilson)" in text
    assert "(70.0–100.0%)" in text  # hamster's recall: Wilson for 9 of 9 is 70.09%–100%
    assert "Wilson score for proportions" in text and "200 resamples" in text


def test_report_tables_mark_too_few_images_and_name_the_methods():
    from tl_desktop.report.sections import headline_table, per_class_table

    m = compute_metrics(_three_classes({"cat": 15, "dog": 10, "hamster": 3}), n_bootstrap=200)
    table = per_class_table(m)
    images = {row[0]: row[1] for row in table.rows}
    assert images["hamster"] == f"3 ({TOO_FEW})" and images["dog"] == "10" and images["cat"] == "15"
    cat = next(row for row in table.rows if row[0] == "cat")
    assert cat[3] == "100.0% (79.6–100.0%)"  # recall of 15 of 15
    assert "Wilson" in table.caption and "DeLong" in table.caption

    class Section:
        title, metrics = "Validation split", m

    headline = headline_table([Section()])
    assert headline.rows[0][2] == "100.0% (87.9–100.0%)"  # 28 of 28: Wilson from 87.94%
    assert headline.rows[0][3] == f"100.0% ({NOT_ESTIMABLE})"  # balanced accuracy: every resample perfect
