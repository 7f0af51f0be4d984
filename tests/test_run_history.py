"""Run history: listing (completed, stopped, damaged runs), sorting, labels, trash, comparison and
``tl-desktop runs``, on one real tiny run copied into variants."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tl_desktop.cli import main
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.workflows import run_history
from tl_desktop.engine.workflows.run_comparison import compare_runs
from tl_desktop.engine.workflows.run_history import (
    RunHistoryError,
    TrashUnavailable,
    list_runs,
    move_to_trash,
    set_label,
    sort_runs,
    summarize_run,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_runs, make_image_folder) -> Path:
    """A completed tiny run whose test split was evaluated and saved (metrics.json with intervals)."""
    from tl_desktop.engine.evaluation.evaluate import evaluate_run
    from tl_desktop.engine.evaluation.files import save_evaluation
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("history")
    tiny_runs.register_tiny_backbone(base)
    try:
        run_dir = tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 8, "b": 8}, size=36), base / "made")
        predictions, metrics = evaluate_run(run_dir, "test", n_bootstrap=20)
        save_evaluation(RunFolder(run_dir).split_evaluation_dir("test"), predictions, metrics,
                        {"kind": "split", "split": "test"})
    finally:
        unregister_backbone(tiny_runs.TINY_NAME)
    return run_dir


def _copy(trained: Path, runs: Path, name: str) -> RunFolder:
    target = runs / name
    shutil.copytree(trained, target)
    return RunFolder(target)


def _old(path: Path) -> None:
    """Age the events file so an unfinished run reads as interrupted, not running."""
    os.utime(path, (1_600_000_000, 1_600_000_000))


@pytest.fixture
def runs(trained: Path, tmp_path: Path) -> Path:
    """A project folder whose runs/ holds a completed, a stopped, a truncated and a metrics-less run."""
    folder = tmp_path / "project" / "runs"
    _copy(trained, folder, "20260101-100000-tiny_cnn")
    stopped = _copy(trained, folder, "20260102-100000-tiny_cnn")
    lines = stopped.events_file.read_text(encoding="utf-8").splitlines()
    end = json.loads(lines[-1])
    end["status"] = "stopped"
    stopped.events_file.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n", encoding="utf-8")
    truncated = _copy(trained, folder, "20260103-100000-tiny_cnn")
    text = truncated.events_file.read_text(encoding="utf-8")
    truncated.events_file.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1], encoding="utf-8")
    _old(truncated.events_file)
    bare = _copy(trained, folder, "20260104-100000-tiny_cnn")
    (bare.split_evaluation_dir("test") / "metrics.json").unlink()
    return folder.parent


def test_listing_reads_status_settings_and_metrics(runs: Path) -> None:
    found = {r.folder_name: r for r in list_runs(runs)}
    assert list(found) == ["20260104-100000-tiny_cnn", "20260103-100000-tiny_cnn", "20260102-100000-tiny_cnn",
                           "20260101-100000-tiny_cnn"]  # newest first
    done = found["20260101-100000-tiny_cnn"]
    assert (done.status, done.reason, done.backbone, done.trainable_blocks) == ("completed", "", "tiny_cnn", "1")
    assert (done.epochs_completed, done.epochs_planned) == (2, 2) and done.seconds > 0
    assert 0 <= done.test_accuracy <= 1 and 0 <= done.balanced_accuracy <= 1 and done.val_accuracy is not None
    assert found["20260102-100000-tiny_cnn"].status == "stopped"
    torn = found["20260103-100000-tiny_cnn"]
    assert torn.status == "damaged" and "without its final event" in torn.reason
    assert torn.epochs_completed == 2  # the torn final line is skipped, the epochs before it are read
    bare = found["20260104-100000-tiny_cnn"]
    assert bare.status == "completed" and bare.test_accuracy is None and bare.macro_auc is None


def test_missing_and_unreadable_files_make_a_damaged_run_not_a_crash(runs: Path) -> None:
    folder = runs / "runs"
    broken = RunFolder(folder / "20260101-100000-tiny_cnn")
    (broken.split_evaluation_dir("test") / "metrics.json").write_text("{not json", encoding="utf-8")
    broken.config_file.unlink()
    empty = folder / "20260105-100000-tiny_cnn"
    empty.mkdir()
    summary = summarize_run(broken.path)
    assert summary.status == "damaged" and "config.json is missing" in summary.reason
    assert "test evaluation's metrics.json cannot be read" in summary.reason
    nothing = summarize_run(empty)
    assert nothing.status == "damaged" and "events.jsonl is missing" in nothing.reason


def test_an_unfinished_run_with_fresh_events_is_running(runs: Path) -> None:
    run = RunFolder(runs / "runs" / "20260103-100000-tiny_cnn")
    os.utime(run.events_file)
    assert summarize_run(run.path).status == "running"


def test_sort_by_metric_puts_blanks_last_and_refuses_unknown_columns(runs: Path) -> None:
    ordered = sort_runs(list_runs(runs), "test")
    assert ordered[-1].folder_name == "20260104-100000-tiny_cnn"
    assert [r.folder_name for r in sort_runs(ordered, "name")][0] == "20260101-100000-tiny_cnn"
    with pytest.raises(RunHistoryError, match="cannot sort by 'colour'"):
        sort_runs(ordered, "colour")


def test_rename_and_note_persist_in_the_label_file_and_never_rename_the_folder(runs: Path, monkeypatch) -> None:
    path = runs / "runs" / "20260101-100000-tiny_cnn"
    written = []
    real = run_history.atomic_write_text
    monkeypatch.setattr(run_history, "atomic_write_text", lambda p, t: (written.append(p), real(p, t)))
    set_label(path, name="  Baseline   lite0 ")
    summary = set_label(path, note="first try, blurry photos excluded")
    assert written == [RunFolder(path).label_file] * 2
    assert (summary.name, summary.note, summary.path) == ("Baseline lite0", "first try, blurry photos excluded", path)
    assert summarize_run(path).name == "Baseline lite0" and path.is_dir()
    assert set_label(path, name="").name == path.name
    with pytest.raises(RunHistoryError, match="at most 120 characters"):
        set_label(path, name="x" * 121)
    with pytest.raises(RunHistoryError, match="is not a run folder"):
        set_label(runs, name="project")


def test_delete_moves_the_run_to_the_trash_or_says_it_cannot(runs: Path, monkeypatch) -> None:
    import send2trash
    from send2trash.exceptions import TrashPermissionError

    trashed = []
    monkeypatch.setattr(send2trash, "send2trash", lambda p: trashed.append(p))
    path = runs / "runs" / "20260102-100000-tiny_cnn"
    move_to_trash(path)
    assert trashed == [str(path)]

    def refuse(p: str) -> None:
        raise TrashPermissionError(p)

    monkeypatch.setattr(send2trash, "send2trash", refuse)
    with pytest.raises(TrashUnavailable, match="could not be moved to the trash"):
        move_to_trash(path)
    assert path.is_dir()


def test_comparison_marks_differing_settings_and_reuses_saved_intervals(runs: Path) -> None:
    folder = runs / "runs"
    other = RunFolder(folder / "20260104-100000-tiny_cnn")
    config = json.loads(other.config_file.read_text(encoding="utf-8"))
    config["train"]["lr"] = 0.01
    other.config_file.write_text(json.dumps(config), encoding="utf-8")
    comparison = compare_runs([folder / "20260101-100000-tiny_cnn", other.path])
    assert [row.key for row in comparison.differing_settings()] == ["train.lr"]
    assert comparison.differing_settings()[0].values[1] == "0.01"
    assert comparison.metrics_split == ("test", "")
    saved = json.loads((folder / "20260101-100000-tiny_cnn" / "evaluation" / "test" / "metrics.json").read_text())
    accuracy = comparison.metrics[0]
    assert accuracy.key == "accuracy" and accuracy.values[1] is None and accuracy.texts()[1] == ""
    assert accuracy.intervals[0].low == saved["metrics"]["intervals"]["accuracy"]["low"]
    assert "95% CI" in accuracy.texts()[0]
    assert [len(c.epochs) for c in comparison.curves] == [2, 2]
    with pytest.raises(RunHistoryError, match="at least two runs"):
        compare_runs([other.path])


def test_cli_prints_an_aligned_table_and_json(runs: Path, capsys) -> None:
    assert main(["runs", str(runs), "--sort", "name"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Name") and "Macro AUC" in lines[0]
    assert lines[1].startswith("20260101-100000-tiny_cnn") and "completed" in lines[1]
    assert lines[1].index("tiny_cnn  ") >= 0 and lines[0].index("Status") == lines[1].index("completed")
    assert any("without its final event" in line for line in lines)
    assert main(["runs", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["folder"].endswith("20260104-100000-tiny_cnn") and rows[0]["status"] == "completed"


def test_cli_compare_prints_differences_and_metrics(runs: Path, capsys) -> None:
    assert main(["runs", str(runs), "--compare", "20260101-100000-tiny_cnn", "20260104-100000-tiny_cnn"]) == 0
    out = capsys.readouterr().out
    assert "The runs have the same settings." in out and "Balanced accuracy" in out and "95% CI" in out
    assert main(["runs", str(runs), "--compare", "20260101-100000-tiny_cnn", "nope"]) == 2
    assert "no run folder 'nope'" in capsys.readouterr().err


def test_cli_refuses_a_missing_or_empty_folder_with_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 2
    assert "holds no run folders" in capsys.readouterr().err
