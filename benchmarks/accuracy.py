"""Accuracy benchmark: tl_desktop's default recipe against the classic PyTorch transfer-learning loop.

For each dataset, both trainers get the same backbone (ImageNet-pretrained EfficientNet-Lite0 from
the backbone registry), the same train/validation split (from ``scan_dataset``; a dataset without a
``val/`` folder gets a stratified validation share held out of ``train/``), the same number of
epochs, and are scored on the dataset's ``test/`` folder with the same evaluation transform.

The plain loop is the PyTorch tutorial recipe ("Transfer learning for computer vision"): every
layer trains, SGD lr 0.001 momentum 0.9, StepLR(step 7, gamma 0.1), RandomResizedCrop(224) + flip,
batch 32, cross-entropy, keep the weights of the best validation epoch. It uses the backbone's own
normalisation (mean = std = 0.5 for Lite0) rather than the tutorial's ImageNet statistics, since
those are what the pretrained weights expect.

Usage::

    python benchmarks/accuracy.py [--epochs 4] [--max-train-per-class 20] [--max-val-per-class 10]
                                  [--datasets flowers12 potato_leaf]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tl_desktop.config import DataConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.dataset import (
    ImageDataset,
    Sample,
    ScanResult,
    scan_dataset,
)
from tl_desktop.engine.data.preprocess import eval_transform
from tl_desktop.engine.models.backbones import create_model, get_backbone_spec
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.training.callbacks import ConsoleProgress
from tl_desktop.engine.training.trainer import Trainer

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKBONE = "efficientnet_lite0"


def limit_per_class(samples: list[Sample], per_class: int | None, seed: int = 0) -> list[Sample]:
    """Keep at most ``per_class`` samples per class (a seeded, per-class random choice)."""
    if per_class is None:
        return samples
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    rng = random.Random(seed)
    kept = []
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda s: s.path)
        rng.shuffle(members)
        kept += members[:per_class]
    return sorted(kept, key=lambda s: s.path)


def limit_split(scan: ScanResult, max_train: int | None, max_val: int | None) -> ScanResult:
    """The scan with training and validation images capped per class (the test set stays whole)."""
    split = dataclasses.replace(scan.split, train=limit_per_class(scan.split.train, max_train),
                                val=limit_per_class(scan.split.val, max_val))
    return dataclasses.replace(scan, split=split)


def test_accuracy_of_model(model: torch.nn.Module, samples: list[Sample]) -> float:
    """Top-1 accuracy on ``samples`` with the backbone's evaluation transform."""
    loader = DataLoader(ImageDataset(samples, eval_transform(get_backbone_spec(BACKBONE).preprocessing)), batch_size=64)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(samples)


def run_tl_desktop(scan: ScanResult, epochs: int, out_dir: Path) -> tuple[float, float, str]:
    """Default settings (only the epoch count set); returns test accuracy, seconds, run folder."""
    config = RunConfig(data=DataConfig(root=scan.split.root), train=TrainConfig(epochs=epochs,
                       head_epochs=min(TrainConfig().head_epochs, epochs)), out_dir=str(out_dir))
    started = time.perf_counter()
    result = Trainer(config, scan=scan, callbacks=[ConsoleProgress()]).fit()
    seconds = time.perf_counter() - started
    if result.status != "completed" or result.model_path is None:
        raise RuntimeError(f"tl_desktop run ended with status {result.status} (see {result.run_dir}/events.jsonl)")
    loaded = load_bundle(result.model_path)
    probs = loaded.predict_paths([s.path for s in scan.split.test]).probs
    labels = torch.tensor([s.label for s in scan.split.test])
    accuracy = float((torch.from_numpy(probs).argmax(1) == labels).float().mean())
    return accuracy, seconds, str(result.run_dir)


def run_plain_loop(scan: ScanResult, epochs: int, seed: int = 0) -> tuple[float, float]:
    """The PyTorch tutorial's fine-tuning loop; returns test accuracy and seconds."""
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    pre = get_backbone_spec(BACKBONE).preprocessing
    train_tf = v2.Compose([
        v2.ToImage(), v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std)),
    ])
    started = time.perf_counter()
    model = create_model(BACKBONE, num_classes=len(scan.split.classes), pretrained=True)
    model.set_trainable_blocks("all")
    train_loader = DataLoader(ImageDataset(scan.split.train, train_tf), batch_size=32, shuffle=True)
    val_loader = DataLoader(ImageDataset(scan.split.val, eval_transform(pre)), batch_size=32)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    best_acc, best_state = -1.0, copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())
        val_acc = correct / len(scan.split.val)
        print(f"  plain loop epoch {epoch + 1}/{epochs}: val acc {val_acc:.1%}", flush=True)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    return test_accuracy_of_model(model, scan.split.test), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--max-train-per-class", type=int, default=None)
    parser.add_argument("--max-val-per-class", type=int, default=None, help="cap validation images (test stays whole)")
    parser.add_argument("--datasets", nargs="+", default=["flowers12", "potato_leaf"])
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--out", type=Path, default=Path("runs") / "benchmark", help="where tl_desktop's runs go")
    args = parser.parse_args(argv)

    rows = []
    for name in args.datasets:
        scan = limit_split(scan_dataset(DataConfig(root=str(args.data_root / name))), args.max_train_per_class,
                           args.max_val_per_class)
        split = scan.split
        print(f"== {name}: {len(split.classes)} classes, train {len(split.train)}, val {len(split.val)}, "
              f"test {len(split.test)}, {args.epochs} epochs", flush=True)
        ours_acc, ours_s, run_dir = run_tl_desktop(scan, args.epochs, args.out)
        print(f"  tl_desktop defaults: test accuracy {ours_acc:.1%} in {ours_s:.0f} s ({run_dir})", flush=True)
        plain_acc, plain_s = run_plain_loop(scan, args.epochs)
        print(f"  plain PyTorch loop:  test accuracy {plain_acc:.1%} in {plain_s:.0f} s", flush=True)
        rows.append((name, ours_acc, ours_s, plain_acc, plain_s))

    print("\n| dataset | tl_desktop defaults | plain PyTorch loop |\n|---|---|---|")
    for name, ours_acc, ours_s, plain_acc, plain_s in rows:
        print(f"| {name} | {ours_acc:.1%} ({ours_s:.0f} s) | {plain_acc:.1%} ({plain_s:.0f} s) |")
    beaten = all(ours > plain for _, ours, _, plain, _ in rows)
    print("defaults beat the plain loop on every dataset" if beaten else "defaults did NOT beat the plain loop everywhere")
    return 0 if beaten else 1


if __name__ == "__main__":
    sys.exit(main())
