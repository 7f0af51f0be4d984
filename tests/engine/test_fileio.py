"""Atomic writes: all-or-nothing, and the result is readable like any new file."""

import os
import time

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


def test_data_is_flushed_and_fsynced_before_the_rename(tmp_path, monkeypatch):
    """A crash right after the rename must find the whole new file on disk, not an empty one."""
    target = tmp_path / "model.tlmodel"
    payload = b"x" * 1000  # well below the buffer size, so nothing reaches the file without a flush
    calls: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_size))  # what the disk would hold at this moment
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_writer(target) as handle:
        handle.write(payload)
        assert calls == []  # nothing is synced or renamed while the caller still writes
    assert calls == [("fsync", len(payload)), ("replace", len(payload))]
    assert target.read_bytes() == payload


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    attempts, sleeps = [], []

    def refuse(src, dst):
        attempts.append(dst)
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(time, "sleep", sleeps.append)  # record the waits instead of waiting 1 s
    with pytest.raises(DiskWriteError, match="out.json"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert len(attempts) == 5 and sleeps == pytest.approx([0.1, 0.2, 0.3, 0.4])  # then it gives up


def test_a_rename_held_up_for_a_moment_is_retried(tmp_path, monkeypatch):
    """On Windows a virus scanner can hold the destination open for a moment."""
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    real_replace, attempts, sleeps = os.replace, [], []

    def busy_twice(src, dst):
        attempts.append(dst)
        if len(attempts) <= 2:
            raise PermissionError(13, "The file is in use by another process", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", busy_twice)
    monkeypatch.setattr(time, "sleep", sleeps.append)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and len(attempts) == 3
    assert sleeps == pytest.approx([0.1, 0.2])
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_the_callers_error_surfaces_even_when_the_temp_file_is_already_gone(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic_writer(target) as handle:
            handle.write(b"half")
            for leftover in tmp_path.iterdir():  # a cleaner removed the temporary file meanwhile
                leftover.unlink()
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []
