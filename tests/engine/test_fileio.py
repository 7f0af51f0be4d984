"""Atomic writes: all-or-nothing, and the result is readable like any new file."""

import os

import pytest

from tl_desktop.fileio import DiskWriteError, atomic_write_text, atomic_writer


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as handle:
            handle.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_has_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = tmp_path / "report.html"
        atomic_write_text(target, "x")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644


def test_unwritable_folder_raises_disk_write_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DiskWriteError):
        atomic_write_text(blocker / "out.json", "x")
