"""Time from launching a fresh process to a visible window (median of several launches).

    xvfb-run -a python benchmarks/gui_startup.py            # or QT_QPA_PLATFORM=offscreen

Each launch is a new interpreter running the real entry point (``tl_desktop.cli.main(["gui",
"--quit-after-show"])``), which prints a line once the window is exposed on screen and quits. The
time counts interpreter start, imports, building every page and the first paint. The child also
reports whether torch or matplotlib were imported before the window appeared (they must not be).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys
from tl_desktop.cli import main
import tl_desktop.gui.app as app
shown = app._quit_when_exposed
def report(qapp, window):
    handle = window.windowHandle()
    if handle is not None and handle.isExposed():
        heavy = sorted(m for m in ("torch", "matplotlib", "timm") if m in sys.modules)
        print("heavy-before-window:", ",".join(heavy) or "none", flush=True)
    shown(qapp, window)
app._quit_when_exposed = report
raise SystemExit(main(["gui", "--quit-after-show"]))
"""


def launch_once(env: dict[str, str]) -> tuple[float, str]:
    """Seconds until the child says the window is shown, and what heavy modules it had loaded."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=env)
    heavy, elapsed = "?", None
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("heavy-before-window:"):
            heavy = line.split(":", 1)[1].strip()
        if "window shown" in line:
            elapsed = time.perf_counter() - start
            break
    child.wait(60)
    if elapsed is None:
        raise RuntimeError(f"the window never appeared (exit code {child.returncode})")
    return elapsed, heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "xcb" if env.get("DISPLAY") else "offscreen")
    # A throw-away settings folder, so the user's saved geometry and folders play no part.
    env["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="tl-desktop-bench-")
    launch_once(env)  # warm the OS file cache once; not counted
    times, heavy = [], set()
    for _ in range(args.runs):
        seconds, loaded = launch_once(env)
        times.append(seconds)
        heavy.add(loaded)
        print(f"  window visible after {seconds:.2f} s", flush=True)
    print(f"platform={env['QT_QPA_PLATFORM']}  runs={args.runs}  median={statistics.median(times):.2f} s  "
          f"min={min(times):.2f} s  max={max(times):.2f} s  heavy modules before the window: {', '.join(sorted(heavy))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
