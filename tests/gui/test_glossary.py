"""The metric glossary: one plain sentence per metric, found from the names users read, shown as tooltips."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tl_desktop.engine.evaluation.glossary import DEFINITIONS, explain, explain_all  # noqa: E402


@pytest.mark.parametrize(("name", "starts"), [
    ("Recall (sensitivity)", "Sensitivity (recall):"), ("Sensitivity", "Sensitivity (recall):"),
    ("Specificity", "Specificity:"), ("Precision (PPV)", "PPV (precision):"), ("PPV", "PPV (precision):"),
    ("NPV", "NPV:"), ("Calibration error (ECE)", "ECE"), ("Macro AUC", "AUC:"), ("macro_auc", "AUC:"),
    ("Macro F1", "F1:"), ("Balanced accuracy", "Balanced accuracy:"), ("balanced_accuracy", "Balanced accuracy:"),
    ("Accuracy", "Accuracy:"),
])
def test_each_metric_name_a_user_reads_is_explained(name, starts):
    assert explain(name).startswith(starts)


def test_names_that_are_not_metrics_are_not_explained():
    assert explain("Class") is None and explain("Images") is None and explain("Northern leaf blight") is None


def test_definitions_are_one_plain_sentence_each():
    for text in DEFINITIONS.values():
        assert text.endswith(".") and text.count(". ") == 0 and len(text) < 200, text
    assert explain_all(["Recall", "sensitivity", "NPV"]).splitlines() == [DEFINITIONS["sensitivity"],
                                                                         DEFINITIONS["npv"]]


def _predictions():
    from tl_desktop.engine.evaluation.evaluate import Predictions

    p_sick = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.1])
    return Predictions(list("abcdef"), [1, 1, 1, 0, 0, 0], np.stack([1 - p_sick, p_sick], 1), ["healthy", "sick"])


def test_threshold_panel_explains_its_four_numbers(qtbot):
    from tl_desktop.gui.widgets.analysis import ThresholdPanel

    panel = ThresholdPanel(_predictions())
    qtbot.addWidget(panel)
    tip = panel.result.toolTip()
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert DEFINITIONS[key] in tip


def test_comparison_table_explains_each_metric_row_and_value(qtbot, tmp_path):
    from tl_desktop.engine.evaluation.evaluate import compute_metrics
    from tl_desktop.gui.widgets.analysis import HEADLINES, ExternalPanel

    predictions = _predictions()
    panel = ExternalPanel(tmp_path, {"test": (predictions, compute_metrics(predictions, n_bootstrap=0))})
    qtbot.addWidget(panel)
    expected = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "macro_f1": "f1",
                "macro_auc": "auc", "ece": "ece"}
    for row, (key, _label) in enumerate(HEADLINES):
        assert panel.table.item(row, 0).toolTip() == DEFINITIONS[expected[key]]
        assert panel.table.item(row, 1).toolTip().startswith(DEFINITIONS[expected[key]])
    assert panel.table.item(len(HEADLINES), 0).toolTip() == ""  # "Images" is not a metric


def test_report_table_notes_use_the_same_definitions():
    from tl_desktop.engine.evaluation.evaluate import compute_metrics
    from tl_desktop.report.sections import per_class_table

    caption = per_class_table(compute_metrics(_predictions(), n_bootstrap=0)).caption
    for key in ("ppv", "sensitivity", "specificity", "f1", "auc"):
        assert DEFINITIONS[key] in caption
