"""Cross-validation benchmark: k-fold head-only CV against one head-only run, side by side in one invocation.

Both run through the CLI (``tl-desktop train`` and ``tl-desktop cv``) in fresh processes, each with its own
empty cache folder (a cold cache: the frozen features are computed inside the measured time), on the
same data, backbone (EfficientNet-Lite0), epochs and seed. The target: k-fold CV ≤ 2× one run, thanks to
the shared feature pool (k separate runs would take about k×). Prints the wall times, their ratio and the
CV mean ± sd of each figure across folds, and the pooled out-of-fold accuracy.

Usage::

    python benchmarks/cv.py [--dataset flowers12] [--folds 5] [--epochs 10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(args: list[str], cache: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tl_desktop", *args], capture_output=True, text=True,
                          env={**os.environ, "TL_DESKTOP_CACHE_DIR": str(cache)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="flowers12")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = DATA / args.dataset
    common = ["--data", str(data), "--trainable-blocks", "0", "--epochs", str(args.epochs), "--seed", "0"]
    one, cv, summary = [], [], {}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            base = Path(work) / f"r{repeat}"
            seconds, _ = timed(["train", *common, "--out", str(base / "train")], base / "cache-train")
            one.append(seconds)
            seconds, _ = timed(["cv", *common, "--folds", str(args.folds), "--out", str(base / "cv")], base / "cache-cv")
            cv.append(seconds)
            (folder,) = (base / "cv").iterdir()
            summary = json.loads((folder / "summary.json").read_text())
            print(f"repeat {repeat + 1}: one run {one[-1]:.1f} s, {args.folds}-fold CV {cv[-1]:.1f} s", flush=True)
    from tl_desktop.engine.evaluation.folds import AcrossFolds, summary_text

    one_s, cv_s = statistics.median(one), statistics.median(cv)
    ratios = ", ".join(f"{c / o:.2f}×" for o, c in zip(one, cv))
    print(f"\n{args.dataset}, head-only, {args.epochs} epochs, cold cache, medians of {args.repeats}:")
    print(f"| measure | value |\n|---|---|\n| one run | {one_s:.1f} s |\n| {args.folds}-fold CV | {cv_s:.1f} s |")
    print(f"| CV / one run, medians (target ≤ 2×) | {cv_s / one_s:.2f}× (each repeat: {ratios}) |")
    for name, found in summary.get("across_folds", {}).items():
        if not name.startswith("recall:"):
            print(f"| across folds | {summary_text(name, AcrossFolds.from_dict(found))} |")
    oof = summary.get("out_of_fold", {})
    if oof.get("accuracy") is not None:
        ci = oof.get("intervals", {}).get("accuracy", {})
        print(f"| pooled out-of-fold accuracy | {100 * oof['accuracy']:.1f}% "
              f"(95% CI {100 * ci.get('low', 0):.1f}–{100 * ci.get('high', 0):.1f}%) |")


if __name__ == "__main__":
    main()
