"""Accuracy benchmark: tl_desktop's default recipe against a linear probe, the previous default, full
fine-tuning and the classic PyTorch transfer-learning loop.

For each dataset, both trainers get the same backbone (ImageNet-pretrained EfficientNet-Lite0 from
the backbone registry), the same train/validation split (from ``scan_dataset``; a dataset without a
``val/`` folder gets a stratified validation share held out of ``train/``), the same number of
epochs, and are scored on the dataset's ``test/`` folder with the same evaluation transform.

The plain loop is the PyTorch tutorial recipe ("Transfer learning for computer vision"): every
layer trains, SGD lr 0.001 momentum 0.9, StepLR(step 7, gamma 0.1), RandomResizedCrop(224) + flip,
batch 32, cross-entropy, keep the weights of the best validation epoch. It uses the backbone's own
normalisation (mean = std = 0.5 for Lite0) rather than the tutorial's ImageNet statistics, since
those are what the pretrained weights expect.

The linear probe is L2-regularised logistic regression (scikit-learn, L-BFGS) on the frozen pretrained
network's pooled features of the unaugmented images, its strength chosen on validation — the same fit
the default recipe's first epoch makes (there on cached augmented views).

Usage::

    python benchmarks/accuracy.py [--epochs 4] [--max-train-per-class 20] [--max-val-per-class 10]
                                  [--datasets flowers12 potato_leaf] [--methods lp-ft classic probe full plain]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.caching.store import CACHE_DIR_ENV
from tl_desktop.engine.data.dataset import (
    ImageDataset,
    Sample,
    ScanResult,
    scan_dataset,
)
from tl_desktop.engine.data.preprocess import eval_transform
from tl_desktop.engine.models.backbones import (
    ClassifierModel,
    create_model,
    get_backbone_spec,
)
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.training.callbacks import ConsoleProgress
from tl_desktop.engine.training.probe import fit_probe
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


def _pooled_features(model: ClassifierModel, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """The frozen pretrained network's pooled features of ``samples`` (evaluation transform) and their labels."""
    loader = DataLoader(ImageDataset(samples, eval_transform(get_backbone_spec(BACKBONE).preprocessing)), batch_size=64)
    model.eval()
    chunks, labels = [], []
    with torch.inference_mode():
        for x, y in loader:
            chunks.append(model.features(x).numpy())
            labels.append(y.numpy())
    return np.concatenate(chunks), np.concatenate(labels)


def run_probe(scan: ScanResult) -> tuple[float, float, float]:
    """The linear probe on the frozen pretrained features (its L2 strength chosen on validation);
    returns test accuracy, seconds and the strength chosen."""
    started = time.perf_counter()
    model = create_model(BACKBONE, num_classes=len(scan.split.classes), pretrained=True)
    split = scan.split
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (_pooled_features(model, part) for part in
                                                            (split.train, split.val, split.test))
    probe = fit_probe(train_x, train_y, val_x, val_y, len(split.classes))
    accuracy = float((probe.logits(test_x).argmax(1) == test_y).mean())
    return accuracy, time.perf_counter() - started, probe.strength


def run_tl_desktop(scan: ScanResult, epochs: int, out_dir: Path, **settings: object) -> tuple[float, float, str]:
    """tl_desktop's defaults (the epoch count and ``settings`` aside: a recipe, trainable blocks); returns
    test accuracy, seconds and the run folder."""
    blocks = settings.pop("trainable_blocks", ModelConfig().trainable_blocks)
    train = TrainConfig(epochs=epochs, head_epochs=min(TrainConfig().head_epochs, epochs), **settings)
    config = RunConfig(data=DataConfig(root=scan.split.root), model=ModelConfig(trainable_blocks=blocks), train=train,
                       out_dir=str(out_dir))
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


METHODS = {
    "lp-ft": "tl_desktop LP-FT recipe (linear probe, then the last 2 blocks)",
    "classic": "tl_desktop default, classic (3 head epochs, then the last 2 blocks)",
    "probe": "linear probe on the frozen features",
    "full": "tl_desktop LP-FT with every block training",
    "plain": "plain PyTorch loop (every layer, SGD)",
}


def run_method(method: str, scan: ScanResult, epochs: int, out: Path) -> tuple[float, float, str]:
    """(test accuracy, seconds, a detail) of one method."""
    if method == "probe":
        accuracy, seconds, strength = run_probe(scan)
        return accuracy, seconds, f"C={strength:g}"
    if method == "plain":
        accuracy, seconds = run_plain_loop(scan, epochs)
        return accuracy, seconds, ""
    settings: dict[str, object] = {"recipe": "classic" if method == "classic" else "lp-ft"}
    if method == "full":
        settings["trainable_blocks"] = "all"
    # Each method starts from an empty cache (the weights aside), so every wall time includes its features.
    before = os.environ.get(CACHE_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix=f"accuracy-{method}-") as cache:
        os.environ[CACHE_DIR_ENV] = cache
        try:
            return run_tl_desktop(scan, epochs, out, **settings)
        finally:
            os.environ.pop(CACHE_DIR_ENV)
            if before is not None:
                os.environ[CACHE_DIR_ENV] = before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--max-train-per-class", type=int, default=None)
    parser.add_argument("--max-val-per-class", type=int, default=None, help="cap validation images (test stays whole)")
    parser.add_argument("--datasets", nargs="+", default=["flowers12", "potato_leaf"])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--out", type=Path, default=Path("runs") / "benchmark", help="where tl_desktop's runs go")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, tuple[float, float, str]]] = {}
    for name in args.datasets:
        scan = limit_split(scan_dataset(DataConfig(root=str(args.data_root / name))), args.max_train_per_class,
                           args.max_val_per_class)
        split = scan.split
        print(f"== {name}: {len(split.classes)} classes, train {len(split.train)}, val {len(split.val)}, "
              f"test {len(split.test)}, {args.epochs} epochs", flush=True)
        results[name] = {}
        for method in args.methods:
            found = results[name][method] = run_method(method, scan, args.epochs, args.out)
            print(f"  {METHODS[method]}: test accuracy {found[0]:.1%} in {found[1]:.0f} s {found[2]}", flush=True)

    print("\n| method | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for method in args.methods:
        cells = [f"{r[method][0]:.1%} ({r[method][1]:.0f} s)" for r in results.values()]
        print(f"| {METHODS[method]} | " + " | ".join(cells) + " |")
    if {"lp-ft", "probe"} <= set(args.methods):
        gains = {name: r["lp-ft"][0] - r["probe"][0] for name, r in results.items()}
        print("LP-FT vs probe (points): " + ", ".join(f"{n} {100 * g:+.1f}" for n, g in gains.items()))
    if {"lp-ft", "classic"} <= set(args.methods):
        ratios = {name: r["lp-ft"][1] / r["classic"][1] for name, r in results.items()}
        print("LP-FT time / classic default's: " + ", ".join(f"{n} {x:.2f}x" for n, x in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
