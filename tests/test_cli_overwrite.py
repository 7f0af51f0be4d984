"""The command line never replaces a file the user owns without --force: it exits 2 naming the file and leaves
it as it was; with --force it writes the new one."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tl_desktop.cli import main

EDITED = "edited by hand, keep me\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, make_image_folder, tiny_runs) -> Path:
    """A completed tiny-CNN run on two synthetic classes (the backbone stays registered meanwhile)."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("overwrite_run")
    tiny_runs.register_tiny_backbone(base)
    yield tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 6, "b": 6}, size=40), base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


@pytest.fixture
def images(tiny_run: Path) -> Path:
    import json

    return Path(json.loads((tiny_run / "config.json").read_text())["data"]["root"])


def _refused(capsys, file: Path) -> None:
    err = capsys.readouterr().err
    assert f"error: {file} exists" in err and "add --force to replace it" in err and "Traceback" not in err
    assert file.read_text() == EDITED


def test_predict_csv_is_not_replaced_without_force(tiny_run, images, tmp_path, capsys):
    table = tmp_path / "answers.csv"
    table.write_text(EDITED)
    assert main(["predict", "--model", str(tiny_run), str(images), "--csv", str(table)]) == 2
    _refused(capsys, table)

    assert main(["predict", "--model", str(tiny_run), str(images), "--csv", str(table), "--force"]) == 0
    rows = list(csv.reader(table.open(encoding="utf-8")))
    assert rows[0] == ["path", "label", "probability", "a", "b", "error"] and len(rows) == 1 + 12


def test_export_out_is_not_replaced_without_force(tiny_run, tmp_path, capsys):
    out = tmp_path / "copy.tlmodel"
    out.write_text(EDITED)
    assert main(["export", str(tiny_run), "--out", str(out)]) == 2
    _refused(capsys, out)
    assert main(["export", str(tiny_run), "--out", str(out), "--force"]) == 0
    assert out.read_bytes() == (tiny_run / "model.tlmodel").read_bytes()


def test_evaluate_out_is_not_replaced_without_force(tiny_run, tmp_path, capsys):
    out = tmp_path / "evaluation"
    out.mkdir()
    edited = out / "per_class.csv"
    edited.write_text(EDITED)
    assert main(["evaluate", "--model", str(tiny_run), "--out", str(out), "--bootstrap", "0"]) == 2
    _refused(capsys, edited)
    assert not (out / "metrics.json").exists()
    assert main(["evaluate", "--model", str(tiny_run), "--out", str(out), "--bootstrap", "0", "--force"]) == 0
    assert edited.read_text() != EDITED and (out / "metrics.json").is_file()


def test_evaluating_a_model_outside_its_run_twice_asks_for_force(tiny_run, images, tmp_path, capsys,
                                                                  monkeypatch):
    alone = tmp_path / "alone.tlmodel"
    shutil.copy(tiny_run / "model.tlmodel", alone)
    monkeypatch.chdir(tmp_path)
    command = ["evaluate", "--model", str(alone), "--data", str(images), "--bootstrap", "0"]
    assert main(command) == 0
    (metrics,) = (tmp_path / "evaluation").rglob("metrics.json")  # ./evaluation/<folder>-<hash>
    metrics.write_text(EDITED)
    capsys.readouterr()

    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{metrics.parent}" in err and "exists" in err and "--force" in err
    assert metrics.read_text() == EDITED
    assert main([*command, "--force"]) == 0
    assert metrics.read_text() != EDITED


def test_evaluating_inside_the_run_folder_needs_no_force(tiny_run, images, capsys):
    # The run folder is the app's own: evaluating again refreshes its saved evaluation.
    command = ["evaluate", "--model", str(tiny_run), "--data", str(images), "--bootstrap", "0"]
    assert main(command) == 0
    assert main(command) == 0


def test_report_out_is_not_replaced_without_force(tiny_run, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    edited = out / "report.pdf"
    edited.write_text(EDITED)
    assert main(["report", str(tiny_run), "--out", str(out), "--bootstrap", "0"]) == 2
    _refused(capsys, edited)
    assert not (out / "report.html").exists()
