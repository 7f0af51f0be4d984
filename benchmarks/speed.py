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
- predicting a folder (``LoadedModel.predict_paths``) img/s / forward-only on random tensors.
- peak resident memory during our training runs on each dataset (sampled from /proc every 20 ms).

Usage::

    python benchmarks/speed.py [--datasets flowers12 potato_leaf] [--max-per-class 40 | --max-per-split 48]
        [--repeats 1]
        [--epochs 10] [--batch-size 32] [--finetune-images 160] [--predict-images 320]

Each measure is repeated ``--repeats`` times; the tables show medians.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.backbones import create_model, get_backbone_spec
from tl_desktop.engine.bundle import load_bundle
from tl_desktop.engine.callbacks import Callback
from tl_desktop.engine.data import ImageDataset, Sample, ScanResult, scan_dataset
from tl_desktop.engine.events import BatchEnded, EpochStarted, Event
from tl_desktop.engine.features import prepare_model
from tl_desktop.engine.preprocess import eval_transform, train_transform
from tl_desktop.engine.trainer import Trainer

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


class PeakRSS:
    """Samples this process's resident memory (Linux /proc) in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        try:
            with open("/proc/self/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(0.02)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


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


def throughput(times: list[float], sizes: list[int]) -> float:
    """Images per second over all batches but the first."""
    if len(sizes) < 2:
        raise ValueError("throughput needs at least two batches: raise --finetune-images or lower --batch-size")
    return sum(sizes[1:]) / (times[-1] - times[1])


@contextmanager
def fresh_cache() -> Iterator[Path]:
    """A new, empty cache folder for tl_desktop (a cold cache), removed afterwards."""
    old = os.environ.get("TL_DESKTOP_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="tl-speed-cache-") as folder:
        os.environ["TL_DESKTOP_CACHE_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if old is None:
                os.environ.pop("TL_DESKTOP_CACHE_DIR", None)
            else:
                os.environ["TL_DESKTOP_CACHE_DIR"] = old


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


def ours_head_only(scan: ScanResult, epochs: int, batch_size: int, out: Path) -> tuple[float, float, int, Path]:
    config = ours_config(scan, out, trainable_blocks=0, epochs=epochs, head_epochs=epochs, batch_size=batch_size,
                         augmentation="none", early_stopping_patience=0)
    with PeakRSS() as rss:
        started = time.perf_counter()
        result = Trainer(config, scan=scan).fit()
        seconds = time.perf_counter() - started
    if result.status != "completed" or result.model_path is None:
        raise RuntimeError(f"head-only run ended {result.status}; see {result.run_dir}/events.jsonl")
    loaded = load_bundle(result.model_path)
    return seconds, accuracy(loaded.model, scan.split.test, batch_size), rss.peak, result.model_path


def ours_finetune_throughput(scan: ScanResult, batch_size: int, out: Path) -> tuple[float, int]:
    config = ours_config(scan, out, trainable_blocks="all", epochs=1, head_epochs=0, batch_size=batch_size,
                         augmentation="light", early_stopping_patience=0)
    timer = StepTimer()
    sizes = _batch_sizes(len(scan.split.train), batch_size)
    with PeakRSS() as rss:
        result = Trainer(config, scan=scan, callbacks=[timer]).fit()
    if result.status != "completed":
        raise RuntimeError(f"fine-tuning run ended {result.status}; see {result.run_dir}/events.jsonl")
    return throughput(timer.times, sizes), rss.peak


def _batch_sizes(count: int, batch_size: int) -> list[int]:
    sizes = [batch_size] * (count // batch_size) + ([count % batch_size] if count % batch_size else [])
    return sizes[:-1] if sizes and sizes[-1] == 1 and count > batch_size else sizes


def ours_predict_throughput(model_path: Path, samples: list[Sample], batch_size: int) -> tuple[float, float]:
    loaded = load_bundle(model_path)
    paths = [s.path for s in samples]
    loaded.predict_paths(paths[:batch_size], batch_size=batch_size)  # warm-up, like the reference
    started = time.perf_counter()
    loaded.predict_paths(paths, batch_size=batch_size)
    ours = len(paths) / (time.perf_counter() - started)
    return ours, forward_only_throughput(loaded.model, batch_size, len(paths))


# ----- main -------------------------------------------------------------------------------------------
def measure(name: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    full = scan_dataset(DataConfig(root=str(args.data_root / name)))
    per_class = args.max_per_class
    if args.max_per_split is not None:
        per_class = max(1, args.max_per_split // len(full.split.classes))
    scan = with_split(full, train=limit(full.split.train, per_class), val=limit(full.split.val, per_class),
                      test=limit(full.split.test, per_class))
    split = scan.split
    print(f"== {name}: {len(split.classes)} classes; train {len(split.train)}, val {len(split.val)}, "
          f"test {len(split.test)}; batch {args.batch_size}; {torch.get_num_threads()} threads", flush=True)
    row: dict[str, float] = {}
    log = _printer(row)
    plain_s, plain_acc = plain_head_only(scan, args.epochs, args.batch_size)
    log("plain head-only s", plain_s)
    log("plain head-only test acc", plain_acc)
    # The forward pass is timed right before and right after our run (the machine may be shared).
    forward_before = forward_pass_seconds(scan, args.batch_size)
    with fresh_cache():
        ours_s, ours_acc, head_rss, model_path = ours_head_only(scan, args.epochs, args.batch_size, out)
        log("ours head-only s (cold cache)", ours_s)
        log("ours head-only test acc", ours_acc)
        forward_after = forward_pass_seconds(scan, args.batch_size)
        warm_s, _acc, _rss, _path = ours_head_only(scan, args.epochs, args.batch_size, out)
        log("ours head-only s (warm cache)", warm_s)
    log("one forward pass s", (forward_before + forward_after) / 2)
    ft_scan = with_split(scan, train=first_n(full.split.train, args.finetune_images),
                         val=first_n(full.split.val, args.batch_size))
    plain_ft = plain_finetune_throughput(ft_scan, args.batch_size)
    log("plain fine-tune img/s", plain_ft)
    with fresh_cache():
        ours_ft, ft_rss = ours_finetune_throughput(ft_scan, args.batch_size, out)
    log("ours fine-tune img/s", ours_ft)
    steps = max(2, args.finetune_images // args.batch_size)
    compute_ft = compute_only_throughput(len(split.classes), args.batch_size, steps)
    log("compute-only train img/s", compute_ft)
    ours_pred, forward_pred = ours_predict_throughput(model_path, first_n(full.split.test + full.split.val,
                                                      args.predict_images), args.batch_size)
    log("ours predict img/s", ours_pred)
    log("forward-only img/s", forward_pred)
    log("peak RSS, ours head-only training (GB)", head_rss / 1024**3)
    log("peak RSS, ours full fine-tuning (GB)", ft_rss / 1024**3)
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
        ("predict a folder img/s: ours / forward-only", med["ours predict img/s"] / med["forward-only img/s"],
         ">= 0.9x"),
        ("peak RSS, head-only training (GB)", med["peak RSS, ours head-only training (GB)"], "< 3"),
        ("peak RSS, full fine-tuning (GB)", med["peak RSS, ours full fine-tuning (GB)"], "< 3"),
    ]
    print(f"\n### {name} (medians of {len(runs)} run(s))\n")
    print("| measure | value | target |\n|---|---|---|")
    for label, value, target in ratios:
        print(f"| {label} | {value:.2f} | {target} |")
    print("\n| raw measure | median |\n|---|---|")
    for key, value in med.items():
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
    parser.add_argument("--finetune-images", type=int, default=160)
    parser.add_argument("--predict-images", type=int, default=320)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="tl-speed-runs-") as out:
        for name in args.datasets:
            runs = [measure(name, args, Path(out)) for _ in range(args.repeats)]
            report(name, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
