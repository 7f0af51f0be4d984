"""The Results page's run history: the sortable table read in the background, rename, delete to the
trash after asking, and the comparison of two runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from tl_desktop.engine.training.runfolder import RunFolder


@pytest.fixture
def two_runs(tiny_backbone, tmp_path: Path, make_image_folder) -> Path:
    """A runs folder with a tiny trained run (test split evaluated) and a copy of it with another lr."""
    from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from tl_desktop.engine.evaluation.evaluate import evaluate_run
    from tl_desktop.engine.evaluation.files import save_evaluation
    from tl_desktop.engine.training.trainer import Trainer

    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=36)
    config = RunConfig(data=DataConfig(root=str(root), val_fraction=0.25, test_fraction=0.25),
                       model=ModelConfig(backbone=tiny_backbone.name, trainable_blocks=1, dropout=0.0),
                       train=TrainConfig(epochs=2, head_epochs=1, batch_size=4, early_stopping_patience=0),
                       out_dir=str(tmp_path / "made"))
    result = Trainer(config).fit()
    predictions, metrics = evaluate_run(result.run_dir, "test", n_bootstrap=20)
    save_evaluation(RunFolder(result.run_dir).split_evaluation_dir("test"), predictions, metrics,
                    {"kind": "split", "split": "test"})
    runs = tmp_path / "runs"
    shutil.copytree(result.run_dir, runs / "20260101-100000-tiny_cnn")
    other = RunFolder(shutil.copytree(result.run_dir, runs / "20260102-100000-tiny_cnn"))
    changed = json.loads(other.config_file.read_text(encoding="utf-8"))
    changed["train"]["lr"] = 0.01
    other.config_file.write_text(json.dumps(changed), encoding="utf-8")
    return runs


def _select_all(dialog) -> None:
    model = dialog.table.selectionModel()
    for row in range(dialog.proxy.rowCount()):
        model.select(dialog.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.Select
                     | QItemSelectionModel.SelectionFlag.Rows)


def test_history_lists_sorts_renames_compares_and_trashes(window, qtbot, two_runs, monkeypatch) -> None:
    import send2trash
    from PySide6.QtWidgets import QInputDialog

    from tl_desktop.gui import runs_dialog
    from tl_desktop.gui.widgets import dialogs

    window.session.set_run(two_runs / "20260102-100000-tiny_cnn")
    dialog = window.results_page.show_history()
    qtbot.waitUntil(lambda: dialog.proxy.rowCount() == 2 and not dialog.tasks.busy(), timeout=20000)
    assert "2 runs" in dialog.where.text()
    assert dialog.proxy.index(0, 0).data() == "20260102-100000-tiny_cnn"  # newest first
    dialog.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert dialog.proxy.index(0, 0).data() == "20260101-100000-tiny_cnn"
    assert dialog.proxy.index(0, 2).data() == "completed" and "%" in dialog.proxy.index(0, 8).data()

    dialog.table.selectRow(0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Baseline", True))
    dialog.buttons["rename"].click()
    qtbot.waitUntil(lambda: not dialog.tasks.busy() and dialog.proxy.index(1, 0).data() == "Baseline",
                    timeout=20000)  # sorted by name, digits first
    assert (two_runs / "20260101-100000-tiny_cnn").is_dir()

    shown = []
    monkeypatch.setattr(runs_dialog.ComparisonDialog, "exec", lambda self: shown.append(self) or 0)
    _select_all(dialog)
    assert dialog.buttons["compare"].isEnabled()
    dialog.buttons["compare"].click()
    qtbot.waitUntil(lambda: bool(shown), timeout=20000)
    compared = shown[0]
    assert compared.settings.findItems("train.lr", Qt.MatchFlag.MatchExactly)
    row = compared.settings.findItems("train.lr", Qt.MatchFlag.MatchExactly)[0].row()
    assert compared.settings.item(row, 1).background().color() == runs_dialog.DIFFERENT
    assert "95% CI" in compared.metrics.item(1, 1).text()
    qtbot.waitUntil(lambda: not dialog.tasks.busy(), timeout=20000)

    trashed, asked = [], []
    monkeypatch.setattr(send2trash, "send2trash", lambda p: trashed.append(p))
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *a, **k: asked.append(a[2]) or True)
    dialog.table.clearSelection()
    dialog.table.selectRow(0)
    dialog.buttons["delete"].click()
    assert asked == ["Move 1 run(s) to the trash?"]
    assert trashed == [str(two_runs / "20260102-100000-tiny_cnn")]
    qtbot.waitUntil(lambda: not dialog.tasks.busy(), timeout=20000)
    dialog.close()
