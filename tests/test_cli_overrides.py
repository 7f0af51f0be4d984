"""``tl-desktop train --overrides``: a run after marking images trains on the marked labels, leaves the
excluded image out, lists both in its audit, and never touches the image files; bad marks exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tl_desktop.cli import main
from tl_desktop.config import DataConfig, RunConfig
from tl_desktop.engine.data.overrides import EXCLUDE, RELABEL, add_mark, new_mark
from tl_desktop.engine.workflows.project import create_project


@pytest.fixture
def tiny(tmp_path, tiny_runs):
    from tl_desktop.engine.models.backbones import unregister_backbone

    (tmp_path / "weights").mkdir()
    tiny_runs.register_tiny_backbone(tmp_path / "weights")
    yield
    unregister_backbone(tiny_runs.TINY_NAME)


def _train(images: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(images), "--out", str(out), "--backbone", "tiny_cnn", "--trainable-blocks", "1",
            "--epochs", "1", "--batch-size", "4", "--patience", "0", *extra]


def _stamps(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_run_after_marking_uses_the_marks_and_its_audit_lists_them(tmp_path, tiny, make_image_folder, capsys):
    images = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=32)
    project = create_project(tmp_path / "project", RunConfig(data=DataConfig(root=str(images))))
    add_mark(project.marks_file, new_mark("a/a_000.jpg", RELABEL, "b", note="looks like b"))
    add_mark(project.marks_file, new_mark("b/b_005.jpg", EXCLUDE))
    before = _stamps(images)
    assert main(_train(images, project.runs_dir, "--overrides", str(project.folder))) == 0
    printed = capsys.readouterr().out
    assert "1 image relabelled by you, 1 excluded" in printed and "a/a_000.jpg: a → b" in printed
    run = next(project.runs_dir.iterdir())
    audit = json.loads((run / "audit.json").read_text())
    assert audit["relabelled"] == [["a/a_000.jpg", "a", "b"]] and audit["excluded"] == ["b/b_005.jpg"]
    split = json.loads((run / "split.json").read_text())
    entries = {path: label for part in ("train", "val", "test") for path, label, *_ in split[part]}
    assert entries["a/a_000.jpg"] == split["classes"].index("b") and "b/b_005.jpg" not in entries
    assert json.loads((run / "config.json").read_text())["data"]["overrides"] == str(project.folder)
    assert _stamps(images) == before


def test_bad_marks_exit_2_with_a_message_and_no_run(tmp_path, tiny, make_image_folder, capsys):
    images = make_image_folder(tmp_path, classes={"a": 4, "b": 4}, size=32)
    marks = tmp_path / "overrides.csv"
    add_mark(marks, new_mark("a/a_000.jpg", RELABEL, "c"))
    out = tmp_path / "runs"
    assert main(_train(images, out, "--overrides", str(marks))) == 2
    err = capsys.readouterr().err
    assert "marked with a class these images do not have (a/a_000.jpg → 'c')" in err and "Traceback" not in err
    assert main(_train(images, out, "--overrides", str(tmp_path / "missing.csv"))) == 2
    assert "the overrides file" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
