"""Figure builders: plain matplotlib Figures (no pyplot), robust to empty inputs, clickable matrix cells."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from matplotlib.figure import Figure

from tl_desktop.engine.evaluation.evaluate import Predictions, compute_metrics
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.report import figures


def test_builders_return_figures_without_pyplot():
    code = (
        "import sys, numpy as np\n"
        "from tl_desktop.report import figures\n"
        "figures.confusion_matrix_figure(np.eye(3), ['a', 'b', 'c'])\n"
        "figures.training_curves_figure([])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_confusion_cell_at_maps_clicks_back_to_cells():
    fig = figures.confusion_matrix_figure(np.array([[3, 1], [0, 2]]), ["x", "y"])
    ax = fig.axes[0]
    assert figures.confusion_cell_at(1.2, -0.3, 2) == (0, 1)  # row 0 = true x, column 1 = predicted y
    assert figures.confusion_cell_at(0.0, 1.0, 2) == (1, 0)
    assert figures.confusion_cell_at(2.6, 0, 2) is None and figures.confusion_cell_at(None, 0, 2) is None
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "2"]


def test_normalised_matrix_marks_rows_without_samples():
    fig = figures.confusion_matrix_figure(np.array([[2, 2], [0, 0]]), ["x", "y"], normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.50", "0.50", "–", "–"]


def test_all_builders_handle_empty_and_degenerate_inputs(tmp_path):
    empty = compute_metrics(Predictions([], [], np.zeros((0, 2)), ["x", "y"]), n_bootstrap=0)
    one_class = compute_metrics(Predictions(["a", "b"], [0, 0], np.array([[0.9, 0.1], [0.6, 0.4]]), ["x", "y"]),
                                n_bootstrap=0)
    built = [figures.training_curves_figure([]), figures.roc_figure(empty.roc),
             figures.reliability_figure(empty.reliability, empty.ece), figures.roc_figure(one_class.roc),
             figures.reliability_figure(one_class.reliability, one_class.ece),
             figures.confusion_matrix_figure(empty.confusion, empty.classes, normalize=True)]
    for i, fig in enumerate(built):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png")


def test_read_epoch_history_skips_bad_lines(tmp_path):
    lines = ['{"event": "FitStarted", "run_dir": "r", "classes": ["a"], "num_train": 1, "num_val": 1, '
             '"num_test": 0, "device": "cpu", "total_epochs": 1, "config": {}}',
             "not json",
             '{"event": "EpochEnded", "epoch": 1, "total_epochs": 1, "phase": "head", "train_loss": 1.0, '
             '"train_accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4, "lr": 0.001, "seconds": 1.0, '
             '"eta_seconds": 0.0, "is_best": true}']
    (tmp_path / "events.jsonl").write_text("\n".join(lines), encoding="utf-8")
    history = RunFolder(tmp_path).epoch_history()
    assert [e.epoch for e in history] == [1]
    fig = figures.training_curves_figure(history)
    assert fig.axes[1].get_legend() is not None
