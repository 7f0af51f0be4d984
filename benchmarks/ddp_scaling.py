"""Data-parallel scaling: the same run with 1 process and with N processes under torchrun, side by side.

Runs ``tl-desktop train --config run.json`` as a user would, once as one process (all CPU threads) and
once as ``python -m torch.distributed.run --nproc-per-node N -m tl_desktop train --config run.json``
(torchrun gives each rank one thread), each ``--repeats`` times with a cold feature cache, on a real
data set (flowers12 by default) with EfficientNet-Lite0. The recipe: one head epoch on cached pooled
features, then the last block fine-tuned on cached boundary activations, no augmentation.

Reported (medians), from each run's ``events.jsonl`` and wall clock:

- training images/s: training images x epochs / the epochs' seconds (validation included);
- preparing images/s: (training + validation images) / (the run's time before its first epoch),
  where the ranks compute the frozen part's outputs in shards;
- wall seconds of the whole command (interpreter start, torchrun's rendezvous included);
- accuracy match: validation accuracy after the head epoch (equal within float tolerance: the same
  global batches and loss), and the best validation accuracy (the fine-tuned block's BatchNorm
  statistics are per rank, so it may differ slightly).

On a CPU-only machine the processes share its cores: expect overhead, not a speed-up (each rank has
fewer threads and they exchange gradients every step). On a multi-GPU server (``--device cuda``, one
process per GPU) the same script shows the scaling.

Usage::

    python benchmarks/ddp_scaling.py [--dataset flowers12] [--processes 2] [--epochs 3] [--batch-size 32]
        [--repeats 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speed import BACKBONE, DATA_ROOT, print_tables

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_config(root: Path, out: Path, epochs: int, batch_size: int, device: str) -> RunConfig:
    return RunConfig(data=DataConfig(root=str(root), val_fraction=0.15, test_fraction=0.0),
                     model=ModelConfig(backbone=BACKBONE, trainable_blocks=1, dropout=0.0),
                     train=TrainConfig(epochs=epochs, head_epochs=1, batch_size=batch_size, augmentation="none",
                                       cached_views=1, early_stopping_patience=0, device=device),
                     out_dir=str(out))


def one_run(config_file: Path, processes: int, work: Path) -> dict[str, float]:
    """Train once (cold cache) with ``processes`` processes; the measures of that run."""
    env = {**os.environ, "TL_DESKTOP_CACHE_DIR": str(work / "cache"), "TL_DESKTOP_INFERENCE": "torch"}
    if processes == 1:
        env["TL_DESKTOP_NUM_THREADS"] = str(os.cpu_count() or 1)
        command = [sys.executable, "-m", "tl_desktop", "train", "--config", str(config_file)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
                   "--master-port", str(free_port()), "-m", "tl_desktop", "train", "--config", str(config_file)]
    out = Path(RunConfig.load(config_file).out_dir)
    before = set(out.iterdir()) if out.is_dir() else set()
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-3000:]}")
    (run,) = set(out.iterdir()) - before
    events = [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    started_event = next(e for e in events if e["event"] == "FitStarted")
    epochs = [e for e in events if e["event"] == "EpochEnded"]
    ended = events[-1]
    epoch_seconds = sum(e["seconds"] for e in epochs)
    prepare_seconds = ended["seconds"] - epoch_seconds
    return {
        "train img/s": started_event["num_train"] * len(epochs) / epoch_seconds,
        "prepare img/s": (started_event["num_train"] + started_event["num_val"]) / prepare_seconds,
        "wall s": wall,
        "head val acc": epochs[0]["val_accuracy"],
        "head val loss": epochs[0]["val_loss"],
        "best val acc": ended["best_val_accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="flowers12")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    root = DATA_ROOT / args.dataset
    if (root / "train").is_dir():
        root = root / "train"
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tl_ddp_") as tmp:
        work = Path(tmp)
        config_file = work / "run.json"
        run_config(root, work / "runs", args.epochs, args.batch_size, args.device).save(config_file)
        results: dict[int, list[dict[str, float]]] = {1: [], args.processes: []}
        for repeat in range(args.repeats):
            for processes in results:  # alternated, each with its own cold cache
                results[processes].append(one_run(config_file, processes, work / f"r{repeat}p{processes}"))
    medians = {f"{key} ({p} proc)": statistics.median(r[key] for r in runs)
               for p, runs in results.items() for key in runs[0]}
    one, many = (lambda key, p: medians[f"{key} ({p} proc)"]), args.processes
    print(f"{args.dataset}, {BACKBONE}, {os.cpu_count()} CPU cores, device {args.device}, {args.epochs} epochs, "
          f"global batch {args.batch_size}, {args.repeats} repeat(s); load average before/after "
          f"{load_before:.1f}/{os.getloadavg()[0]:.1f} (other work on the machine takes CPU from both sides)")
    print_tables(f"{many} processes against 1", [
        (f"training img/s, {many} proc / 1", one("train img/s", many) / one("train img/s", 1),
         "> 1 on N GPUs; < 1 expected on a shared CPU"),
        (f"preparing img/s, {many} proc / 1", one("prepare img/s", many) / one("prepare img/s", 1), "same"),
        ("head-epoch val accuracy difference", abs(one("head val acc", many) - one("head val acc", 1)), "0"),
        ("head-epoch val loss difference", abs(one("head val loss", many) - one("head val loss", 1)), "< 1e-4"),
        ("best val accuracy difference", abs(one("best val acc", many) - one("best val acc", 1)), "< 0.02"),
    ], medians)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
