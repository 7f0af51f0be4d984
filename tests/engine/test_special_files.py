"""The scan reads plain files only: a pipe, a link to a device or a link out of the data folder is
reported and skipped, never opened (a pipe would block the scan forever, /dev/zero would never end)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tl_desktop.config import DataConfig
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.data.scanning import not_a_plain_file

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX pipes and links")


def _scan_within(root: Path, seconds: float = 60):
    """Scan ``root`` on a thread; fail (rather than hang the suite) if it does not finish in time."""
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(scan=scan_dataset(DataConfig(root=str(root)))),
                              daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the scan did not finish: it read a file that never ends"
    return outcome["scan"]


def test_pipes_devices_and_outside_links_are_reported_not_read(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"healthy": 6, "sick": 6}, size=32)
    os.mkfifo(root / "healthy" / "p.jpg")
    os.symlink("/dev/zero", root / "sick" / "zero.png")
    outside = tmp_path / "elsewhere.jpg"
    shutil.copyfile(next((root / "sick").glob("*.jpg")), outside)
    os.symlink(outside, root / "sick" / "outside.jpg")
    inside = next((root / "healthy").glob("*.jpg"))
    os.symlink(inside, root / "healthy" / "inside-link.jpg")

    scan = _scan_within(root)
    reasons = dict(scan.audit.unreadable)
    assert "not a plain file" in reasons[str(root / "healthy" / "p.jpg")]
    assert "not a plain file" in reasons[str(root / "sick" / "zero.png")]
    assert f"a link to {outside.resolve()}, outside the data folder" in reasons[str(root / "sick" / "outside.jpg")]
    used = {s.path for s in scan.split.train + scan.split.val + scan.split.test}
    assert str(root / "healthy" / "inside-link.jpg") in used  # a link that stays inside is an image like any
    assert len(used) == 13


def test_a_plain_file_has_no_reason_to_be_skipped(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    assert not_a_plain_file(str(image), tmp_path) == ""
    assert not_a_plain_file(str(tmp_path / "missing.jpg")).startswith("cannot be read")
