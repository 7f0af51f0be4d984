"""``tl-desktop train --labels TABLE --group-by ...``: a grouped run end to end, and bad tables exit 2 with the line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tl_desktop.cli import main


def _grouped_table(tmp_path: Path, make_image_folder) -> Path:
    """12 images per class in 6 patients (each patient has both classes); the table sits above the images."""
    root = make_image_folder(tmp_path, classes={"cats": 12, "dogs": 12}, size=40)
    rows = ["path,label,patient"]
    for name in ("cats", "dogs"):
        for i, image in enumerate(sorted((root / name).iterdir())):
            rows.append(f"images/{name}/{image.name},{name},P{i % 6}")
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return table


def test_train_from_a_grouped_table_keeps_each_patient_in_one_part(tiny_launcher, tmp_path, make_image_folder):
    table = _grouped_table(tmp_path, make_image_folder)
    args = ["train", "--labels", str(table), "--group-by", "patient", "--backbone", "tiny_cnn", "--trainable-blocks",
            "1", "--epochs", "2", "--head-epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "runs")]
    done = subprocess.run([sys.executable, str(tiny_launcher), *args], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "a label table, split automatically" in done.stdout
    assert "Groups: 6 from the table column 'patient'" in done.stdout
    run = next((tmp_path / "runs").glob("*-tiny_cnn"))
    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    parts = {name: {group for _, _, group in split[name]} for name in ("train", "val", "test")}
    assert all(parts.values()) and sum(len(p) for p in parts.values()) == 6  # six patients, each in one part
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["data"]["labels"] == str(table.resolve()) and config["data"]["group_by"] == "patient"
    assert config["data"]["root"] == ""


def test_a_bad_table_is_bad_input_naming_the_line(tmp_path, capsys, make_image_folder):
    table = _grouped_table(tmp_path, make_image_folder)
    table.write_text(table.read_text(encoding="utf-8") + "images/cats/gone.jpg,cats,P1\n", encoding="utf-8")
    assert main(["train", "--labels", str(table), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 26: file 'images/cats/gone.jpg' not found" in err[0]


def test_data_and_labels_together_or_a_column_without_a_table_are_bad_input(tmp_path, capsys, make_image_folder):
    table = _grouped_table(tmp_path, make_image_folder)
    assert main(["train", "--labels", str(table), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not both" in capsys.readouterr().err
    images, out = str(tmp_path / "images"), str(tmp_path / "r")
    assert main(["train", "--data", images, "--group-by", "patient", "--out", out]) == 2
    assert "needs a label table" in capsys.readouterr().err
    assert main(["train", "--data", images, "--group-by", r"re:^cats/(x\d+)", "--out", out]) == 2
    assert "finds no group in 24 of 24 images" in capsys.readouterr().err
