"""The user's marks (overrides.csv): round trip, relabel and exclude applied by the scan before the split,
a relabel to an unknown class refused, damaged tables refused naming the line, the user's files untouched,
and a project's marks reaching its run configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_desktop.config import DataConfig, RunConfig
from tl_desktop.engine.data.audit import Audit
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.data.overrides import (
    COLUMNS,
    EXCLUDE,
    RELABEL,
    OverridesError,
    add_mark,
    mark_key,
    new_mark,
    read_marks,
    remove_marks,
    write_marks,
)
from tl_desktop.engine.workflows.project import create_project, open_project


def _images(root: Path, per_class: int = 6) -> Path:
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.random.default_rng(10 * c + i).integers(0, 255, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}{i}.png")
    return root


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _labels(scan) -> dict[str, str]:
    split = scan.split
    return {Path(s.path).name: split.classes[s.label] for part in (split.train, split.val, split.test) for s in part}


def test_marks_round_trip_and_a_later_mark_of_the_same_image_replaces_the_first(tmp_path):
    file = tmp_path / "overrides.csv"
    add_mark(file, new_mark("cat/cat1.png", RELABEL, "dog", note="ear shape,\nclearly a dog"))
    add_mark(file, new_mark("dog/dog2.png", EXCLUDE, "ignored label"))
    add_mark(file, new_mark("cat/cat1.png", EXCLUDE))
    marks = read_marks(file)
    assert [(m.path, m.action, m.label) for m in marks] == [("dog/dog2.png", EXCLUDE, ""), ("cat/cat1.png", EXCLUDE, "")]
    assert file.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    add_mark(file, new_mark("cat/cat3.png", RELABEL, "dog", note="ear shape,\nclearly a dog"))
    again = read_marks(file)
    assert again[-1].note == "ear shape, clearly a dog" and again[-1].when  # one line, with the time
    assert [m.path for m in remove_marks(file, {"dog/dog2.png"})] == ["cat/cat1.png", "cat/cat3.png"]
    assert remove_marks(file) == [] and read_marks(file) == []
    assert read_marks(tmp_path / "none.csv") == []


def test_a_mark_key_is_relative_to_the_data_folder_and_absolute_outside_it(tmp_path):
    assert mark_key(tmp_path / "data" / "cat" / "a.png", tmp_path / "data") == "cat/a.png"
    assert mark_key(tmp_path / "elsewhere" / "a.png", tmp_path / "data") == str(tmp_path / "elsewhere" / "a.png")


def test_the_scan_relabels_and_excludes_before_splitting_and_the_audit_lists_it(tmp_path):
    data = _images(tmp_path / "data")
    before = _snapshot(data)
    file = tmp_path / "overrides.csv"
    write_marks(file, [new_mark("cat/cat0.png", RELABEL, "dog"), new_mark("cat/cat1.png", RELABEL, "dog"),
                       new_mark("dog/dog5.png", EXCLUDE), new_mark("cat/gone.png", EXCLUDE)])
    plain = scan_dataset(DataConfig(root=str(data)))
    marked = scan_dataset(DataConfig(root=str(data), overrides=str(file)))
    assert _labels(plain)["cat0.png"] == "cat"
    labels = _labels(marked)
    assert labels["cat0.png"] == labels["cat1.png"] == "dog" and "dog5.png" not in labels
    assert len(labels) == len(_labels(plain)) - 1
    assert marked.audit.class_totals() == {"cat": 4, "dog": 7}
    audit = marked.audit
    assert audit.relabelled == [["cat/cat0.png", "cat", "dog"], ["cat/cat1.png", "cat", "dog"]]
    assert audit.excluded == ["dog/dog5.png"] and audit.unmatched_marks == ["cat/gone.png"]
    assert audit.marks_line() == "2 images relabelled by you, 1 excluded"
    summary = "\n".join(audit.summary_lines())
    assert "2 images relabelled by you, 1 excluded" in summary and "cat/cat0.png: cat → dog" in summary
    assert "1 marked image (in overrides.csv) is no longer among these images" in summary
    restored = Audit.from_dict(audit.to_dict())
    assert (restored.relabelled, restored.excluded) == (audit.relabelled, audit.excluded)
    assert _snapshot(data) == before  # never moved, renamed or changed


def test_a_folder_with_train_and_val_keeps_its_split_and_applies_the_marks(tmp_path):
    for part in ("train", "val"):
        _images(tmp_path / "data" / part, per_class=3)
    file = tmp_path / "overrides.csv"
    write_marks(file, [new_mark("val/cat/cat2.png", RELABEL, "dog"), new_mark("train/dog/dog0.png", EXCLUDE)])
    scan = scan_dataset(DataConfig(root=str(tmp_path / "data"), overrides=str(file)))
    val = {Path(s.path).name: scan.split.classes[s.label] for s in scan.split.val}
    assert val["cat2.png"] == "dog"
    assert "dog0.png" not in {Path(s.path).name for s in scan.split.train}


def test_a_relabel_to_a_class_that_does_not_exist_is_refused(tmp_path):
    data = _images(tmp_path / "data")
    file = tmp_path / "overrides.csv"
    write_marks(file, [new_mark("cat/cat0.png", RELABEL, "horse")])
    with pytest.raises(OverridesError) as caught:
        scan_dataset(DataConfig(root=str(data), overrides=str(file)))
    assert "marked with a class these images do not have (cat/cat0.png → 'horse')" in str(caught.value)
    assert "the classes are 'cat', 'dog'" in str(caught.value)


DAMAGED = [
    ("path,action\ncat/a.png,delete\n", "line 2: the action is 'delete'; it must be relabel or exclude"),
    ("path,action,label\ncat/a.png,relabel,\n", "line 2: cat/a.png is marked relabel without a label"),
    ("file,what\ncat/a.png,exclude\n", "line 1: the header must name the columns"),
    ("path,action\ncat/a.png,exclude\n\ncat/a.png,exclude\n", "line 4: cat/a.png is marked again (first on line 2)"),
    (",exclude\n".join(["path,action\n", ""]), "line 2: the path is empty"),
]


@pytest.mark.parametrize("text,message", DAMAGED, ids=["action", "no-label", "header", "twice", "empty-path"])
def test_a_damaged_overrides_file_gives_a_clear_message(tmp_path, text, message):
    data = _images(tmp_path / "data", per_class=2)
    file = tmp_path / "marks.csv"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(OverridesError) as caught:
        scan_dataset(DataConfig(root=str(data), overrides=str(file)))
    assert message in str(caught.value) and str(file) in str(caught.value)


def test_an_overrides_file_that_is_not_text_or_missing_is_refused(tmp_path):
    data = _images(tmp_path / "data", per_class=2)
    binary = tmp_path / "marks.csv"
    binary.write_bytes(b"\xff\xfe\x00path\x81\x9f")
    with pytest.raises(OverridesError, match="save it as UTF-8 text"):
        scan_dataset(DataConfig(root=str(data), overrides=str(binary)))
    with pytest.raises(OverridesError, match="the overrides file .* does not exist"):
        scan_dataset(DataConfig(root=str(data), overrides=str(tmp_path / "nope.csv")))
    with pytest.raises(OverridesError, match="has no overrides.csv"):
        scan_dataset(DataConfig(root=str(data), overrides=str(tmp_path)))


def test_a_project_keeps_its_marks_and_gives_them_to_its_runs(tmp_path):
    data = _images(tmp_path / "data", per_class=3)
    project = create_project(tmp_path / "project", RunConfig(data=DataConfig(root=str(data))))
    assert project.run_config().data.overrides == ""  # nothing marked yet
    add_mark(project.marks_file, new_mark(mark_key(data / "dog" / "dog1.png", project.data_base()), EXCLUDE))
    reopened = open_project(project.folder)
    config = reopened.run_config()
    assert config.data.overrides == str(project.marks_file)
    stored = json.loads((project.folder / "project.json").read_text(encoding="utf-8"))
    assert stored["settings"]["data"]["overrides"] == ""  # the project keeps the table, not a path to it
    scan = scan_dataset(config.data)
    assert scan.audit.excluded == ["dog/dog1.png"]
    assert os.path.isfile(data / "dog" / "dog1.png")


def test_a_label_tables_marks_are_relative_to_the_tables_folder(tmp_path):
    data = _images(tmp_path / "data", per_class=4)
    rows = ["path,label"] + [f"{p.relative_to(data).as_posix()},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    table = data / "labels.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    file = tmp_path / "overrides.csv"
    write_marks(file, [new_mark(mark_key(data / "dog" / "dog3.png", table.parent), RELABEL, "cat"),
                       new_mark("cat/cat2.png", EXCLUDE)])
    scan = scan_dataset(DataConfig(labels=str(table), overrides=str(file)))
    labels = _labels(scan)
    assert labels["dog3.png"] == "cat" and "cat2.png" not in labels
    assert scan.audit.relabelled == [["dog/dog3.png", "dog", "cat"]] and scan.audit.excluded == ["cat/cat2.png"]
