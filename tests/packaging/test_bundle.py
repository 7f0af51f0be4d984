"""Build the PyInstaller bundle and run it: the frozen self-test (with no network) and the window.

Slow (a Linux build with CUDA torch takes 15-30 minutes and ~10 GB of disk), so deselected by
default: ``python -m pytest -m packaging tests/packaging``. Needs ``pip install -e ".[package]"``.
Set ``TL_DESKTOP_DIST_DIR`` to keep the bundle and the archive in that folder afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import build  # noqa: E402  packaging/build.py

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """A fresh build and its archive."""
    pytest.importorskip("PyInstaller", reason='install the packaging extra: pip install -e ".[package]"')
    dist = Path(os.environ.get("TL_DESKTOP_DIST_DIR") or tmp_path_factory.mktemp("dist"))
    work = tmp_path_factory.mktemp("pyinstaller-work")
    try:
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--dist-dir", str(dist),
                        "--work-dir", str(work)], check=True, cwd=ROOT, timeout=3000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dist


def _frozen_env(tmp_path: Path) -> dict[str, str]:
    """No inherited Python settings: the bundle must be self-contained."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), TMPDIR=str(tmp_path),
               TL_DESKTOP_CACHE_DIR=str(tmp_path / "cache"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    return env


def _without_network(command: list[str]) -> list[str]:
    """Run in a new network namespace (no interfaces but loopback) where the system allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *command]
    pytest.skip("cannot run without network here (unshare -n is not permitted)")


def test_archive_holds_the_bundle(dist):
    archives = sorted(dist.glob(f"{build.APP_NAME}-*"))
    assert archives, f"no archive in {dist}"
    archive = archives[-1]
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            assert first is not None and first.name == build.bundle_dir(dist).name
    else:
        with zipfile.ZipFile(archive) as zf:
            assert zf.namelist()[0].startswith(build.bundle_dir(dist).name)


def test_frozen_self_test_passes_offline(dist, tmp_path):
    command = _without_network([str(build.executable(dist)), "--self-test"])
    done = subprocess.run(command, capture_output=True, text=True, env=_frozen_env(tmp_path), timeout=900)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "frozen bundle" in done.stdout
    assert "weights bundled" in done.stdout
    assert "self-test passed" in done.stdout


def test_frozen_window_shows_then_quits(dist, tmp_path):
    env = _frozen_env(tmp_path) | {"TL_DESKTOP_QUIT_AFTER_SHOW": "1"}
    command = _without_network([str(build.executable(dist, console=True))])
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "window shown" in done.stdout + done.stderr


def test_window_start_opens_no_network_connection(dist, tmp_path):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "connect.trace"
    env = _frozen_env(tmp_path) | {"TL_DESKTOP_QUIT_AFTER_SHOW": "1"}
    command = [strace, "-f", "-qq", "-e", "trace=connect,sendto", "-o", str(trace), str(build.executable(dist))]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    internet = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    assert not internet, "the app tried to reach the network at start-up:\n" + "\n".join(internet[:10])
