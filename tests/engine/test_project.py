"""Projects: create and open, relative and absolute data paths, a moved data folder, damaged project
files, the latest run, the recent list, and a rescan that decodes only what changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_desktop.cli import main
from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data import scanning
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.workflows.project import (
    PROJECT_FILE,
    DataFolderMissing,
    ProjectError,
    create_project,
    latest_run,
    open_project,
    recent_after_opening,
    update_project,
)
from tl_desktop.engine.workflows.project_scan import RECORD_FILE, scan_project


def _write_image(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _config(data: Path) -> RunConfig:
    return RunConfig(data=DataConfig(root=str(data), val_fraction=0.2, test_fraction=0.2, seed=3),
                     model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1), train=TrainConfig(epochs=2, head_epochs=1))


def test_create_then_open_keeps_settings_runs_folder_and_a_relative_data_path(tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path)
    created = create_project(tmp_path / "leaf project", _config(data))
    assert (created.folder / "runs").is_dir()
    stored = json.loads((created.folder / PROJECT_FILE).read_text(encoding="utf-8"))
    assert stored["kind"] == "tl-desktop project" and stored["schema_version"] == 1
    assert stored["data"] == {"kind": "folder", "relative": "../images", "absolute": str(data.resolve())}
    assert stored["settings"]["data"]["root"] == ""  # the path lives in "data" only

    opened = open_project(tmp_path / "leaf project" / PROJECT_FILE)
    assert opened == created and opened.name == "leaf project"
    config = opened.run_config()
    assert config.data.root == str(data.resolve()) and config.out_dir == str(opened.runs_dir)
    assert (config.data.val_fraction, config.data.seed, config.model.trainable_blocks, config.train.epochs) == \
        (0.2, 3, 1, 2)
    with pytest.raises(ProjectError, match="already is a project"):
        create_project(opened.folder)


def test_a_project_inside_its_image_folder_is_refused_before_its_runs_become_a_class(
        tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path)
    with pytest.raises(ProjectError) as caught:
        create_project(data / "project", _config(data))
    assert "lies inside its image folder" in str(caught.value) and not (data / "project").exists()
    beside = create_project(tmp_path / "project", _config(data))
    with pytest.raises(ProjectError) as caught:  # scanning a folder above the project is refused the same way
        scan_project(beside, beside.run_config().replace(data=DataConfig(root=str(tmp_path))))
    assert "lies inside its image folder" in str(caught.value)


def test_a_project_copied_with_its_images_opens_from_the_relative_path(tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path / "here")
    create_project(tmp_path / "here" / "project", _config(data))
    shutil.copytree(tmp_path / "here", tmp_path / "other computer")
    shutil.rmtree(tmp_path / "here")  # the original is gone: only the relative path can lead to the copy
    copy = open_project(tmp_path / "other computer" / "project")
    assert copy.data_path() == (tmp_path / "other computer" / "images").resolve()


def test_a_project_moved_away_from_its_images_finds_them_by_the_absolute_path(tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path / "shared drive")
    create_project(tmp_path / "mine" / "project", _config(data))
    shutil.move(tmp_path / "mine" / "project", tmp_path / "elsewhere")
    assert open_project(tmp_path / "elsewhere").data_path() == data.resolve()


def test_a_moved_data_folder_is_reported_with_its_stored_path_and_its_new_place_is_saved(
        tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path)
    project = create_project(tmp_path / "project", _config(data))
    moved = shutil.move(data, tmp_path / "moved images")
    with pytest.raises(DataFolderMissing, match="data folder missing") as caught:
        open_project(project.folder).run_config()
    assert caught.value.stored == str(data.resolve()) and str(data.resolve()) in str(caught.value)

    config = open_project(project.folder).settings.replace(data=DataConfig(root=str(moved), val_fraction=0.2,
                                                                           test_fraction=0.2, seed=3))
    update_project(open_project(project.folder), config)
    reopened = open_project(project.folder)
    assert reopened.data_path() == Path(moved).resolve() and reopened.data_relative == "../moved images"


@pytest.mark.parametrize(("content", "phrase"), [
    ("{not json", "is damaged (not valid JSON at line 1"),
    (json.dumps({"name": "x", "settings": {}}), "is not a tl-desktop project file"),
    (json.dumps([1, 2]), "is not a tl-desktop project file"),
    (json.dumps({"kind": "tl-desktop project", "schema_version": 9}), "written by a newer tl-desktop (project schema 9"),
    (json.dumps({"kind": "tl-desktop project", "schema_version": "one"}), "its schema_version is 'one'"),
    (json.dumps({"kind": "tl-desktop project", "schema_version": 1, "data": {"kind": "zip"}}),
     "its \"data\" entry must have a kind"),
    (json.dumps({"kind": "tl-desktop project", "schema_version": 1, "settings": {"train": {"epochs": "ten"}}}),
     "has settings that cannot be used"),
])
def test_a_damaged_or_foreign_project_file_is_refused_with_what_is_wrong(tmp_path, content, phrase) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / PROJECT_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(ProjectError) as caught:
        open_project(folder)
    assert phrase in str(caught.value)


def test_a_folder_that_is_no_project_is_named_as_such(tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ProjectError) as caught:
        open_project(tmp_path / "plain")
    assert "is not a project folder (it has no project.json)" in str(caught.value)
    with pytest.raises(ProjectError) as caught:
        open_project(tmp_path / "absent")
    assert str(caught.value).endswith("absent does not exist")


def test_latest_run_is_the_newest_with_a_model_and_the_cli_lists_the_project_runs(tmp_path, capsys) -> None:
    project = create_project(tmp_path / "project")
    assert latest_run(project) is None
    for name, complete in (("20260101-090000-tiny_cnn", True), ("20260103-090000-tiny_cnn", True),
                           ("20260105-090000-tiny_cnn", False)):  # the newest never exported its model
        run = RunFolder(project.runs_dir / name)
        run.path.mkdir()
        if complete:
            run.model_file.write_bytes(b"model")
    assert latest_run(project) == project.runs_dir / "20260103-090000-tiny_cnn"
    assert main(["runs", str(project.folder)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("20260101-090000", "20260103-090000", "20260105-090000"))


def test_recent_list_puts_the_opened_project_first_once(tmp_path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert recent_after_opening([a, b], tmp_path / "b") == [b, a]
    assert len(recent_after_opening([str(tmp_path / str(i)) for i in range(20)], tmp_path / "new")) == 10


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every file the scan really decodes (the real decoder runs; the list only records it)."""
    seen: list[str] = []
    real = scanning.probe_properties

    def recording(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(scanning, "probe_properties", recording)
    return seen


def test_a_rescan_decodes_only_new_and_changed_files_and_matches_a_full_scan(
        tmp_path, make_image_folder, decodes) -> None:
    data = make_image_folder(tmp_path, classes={"a": 6, "b": 6})
    project = create_project(tmp_path / "project", _config(data))
    first = scan_project(project, project.run_config())
    assert (first.reused, first.decoded, len(decodes)) == (0, 12, 12)
    assert (project.folder / RECORD_FILE).is_file()

    decodes.clear()
    again = scan_project(first.project, project.run_config())
    assert (again.reused, again.decoded, decodes) == (12, 0, [])
    assert again.scan.split == first.scan.split

    _write_image(data / "a" / "a_100.jpg", 100)  # new
    changed = data / "b" / "b_001.jpg"
    _write_image(changed, 7)  # new content, a later modification time
    stamp = changed.stat()
    os.utime(changed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 5_000_000_000))
    (data / "a" / "a_002.jpg").unlink()  # removed
    decodes.clear()
    third = scan_project(again.project, project.run_config())
    assert (third.reused, third.decoded, sorted(decodes)) == (10, 2, ["a_100.jpg", "b_001.jpg"])
    full = scan_dataset(project.run_config().data)
    assert third.scan.split == full.split
    assert third.scan.audit.duplicate_groups == full.audit.duplicate_groups
    record = json.loads((project.folder / RECORD_FILE).read_text(encoding="utf-8"))["files"]
    assert "a/a_002.jpg" not in record and "a/a_100.jpg" in record


def test_a_damaged_record_costs_a_full_scan_not_an_error_and_a_moved_folder_keeps_its_record(
        tmp_path, make_image_folder, decodes) -> None:
    data = make_image_folder(tmp_path)
    project = create_project(tmp_path / "project", _config(data))
    scan_project(project, project.run_config())
    (project.folder / RECORD_FILE).write_text("{broken", encoding="utf-8")
    decodes.clear()
    assert scan_project(project, project.run_config()).decoded == 12 and len(decodes) == 12

    moved = shutil.move(data, tmp_path / "new place")  # a move keeps modification times
    relocated = update_project(project, project.settings.replace(data=DataConfig(root=str(moved))))
    decodes.clear()
    rescan = scan_project(relocated, relocated.run_config())
    assert (rescan.reused, decodes) == (12, [])
    other = make_image_folder(tmp_path / "another")  # not the project's data: no record is trusted for it
    assert scan_project(rescan.project, rescan.project.settings.replace(
        data=DataConfig(root=str(other)))).decoded == 12


def test_a_record_that_cannot_be_written_leaves_the_scan_good_and_says_why(tmp_path, make_image_folder) -> None:
    data = make_image_folder(tmp_path)
    project = create_project(tmp_path / "project", _config(data))
    (project.folder / RECORD_FILE).mkdir()  # something that is not a file sits where the record goes
    result = scan_project(project, project.run_config())
    assert len(result.scan.split.train) + len(result.scan.split.val) + len(result.scan.split.test) == 12
    assert "cannot save the scan record of project 'project'" in result.problem
