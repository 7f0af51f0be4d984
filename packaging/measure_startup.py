"""Time from launching the app to its window being shown, on a real X server (Xvfb).

    python packaging/measure_startup.py dist/tl-desktop/tl-desktop          # the frozen app
    python packaging/measure_startup.py .venv/bin/tl-desktop --runs 5       # from source

Each run starts the executable with ``TL_DESKTOP_QUIT_AFTER_SHOW=1`` and stops the clock when it
prints that the window is shown (the app prints it from the event loop, after ``show()``). Xvfb must
be installed (``apt-get install xvfb``); the xcb platform plugin needs libxcb-cursor0,
libxcb-icccm4 and libxcb-keysyms1 on the system.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHOWN_MARKER = "window shown"
DISPLAY = ":97"


def time_to_window(executable: Path, env: dict[str, str], timeout: float = 300.0) -> float:
    """Seconds from process start until the window-shown line appears on its output."""
    started = time.perf_counter()
    process = subprocess.Popen([str(executable)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    try:
        for line in process.stdout:
            if SHOWN_MARKER in line:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                break
        raise SystemExit(f"{executable} exited with status {process.wait()} before showing its window")
    finally:
        process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    """Start Xvfb, time several launches (the first one is cold), print each and the median."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("executable", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("Xvfb is not installed (apt-get install xvfb)")
    server = subprocess.Popen([xvfb, DISPLAY, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as home:
            env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
            env.update(DISPLAY=DISPLAY, HOME=home, TL_DESKTOP_QUIT_AFTER_SHOW="1", QT_QPA_PLATFORM="xcb")
            times = [time_to_window(args.executable, env) for _ in range(args.runs)]
    finally:
        server.terminate()
        server.wait(timeout=10)
    for index, seconds in enumerate(times, start=1):
        print(f"run {index}{' (cold: first start, fresh home folder)' if index == 1 else ''}: {seconds:.2f} s")
    print(f"median: {statistics.median(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
