"""Inference engines benchmark: torch against onnxruntime, side by side in one invocation.

On EfficientNet-Lite0 with its ImageNet weights, each measure in a fresh Python process (alternated
torch / onnxruntime, ``--repeats`` times; the tables show medians):

- forward-only img/s on random tensors: torch (eval, inference mode, channels_last) and onnxruntime (the
  app's checked conversion of the same model file);
- folder prediction img/s (decode, preprocess, predict: ``predict_paths``) with each engine;
- head-only training, ``--epochs`` epochs on un-augmented images (``Trainer.fit()``, cold feature cache):
  wall time with ``TL_DESKTOP_INFERENCE=torch`` and ``=onnxruntime``. The onnxruntime run finds the frozen
  part's conversion in the cache, as every run does after the first big one on the same backbone and
  boundary; the export's own cost is timed once and reported beside it.

Targets: folder prediction with onnxruntime >= 1.4x torch's forward-only rate; head-only training >= 1.3x
faster with onnxruntime features than with torch features.

Usage::

    python benchmarks/inference_engines.py [--dataset flowers12] [--repeats 3] [--epochs 10]
        [--batch-size 32] [--predict-images 320]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from speed import (
    BACKBONE,
    DATA_ROOT,
    first_n,
    forward_only_throughput,
    ours_head_only,
    print_tables,
)

from tl_desktop.config import DataConfig
from tl_desktop.engine.caching.onnx_models import inference_predictor
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.models.backbones import create_model
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.runtime.device import prepare_model

ENGINES = ("torch", "onnxruntime")


def ort_forward_throughput(model_path: str, batch_size: int, images: int) -> float:
    """onnxruntime img/s on random input through the app's conversion of ``model_path``."""
    loaded = load_bundle(model_path)
    converted = inference_predictor(loaded, image_count=10**9)
    if converted.engine != "onnxruntime":
        raise RuntimeError("the model file was not converted for onnxruntime")
    size = loaded.preprocessing.input_size
    x = torch.randn(batch_size, 3, size, size)
    converted.predict_batch(x)
    started = time.perf_counter()
    for _ in range(max(1, images // batch_size)):
        converted.predict_batch(x)
    return max(1, images // batch_size) * batch_size / (time.perf_counter() - started)


def predict_throughput(model_path: str, paths: list[str], batch_size: int) -> float:
    """``predict_paths`` img/s with the engine ``TL_DESKTOP_INFERENCE`` names (after a warm-up)."""
    predictor = inference_predictor(load_bundle(model_path), image_count=10**9)
    predictor.predict_paths(paths[:2 * batch_size], batch_size=batch_size)
    started = time.perf_counter()
    predictor.predict_paths(paths, batch_size=batch_size)
    return len(paths) / (time.perf_counter() - started)


def frozen_export_seconds(scan_classes: int) -> float:
    """Export and check the whole frozen part (the head-only boundary) into the cache: its one-off cost."""
    from tl_desktop.engine.caching.features import weights_identity
    from tl_desktop.engine.caching.frozen_onnx import CONVERT_AT, frozen_runner
    from tl_desktop.engine.caching.store import CacheStore
    from tl_desktop.engine.models.backbones import get_backbone_spec

    model = prepare_model(create_model(BACKBONE, num_classes=scan_classes, pretrained=True), torch.device("cpu"))
    boundary, size = len(model.blocks), get_backbone_spec(BACKBONE).preprocessing.input_size
    started = time.perf_counter()
    runner = frozen_runner(model.eval(), boundary, True, size, weights_identity(model, boundary), CONVERT_AT,
                           torch.device("cpu"), CacheStore())
    if runner is None:
        raise RuntimeError("the frozen part could not be converted for onnxruntime")
    return time.perf_counter() - started


def run_measure(name: str, state: dict, args: argparse.Namespace) -> dict[str, float | str]:
    scan, batch = state["scan"], args.batch_size
    if name == "train-head":
        seconds, acc, model_path = ours_head_only(scan, args.epochs, batch, args.out)
        return {"seconds": seconds, "test_acc": acc, "model_path": str(model_path)}
    if name == "export-frozen":
        return {"seconds": frozen_export_seconds(len(scan.split.classes))}
    if name == "forward":
        if os.environ["TL_DESKTOP_INFERENCE"] == "torch":
            return {"img_s": forward_only_throughput(load_bundle(args.model_path).model, batch, args.predict_images)}
        return {"img_s": ort_forward_throughput(args.model_path, batch, args.predict_images)}
    if name == "predict":
        return {"img_s": predict_throughput(args.model_path, state["predict"], batch)}
    raise ValueError(f"unknown measure {name!r}")


def child(name: str, engine: str, args: argparse.Namespace, cache_dir: Path, model_path: str = "") -> dict:
    command = [sys.executable, __file__, "--measure", name, "--state", str(args.state), "--out", str(args.out),
               "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--predict-images",
               str(args.predict_images), "--model-path", model_path]
    env = dict(os.environ, TL_DESKTOP_CACHE_DIR=str(cache_dir), TL_DESKTOP_INFERENCE=engine)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measure {name} ({engine}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_repeat(args: argparse.Namespace, work: Path, index: int) -> dict[str, float]:
    """Every measure once, torch and onnxruntime alternated; cold feature caches for each training run."""
    conversions = work / f"conversions-{index}"  # holds the frozen part's and the model's conversions
    row: dict[str, float] = {"export frozen part s": child("export-frozen", "onnxruntime", args, conversions)["seconds"]}
    model_path = ""
    for engine in ENGINES:
        cache = work / f"cache-{index}-{engine}"
        if engine == "onnxruntime":
            cache = conversions  # a fresh feature cache that holds the conversion
        trained = child("train-head", engine, args, cache)
        row[f"head-only s, {engine}"], row[f"test acc, {engine}"] = trained["seconds"], trained["test_acc"]
        model_path = model_path or str(trained["model_path"])
    for engine in ENGINES:
        row[f"forward-only img/s, {engine}"] = child("forward", engine, args, conversions, model_path)["img_s"]
        row[f"predict img/s, {engine}"] = child("predict", engine, args, conversions, model_path)["img_s"]
    for key, value in row.items():
        print(f"  [{index}] {key}: {value:.3f}", flush=True)
    return row


def report(runs: list[dict[str, float]]) -> None:
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    ratios = [
        ("folder prediction img/s: onnxruntime / torch forward-only",
         med["predict img/s, onnxruntime"] / med["forward-only img/s, torch"], ">= 1.4x"),
        ("folder prediction img/s: onnxruntime / torch", med["predict img/s, onnxruntime"]
         / med["predict img/s, torch"], "(context)"),
        ("forward-only img/s: onnxruntime / torch", med["forward-only img/s, onnxruntime"]
         / med["forward-only img/s, torch"], "(context)"),
        ("head-only training wall time: torch / onnxruntime", med["head-only s, torch"]
         / med["head-only s, onnxruntime"], ">= 1.3x"),
        ("head-only test accuracy: onnxruntime - torch (points)", 100 * (med["test acc, onnxruntime"]
         - med["test acc, torch"]), "0 (same numbers)"),
    ]
    print_tables(f"inference engines (medians of {len(runs)} repeat(s))", ratios, med)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="flowers12")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--predict-images", type=int, default=320)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        result = run_measure(args.measure, pickle.loads(args.state.read_bytes()), args)
        print(json.dumps(result))
        return 0
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs", flush=True)
    scan = scan_dataset(DataConfig(root=str(args.data_root / args.dataset)))
    split = scan.split
    print(f"== {args.dataset}: {len(split.classes)} classes; train {len(split.train)}, val {len(split.val)}, "
          f"test {len(split.test)}; batch {args.batch_size}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tl-engines-") as folder:
        work = Path(folder)
        args.out, args.state = work / "runs", work / "state.pickle"
        args.state.write_bytes(pickle.dumps({"scan": scan, "predict": [s.path for s in first_n(
            split.test + split.val, args.predict_images)]}))
        report([one_repeat(args, work, index) for index in range(args.repeats)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
