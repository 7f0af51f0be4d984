"""``tl-desktop cv`` in a subprocess: folds, the summary it prints, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(launcher: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TL_DESKTOP_CACHE_DIR": str(launcher.parent / "cache")}
    return subprocess.run([sys.executable, str(launcher), *args], capture_output=True, text=True, timeout=240, env=env)


def test_cv_runs_every_fold_and_prints_the_summary(tiny_launcher, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 9, "b": 9}, size=40)
    done = run_cli(tiny_launcher, "cv", "--data", str(root), "--backbone", "tiny_cnn", "--trainable-blocks", "0",
                   "--epochs", "2", "--batch-size", "4", "--folds", "3", "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "Fold 3 of 3: held-out accuracy" in done.stdout
    assert "Accuracy" in done.stdout and "95% CI across folds" in done.stdout
    assert "Pooled out-of-fold accuracy" in done.stdout
    (folder,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [
        "audit.json", "cv.json", "fold-1", "fold-2", "fold-3", "folds.csv", "oof_predictions.csv", "summary.json"]
    report = run_cli(tiny_launcher, "report", str(folder), "--bootstrap", "50")
    assert report.returncode == 0, report.stderr
    html = (folder / "report" / "report.html").read_text(encoding="utf-8")
    assert "Cross-validation" in html and "95% interval across folds" in html and "Out-of-fold" in html
    assert (folder / "report" / "report.pdf").stat().st_size > 1000


def test_cv_refuses_bad_folds_before_writing_anything(tiny_launcher, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 4, "b": 4}, size=40)
    out = tmp_path / "runs"
    for folds, message in (("1", "between 2 and 20"), ("9", "groups of images")):
        done = run_cli(tiny_launcher, "cv", "--data", str(root), "--backbone", "tiny_cnn", "--folds", folds,
                       "--out", str(out))
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    missing = run_cli(tiny_launcher, "cv", "--resume", str(tmp_path))
    assert missing.returncode == 2 and "not a cross-validation folder" in missing.stderr


def test_cv_from_a_grouped_table_holds_out_whole_patients(tiny_launcher, tmp_path, make_image_folder):
    import json

    root = make_image_folder(tmp_path, classes={"cats": 12, "dogs": 12}, size=40)
    rows = ["path,label,patient"] + [f"images/{name}/{image.name},{name},P{i % 6}"
                                     for name in ("cats", "dogs") for i, image in enumerate(sorted((root / name).iterdir()))]
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = run_cli(tiny_launcher, "cv", "--labels", str(table), "--group-by", "patient", "--backbone", "tiny_cnn",
                   "--trainable-blocks", "0", "--epochs", "2", "--batch-size", "4", "--folds", "3",
                   "--test-fraction", "0", "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    plan = json.loads((folder / "cv.json").read_text(encoding="utf-8"))
    held = [{group for _, _, group in fold["test"]} for fold in plan["folds"]]
    assert sum(len(h) for h in held) == 6 and set().union(*held) == {f"P{i}" for i in range(6)}
    for fold, patients in zip(plan["folds"], held):  # a patient held out is never trained or validated on
        seen = {group for part in ("train", "val") for _, _, group in fold[part]}
        assert seen.isdisjoint(patients)
