"""tables.py and scanning a label table: every bad-table case names its line; good tables train like folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_desktop.config import ConfigError, DataConfig
from tl_desktop.engine.data.dataset import DatasetSplit, scan_dataset
from tl_desktop.engine.data.scanning import DataError
from tl_desktop.engine.data.tables import TableError, read_table


def write_picture(path: Path, seed: int) -> None:
    """A 16x16 noise picture: equal seeds give identical files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)


def _images(folder: Path, count: int = 4) -> list[str]:
    """``count`` images per class a/b under ``folder/img``; returns their names relative to ``folder``."""
    names = []
    for c, label in enumerate("ab"):
        for i in range(count):
            write_picture(folder / "img" / f"{label}{i}.png", 100 * c + i)
            names.append(f"img/{label}{i}.png")
    return names


def _table(folder: Path, text: str, name: str = "labels.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path, group_column: str = "") -> list[tuple[int, str]]:
    with pytest.raises(TableError) as caught:
        read_table(path, group_column)
    return caught.value.problems


def test_good_table_reads_relative_and_absolute_paths_tsv_and_bom(tmp_path):
    _images(tmp_path, 1)
    absolute = (tmp_path / "img" / "b0.png").resolve()
    table = read_table(_table(tmp_path, f"\ufeffPath\tLabel\tgroup\nimg/a0.png\ta\tP1\n{absolute}\tb\t\n", "t.tsv"))
    assert [(r.line, Path(r.path).name, r.label, r.group) for r in table.rows] == \
        [(2, "a0.png", "a", "P1"), (3, "b0.png", "b", "")]
    assert table.group_column == "group" and not table.has_split
    semicolons = read_table(_table(tmp_path, "path;label\nimg/a0.png;a\n", "semi.csv"))
    assert semicolons.rows[0].label == "a"


@pytest.mark.parametrize(("text", "line", "phrase"), [
    ("path,label\nimg/a0.png,a\nimg/nothere.png,b\n", 3, "file 'img/nothere.png' not found"),
    ("path,label\nimg/a0.png,\n", 2, "the label is empty"),
    ("path,label\n,a\n", 2, "the path is empty"),
    ("path,label,split\nimg/a0.png,a,train\nimg/b0.png,b,holdout\n", 3,
     "unknown split 'holdout'; use train, val or test"),
    ("path,label\nimg/a0.png,a\nimg/b0.png,b\nimg/a0.png,b\n", 4,
     "is also on line 2 with another label ('a' there, 'b' here)"),
    ("path,label,group\nimg/a0.png,a,P1\n./img/a0.png,a,P2\n", 3, "is also on line 2 with another group or split"),
    ("file,label\nimg/a0.png,a\n", 1, "the header has no 'path' column"),
    ("path,class\nimg/a0.png,a\n", 1, "the header has no 'label' column"),
    ("path,label\nimg/a0.png,a,extra\n", 2, "has 3 fields, the header has 2"),
    ("path,label\nimg,a\n", 2, "'img' is a folder"),
    ("path,label\nlabels.csv,a\n", 2, "'labels.csv' is not a supported image file"),
    ("path,label,label\nimg/a0.png,a,a\n", 1, "the header names 'label' twice"),
    ("path,label\n", 1, "the table names no images"),
    ("\n\n", 1, "the table is empty"),
])
def test_every_bad_table_case_names_its_line(tmp_path, text, line, phrase):
    _images(tmp_path, 1)
    problems = _problems(_table(tmp_path, text))
    assert any(n == line and phrase in p for n, p in problems), problems


def test_all_problems_are_collected_and_the_message_counts_the_rest(tmp_path):
    _images(tmp_path, 1)
    path = _table(tmp_path, "path,label\nimg/x.png,a\nimg/a0.png,\nimg/y.png,b\n")
    with pytest.raises(TableError) as caught:
        read_table(path)
    assert [n for n, _ in caught.value.problems] == [2, 3, 4]
    message = str(caught.value)
    assert message.startswith(f"{path.resolve()}, line 2: file 'img/x.png' not found")
    assert "(2 more problems, on lines 3, 4)" in message and "\n" not in message


def test_a_missing_group_column_and_non_utf8_text_are_refused(tmp_path):
    _images(tmp_path, 1)
    path = _table(tmp_path, "path,label\nimg/a0.png,a\n")
    assert _problems(path, "patient") == \
        [(1, "the table has no column 'patient' to take groups from (its columns: path, label)")]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label\nimg/a0.png,caf\xe9\n".encode("latin-1"))
    assert _problems(latin)[0][0] == 2 and "not UTF-8" in _problems(latin)[0][1]
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "none.csv")


def test_a_repeated_row_that_agrees_is_used_once_with_a_note(tmp_path):
    _images(tmp_path, 1)
    table = read_table(_table(tmp_path, "path,label\nimg/a0.png,a\nimg/a0.png,a\nimg/b0.png,b\n"))
    assert len(table.rows) == 2 and "1 rows repeat a file" in table.notes[0]


def test_scanning_a_table_splits_it_and_split_json_keeps_groups(tmp_path):
    names = _images(tmp_path, 6)
    rows = [f"{n},{'cat' if Path(n).name.startswith('a') else 'dog'},P{i % 5}" for i, n in enumerate(names)]
    table = _table(tmp_path, "path,label,group\n" + "\n".join(rows) + "\n")
    result = scan_dataset(DataConfig(labels=str(table), seed=3))
    split = result.split
    assert split.classes == ["cat", "dog"] and split.layout == "table" and split.root == str(tmp_path.resolve())
    parts = {name: {s.group for s in getattr(split, name)} for name in ("train", "val", "test")}
    assert parts["train"] and parts["val"] and parts["test"]
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"])
    assert not (parts["val"] & parts["test"])
    raw = json.loads(json.dumps(split.to_dict()))
    assert raw["train"][0][0].startswith("img/") and len(raw["train"][0]) == 3
    assert DatasetSplit.from_dict(raw) == split
    assert result.audit.leakage.group_count == 5 and "table column 'group'" in result.audit.leakage.group_source
    lines = result.audit.summary_lines()
    assert lines[0] == f"Data: {table.resolve()} (a label table, split automatically)"
    assert any(line.startswith("Groups: 5 from") for line in lines)


def test_old_split_json_without_groups_still_loads(tmp_path):
    raw = {"root": str(tmp_path), "classes": ["a", "b"], "train": [["a/x.png", 0]], "val": [["b/y.png", 1]], "test": []}
    split = DatasetSplit.from_dict(raw)
    assert split.train[0].group == "" and split.val[0].label == 1


def test_a_table_split_column_is_kept_and_a_group_in_two_parts_is_warned(tmp_path):
    names = _images(tmp_path, 4)
    parts = ["train", "train", "val", "test"] * 2
    rows = [f"{n},{Path(n).name[0]},{'P1' if i in (0, 2) else f'Q{i}'},{parts[i]}" for i, n in enumerate(names)]
    table = _table(tmp_path, "path,label,group,split\n" + "\n".join(rows) + "\n")
    result = scan_dataset(DataConfig(labels=str(table)))
    assert result.split.layout == "table-split"
    assert [Path(s.path).name for s in result.split.val] == ["a2.png", "b2.png"]
    assert result.audit.leakage.straddling_groups == ["P1"]
    assert any("'P1'" in w and "more than one of train/val/test" in w for w in result.audit.warnings)


def test_a_table_with_one_label_or_a_folder_and_a_table_are_refused(tmp_path):
    _images(tmp_path, 1)
    table = _table(tmp_path, "path,label\nimg/a0.png,a\nimg/b0.png,a\n")
    with pytest.raises(DataError, match="every row has the label 'a'; at least two classes"):
        scan_dataset(DataConfig(labels=str(table)))
    with pytest.raises(ConfigError, match="not both"):
        DataConfig(root=str(tmp_path), labels=str(table)).validate()


def test_the_report_says_the_split_was_made_by_group_from_the_table(tmp_path):
    from types import SimpleNamespace

    from tl_desktop.config import RunConfig
    from tl_desktop.report.provenance import dataset_blocks

    names = _images(tmp_path, 6)
    rows = [f"{n},{Path(n).name[0]},P{i % 5}" for i, n in enumerate(names)]
    table = _table(tmp_path, "path,label,group\n" + "\n".join(rows) + "\n")
    cfg = DataConfig(labels=str(table), seed=4)
    blocks = dataset_blocks(SimpleNamespace(config=RunConfig(data=cfg), audit=scan_dataset(cfg).audit))
    assert blocks[0].text.startswith(f"Images from {table.resolve()}. Split automatically by group "
                                     "(the table column 'group'), with seed 4: whole groups")
    assert any(item.startswith("Groups: 5 from the table column 'group'") for item in blocks[-1].items)
