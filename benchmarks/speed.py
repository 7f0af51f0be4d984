"""Speed benchmark: tl_desktop against a plain PyTorch loop, side by side in one process.

For each dataset, on the same backbone (EfficientNet-Lite0 with its ImageNet weights), data, batch
size and epochs:

- head-only training, ``--epochs`` epochs: wall time plain / ours and test accuracy of both. Both
  train on un-augmented images (the evaluation transform), so both compute the same thing; the plain
  loop is the tutorial's (ImageFolder-style dataset decoding every image every epoch, a full forward
  pass per batch, Adam on the head, validation every epoch, best epoch kept). Ours is
  ``Trainer.fit()`` with trainable blocks 0, validation every epoch, and a cold cache.
- head-only wall time / one forward pass over the same (train + validation) images, in inference
  mode and channels_last.
- full fine-tuning throughput (img/s, first batch excluded as warm-up): ours / plain, and ours / a
  compute-only train step on random tensors (channels_last, AdamW).
- predicting a folder (``LoadedModel.predict_paths``) img/s / forward-only on random tensors,
  alternated in one process after a warm-up.
- peak resident memory of each training run, with the default recipe (head, then the last blocks)
  as well.

Every measure runs in a fresh Python process, as a user's run would, so no measure inherits another's
allocator state, warmed-up kernels or memory peak; the processes run one after another, side by side
in one invocation. Throughputs skip the first ``WARMUP_BATCHES`` batches of each process.

Usage::

    python benchmarks/speed.py [--datasets flowers12 potato_leaf] [--max-per-class 40 | --max-per-split 48]
        [--repeats 1]
        [--epochs 10] [--batch-size 32] [--finetune-images 512] [--predict-images 320]

Each measure is repeated ``--repeats`` times; the tables show medians.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import pickle
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.dataset import (
    ImageDataset,
    Sample,
    ScanResult,
    scan_dataset,
)
from tl_desktop.engine.data.preprocess import eval_transform, train_transform
from tl_desktop.engine.models.backbones import create_model, get_backbone_spec
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.runtime.device import prepare_model
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.events import BatchEnded, EpochStarted, Event
from tl_desktop.engine.training.trainer import Trainer

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKBONE = "efficientnet_lite0"
CPU = torch.device("cpu")


# ----- helpers -------------------------------------------------------------------------------------
def limit(samples: list[Sample], per_class: int | None, seed: int = 0) -> list[Sample]:
    """At most ``per_class`` samples of each class (seeded choice), in path order."""
    if per_class is None:
        return list(samples)
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.path):
        by_class[sample.label].append(sample)
    rng = random.Random(seed)
    kept = []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        kept += members[:per_class]
    return sorted(kept, key=lambda s: s.path)


def first_n(samples: list[Sample], count: int, seed: int = 0) -> list[Sample]:
    """A seeded random choice of ``count`` samples."""
    chosen = list(samples)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


def with_split(scan: ScanResult, **parts: list[Sample]) -> ScanResult:
    return dataclasses.replace(scan, split=dataclasses.replace(scan.split, **parts))


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class StepTimer(Callback):
    """Records when each training batch ends, to measure throughput without the warm-up batch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochStarted):
            self.times, self.sizes = [time.perf_counter()], []
        elif isinstance(event, BatchEnded):
            self.times.append(time.perf_counter())


WARMUP_BATCHES = 4  # the first training steps of a process run slower (allocator and oneDNN warm-up)


def throughput(times: list[float], sizes: list[int], warmup: int = WARMUP_BATCHES) -> float:
    """Images per second over the batches after the first ``warmup`` ones (the steady state)."""
    if len(sizes) <= warmup:
        raise ValueError(f"throughput needs more than {warmup} batches: raise --finetune-images or lower --batch-size")
    return sum(sizes[warmup:]) / (times[-1] - times[warmup])


def accuracy(model: torch.nn.Module, samples: list[Sample], batch_size: int) -> float:
    pre = get_backbone_spec(BACKBONE).preprocessing
    loader = DataLoader(ImageDataset(samples, eval_transform(pre)), batch_size=batch_size)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, len(samples))


# ----- the plain loop --------------------------------------------------------------------------------
def plain_head_only(scan: ScanResult, epochs: int, batch_size: int) -> tuple[float, float]:
    """The tutorial's feature-extraction loop: each epoch decodes and forwards every training and
    validation image, and the best validation epoch's weights are kept."""
    torch.manual_seed(0)
    pre = get_backbone_spec(BACKBONE).preprocessing
    started = time.perf_counter()
    model = create_model(BACKBONE, num_classes=len(scan.split.classes), pretrained=True)
    model.set_trainable_blocks(0)
    loader = DataLoader(ImageDataset(scan.split.train, eval_transform(pre)), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    best_acc, best_state = -1.0, copy.deepcopy(model.head.state_dict())
    for _epoch in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        val_acc = accuracy(model, scan.split.val, batch_size)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.head.state_dict())
    model.head.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    return seconds, accuracy(model, scan.split.test, batch_size)


def plain_finetune_throughput(scan: ScanResult, batch_size: int) -> float:
    """The tutorial's full fine-tuning loop (PIL decode + augmentation per item, SGD), img/s."""
    torch.manual_seed(0)
    pre = get_backbone_spec(BACKBONE).preprocessing
    model = create_model(BACKBONE, num_classes=len(scan.split.classes), pretrained=True)
    model.set_trainable_blocks("all")
    model.train()
    loader = DataLoader(ImageDataset(scan.split.train, train_transform(pre, "light")), batch_size=batch_size,
                        shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    times, sizes = [time.perf_counter()], []
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter())
        sizes.append(len(y))
    return throughput(times, sizes)


def compute_only_throughput(num_classes: int, batch_size: int, steps: int) -> float:
    """Train steps on random tensors (channels_last, AdamW, every block trains): the compute ceiling."""
    model = prepare_model(create_model(BACKBONE, num_classes=num_classes, pretrained=True), CPU)
    model.set_trainable_blocks("all")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = torch.nn.CrossEntropyLoss()
    size = get_backbone_spec(BACKBONE).preprocessing.input_size
    x = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,))
    times, sizes = [time.perf_counter()], []
    for _ in range(steps):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter())
        sizes.append(batch_size)
    return throughput(times, sizes)


def forward_pass_seconds(scan: ScanResult, batch_size: int) -> float:
    """One forward pass (decode, eval transform, inference) over the training and validation images."""
    pre = get_backbone_spec(BACKBONE).preprocessing
    started = time.perf_counter()
    model = prepare_model(create_model(BACKBONE, num_classes=len(scan.split.classes), pretrained=True), CPU).eval()
    loader = DataLoader(ImageDataset(scan.split.train + scan.split.val, eval_transform(pre)), batch_size=batch_size)
    with torch.inference_mode():
        for x, _y in loader:
            model(x.contiguous(memory_format=torch.channels_last))
    return time.perf_counter() - started


def forward_only_throughput(model: torch.nn.Module, batch_size: int, images: int) -> float:
    """Inference img/s on random tensors (channels_last): the prediction ceiling."""
    size = get_backbone_spec(BACKBONE).preprocessing.input_size
    x = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    model = prepare_model(model, CPU).eval()
    with torch.inference_mode():
        model(x)
        started = time.perf_counter()
        for _ in range(max(1, images // batch_size)):
            model(x)
    return max(1, images // batch_size) * batch_size / (time.perf_counter() - started)


# ----- ours --------------------------------------------------------------------------------------------
def ours_config(scan: ScanResult, out: Path, **train: object) -> RunConfig:
    trainable = train.pop("trainable_blocks")
    return RunConfig(data=DataConfig(root=scan.split.root), model=ModelConfig(backbone=BACKBONE,
                     trainable_blocks=trainable), train=TrainConfig(**train), out_dir=str(out))


def ours_fit(config: RunConfig, scan: ScanResult, batch_size: int) -> tuple[float, float, Path]:
    """``Trainer.fit()``: wall seconds, test accuracy of the exported model, and the model file."""
    started = time.perf_counter()
    result = Trainer(config, scan=scan).fit()
    seconds = time.perf_counter() - started
    if result.status != "completed" or result.model_path is None:
        raise RuntimeError(f"run ended {result.status}; see {result.run_dir}/events.jsonl")
    return seconds, accuracy(load_bundle(result.model_path).model, scan.split.test, batch_size), result.model_path


def ours_head_only(scan: ScanResult, epochs: int, batch_size: int, out: Path) -> tuple[float, float, Path]:
    config = ours_config(scan, out, trainable_blocks=0, epochs=epochs, head_epochs=epochs, batch_size=batch_size,
                         augmentation="none", early_stopping_patience=0)
    return ours_fit(config, scan, batch_size)


def ours_default_recipe(scan: ScanResult, epochs: int, batch_size: int, out: Path) -> tuple[float, float, Path]:
    """The window's and the command line's defaults: the head first, then the last blocks, augmented."""
    config = RunConfig(data=DataConfig(root=scan.split.root), model=ModelConfig(backbone=BACKBONE),
                       train=TrainConfig(epochs=epochs, head_epochs=min(epochs, TrainConfig.head_epochs),
                                         batch_size=batch_size), out_dir=str(out))
    return ours_fit(config, scan, batch_size)


def ours_finetune_throughput(scan: ScanResult, batch_size: int, out: Path) -> float:
    config = ours_config(scan, out, trainable_blocks="all", epochs=1, head_epochs=0, batch_size=batch_size,
                         augmentation="light", early_stopping_patience=0)
    timer = StepTimer()
    sizes = _batch_sizes(len(scan.split.train), batch_size)
    result = Trainer(config, scan=scan, callbacks=[timer]).fit()
    if result.status != "completed":
        raise RuntimeError(f"fine-tuning run ended {result.status}; see {result.run_dir}/events.jsonl")
    return throughput(timer.times, sizes)


def _batch_sizes(count: int, batch_size: int) -> list[int]:
    sizes = [batch_size] * (count // batch_size) + ([count % batch_size] if count % batch_size else [])
    return sizes[:-1] if sizes and sizes[-1] == 1 and count > batch_size else sizes


def ours_predict_throughput(model_path: str, samples: list[Sample], batch_size: int,
                            rounds: int = 3) -> tuple[float, float]:
    """``predict_paths`` img/s and forward-only img/s, alternated ``rounds`` times after a warm-up of both
    (medians), so neither profits from running later in the process."""
    loaded = load_bundle(model_path)
    paths = [s.path for s in samples]
    loaded.predict_paths(paths[:2 * batch_size], batch_size=batch_size)
    ours, forward = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        loaded.predict_paths(paths, batch_size=batch_size)
        ours.append(len(paths) / (time.perf_counter() - started))
        forward.append(forward_only_throughput(loaded.model, batch_size, len(paths)))
    return statistics.median(ours), statistics.median(forward)


# ----- one measure per process -------------------------------------------------------------------
def run_measure(name: str, state: dict, args: argparse.Namespace) -> dict[str, float | str]:
    """Run measure ``name`` in this process (a child of the benchmark) and return its numbers."""
    scan, ft_scan, batch, epochs, out = state["scan"], state["ft_scan"], args.batch_size, args.epochs, args.out
    if name == "plain-head":
        seconds, acc = plain_head_only(scan, epochs, batch)
        return {"seconds": seconds, "test_acc": acc}
    if name == "forward-pass":
        return {"seconds": forward_pass_seconds(scan, batch)}
    if name in ("ours-head", "ours-default"):
        run = ours_head_only if name == "ours-head" else ours_default_recipe
        seconds, acc, model_path = run(scan, epochs, batch, out)
        return {"seconds": seconds, "test_acc": acc, "model_path": str(model_path)}
    if name == "plain-finetune":
        return {"img_s": plain_finetune_throughput(ft_scan, batch)}
    if name == "ours-finetune":
        return {"img_s": ours_finetune_throughput(ft_scan, batch, out)}
    if name == "compute-finetune":
        steps = max(WARMUP_BATCHES + 2, len(ft_scan.split.train) // batch)
        return {"img_s": compute_only_throughput(len(scan.split.classes), batch, steps)}
    if name == "predict":
        ours, forward = ours_predict_throughput(args.model_path, state["predict"], batch)
        return {"img_s": ours, "forward_img_s": forward}
    raise ValueError(f"unknown measure {name!r}")


def child(name: str, state_file: Path, args: argparse.Namespace, cache_dir: Path, **extra: str) -> dict:
    """Run one measure in a fresh Python process with its own (or a shared, warm) cache folder."""
    command = [sys.executable, __file__, "--measure", name, "--state", str(state_file), "--out", str(args.out),
               "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", value]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = dict(os.environ, TL_DESKTOP_CACHE_DIR=str(cache_dir))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measure {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    full = scan_dataset(DataConfig(root=str(args.data_root / name)))
    per_class = args.max_per_class
    if args.max_per_split is not None:
        per_class = max(1, args.max_per_split // len(full.split.classes))
    scan = with_split(full, train=limit(full.split.train, per_class), val=limit(full.split.val, per_class),
                      test=limit(full.split.test, per_class))
    ft_scan = with_split(scan, train=first_n(full.split.train, args.finetune_images),
                         val=first_n(full.split.val, args.batch_size))
    split = scan.split
    print(f"== {name}: {len(split.classes)} classes; train {len(split.train)}, val {len(split.val)}, "
          f"test {len(split.test)}; fine-tuning on {len(ft_scan.split.train)}; batch {args.batch_size}", flush=True)
    state_file = work / f"{name}-state.pickle"
    state_file.write_bytes(pickle.dumps({"scan": scan, "ft_scan": ft_scan, "predict": first_n(
        full.split.test + full.split.val, args.predict_images)}))
    fresh = Path(tempfile.mkdtemp(prefix="caches-", dir=work))  # cold caches for every repeat
    caches = [fresh / f"cache-{index}" for index in range(4)]
    row: dict[str, float] = {}
    log = _printer(row)
    plain = child("plain-head", state_file, args, caches[0])
    log("plain head-only s", plain["seconds"])
    log("plain head-only test acc", plain["test_acc"])
    log("peak RSS, plain head-only training (GB)", plain["peak_rss"] / 1024**3)
    # The forward pass is timed right before and right after our run (the machine may be shared).
    forward_before = child("forward-pass", state_file, args, caches[0])["seconds"]
    ours = child("ours-head", state_file, args, caches[1])  # cold cache
    log("ours head-only s (cold cache)", ours["seconds"])
    log("ours head-only test acc", ours["test_acc"])
    log("peak RSS, ours head-only training (GB)", ours["peak_rss"] / 1024**3)
    forward_after = child("forward-pass", state_file, args, caches[0])["seconds"]
    log("one forward pass s", (forward_before + forward_after) / 2)
    log("ours head-only s (warm cache)", child("ours-head", state_file, args, caches[1])["seconds"])
    default = child("ours-default", state_file, args, caches[2])
    log("ours default recipe s (cold cache)", default["seconds"])
    log("ours default recipe test acc", default["test_acc"])
    log("peak RSS, ours default recipe training (GB)", default["peak_rss"] / 1024**3)
    plain_ft = child("plain-finetune", state_file, args, caches[0])
    log("plain fine-tune img/s", plain_ft["img_s"])
    log("peak RSS, plain full fine-tuning (GB)", plain_ft["peak_rss"] / 1024**3)
    ours_ft = child("ours-finetune", state_file, args, caches[3])
    log("ours fine-tune img/s", ours_ft["img_s"])
    log("peak RSS, ours full fine-tuning (GB)", ours_ft["peak_rss"] / 1024**3)
    log("compute-only train img/s", child("compute-finetune", state_file, args, caches[0])["img_s"])
    predicted = child("predict", state_file, args, caches[0], model_path=str(ours["model_path"]))
    log("ours predict img/s", predicted["img_s"])
    log("forward-only img/s", predicted["forward_img_s"])
    return row


def _printer(row: dict[str, float]) -> Callable[[str, float], None]:
    def log(label: str, value: float) -> None:
        row[label] = value
        print(f"  {label}: {value:.3f}", flush=True)

    return log


def report(name: str, runs: list[dict[str, float]]) -> None:
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    ratios = [
        ("head-only 10 epochs: wall time plain / ours (cold cache)", med["plain head-only s"]
         / med["ours head-only s (cold cache)"], ">= 10x"),
        ("head-only: test accuracy ours - plain (points)", 100 * (med["ours head-only test acc"]
         - med["plain head-only test acc"]), ">= 0"),
        ("head-only wall time / one forward pass", med["ours head-only s (cold cache)"] / med["one forward pass s"],
         "<= 1.5x"),
        ("full fine-tuning img/s: ours / plain", med["ours fine-tune img/s"] / med["plain fine-tune img/s"], ">= 1.8x"),
        ("full fine-tuning img/s: ours / compute-only", med["ours fine-tune img/s"] / med["compute-only train img/s"],
         ">= 0.9x"),
        ("full fine-tuning img/s: plain / compute-only", med["plain fine-tune img/s"]
         / med["compute-only train img/s"], "(context)"),
        ("predict a folder img/s: ours / forward-only", med["ours predict img/s"] / med["forward-only img/s"],
         ">= 0.9x"),
        ("peak RSS, default recipe training (GB)", med["peak RSS, ours default recipe training (GB)"], "< 3"),
        ("peak RSS, head-only training (GB)", med["peak RSS, ours head-only training (GB)"], "< 3"),
        ("peak RSS, full fine-tuning (GB)", med["peak RSS, ours full fine-tuning (GB)"], "< 3"),
    ]
    print_tables(f"{name} (medians of {len(runs)} run(s))", ratios, med)


def print_tables(title: str, ratios: list[tuple[str, float, str]], medians: dict[str, float]) -> None:
    """The ratios against their targets, then every raw median, as Markdown tables."""
    print(f"\n### {title}\n")
    print("| measure | value | target |\n|---|---|---|")
    for label, value, target in ratios:
        print(f"| {label} | {value:.2f} | {target} |")
    print("\n| raw measure | median |\n|---|---|")
    for key, value in medians.items():
        print(f"| {key} | {value:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["flowers12", "potato_leaf"])
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--max-per-class", type=int, default=None, help="subsample each split to this many per class")
    parser.add_argument("--max-per-split", type=int, default=None,
                        help="subsample each split to about this many images (per class: this / classes)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune-images", type=int, default=512)
    parser.add_argument("--predict-images", type=int, default=320)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # in a child process: run this one measure
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        state = pickle.loads(args.state.read_bytes())
        result = run_measure(args.measure, state, args)
        print(json.dumps({**result, "peak_rss": peak_rss_bytes()}))
        return 0
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="tl-speed-") as work:
        args.out = Path(work) / "runs"
        for name in args.datasets:
            runs = [measure(name, args, Path(work)) for _ in range(args.repeats)]
            report(name, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
