"""Classify images with a model exported by ``tl-desktop export --format onnx``.

Needs only numpy, Pillow and onnxruntime (no torch, no tl_desktop): copy this file into your own
pipeline. Everything it needs (class names, image size, normalisation, resizing) comes from the ONNX
file's metadata, which tl_desktop writes at export.

    python predict_onnx.py MODEL.onnx IMAGE_OR_FOLDER [--csv OUT.csv]

Prints one line per image: path, top class, its probability. With --csv, writes path, label,
probability and one column per class. Exit codes: 0 done, 1 no image could be read, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # onnxruntime reports usage over the network unless told not to

import numpy as np  # noqa: E402 (after the setting above, which must precede onnxruntime's import)
import onnxruntime  # noqa: E402
from PIL import Image  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def read_metadata(session: onnxruntime.InferenceSession) -> tuple[list[str], dict]:
    """The class names and the preprocessing stored in the file."""
    props = session.get_modelmeta().custom_metadata_map
    if "classes" not in props or "preprocessing" not in props:
        raise ValueError("this ONNX file has no tl_desktop metadata (classes, preprocessing)")
    return json.loads(props["classes"]), json.loads(props["preprocessing"])


def prepare(path: Path, pre: dict) -> np.ndarray:
    """One image as the model's input: RGB, short side resized, centre crop, scaled to 0..1, normalised, CHW."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        short = min(image.size)
        scale = pre["resize_size"] / short
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, RESAMPLING.get(pre.get("interpolation", "bilinear"), Image.Resampling.BILINEAR))
        crop = pre["input_size"]
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
        image = image.crop((left, top, left + crop, top + crop))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(pre["mean"], dtype=np.float32)) / np.asarray(pre["std"], dtype=np.float32)
    return pixels.transpose(2, 0, 1)


def image_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with a tl_desktop ONNX export.")
    parser.add_argument("model", type=Path, help="the exported .onnx file")
    parser.add_argument("images", type=Path, help="an image file or a folder of images")
    parser.add_argument("--csv", type=Path, help="write all probabilities to this CSV file (must not exist)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.csv is not None and args.csv.exists():
        print(f"error: {args.csv} exists; choose another name", file=sys.stderr)
        return 2
    try:
        session = onnxruntime.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        classes, pre = read_metadata(session)
    except Exception as exc:  # onnxruntime's own errors for a missing or damaged file
        print(f"error: cannot use {args.model}: {exc}", file=sys.stderr)
        return 2
    if not args.images.exists():
        print(f"error: {args.images} does not exist", file=sys.stderr)
        return 2
    rows: list[tuple[str, np.ndarray]] = []
    paths = image_files(args.images)
    for start in range(0, len(paths), args.batch_size):
        ready: list[tuple[Path, np.ndarray]] = []
        for path in paths[start:start + args.batch_size]:
            try:
                ready.append((path, prepare(path, pre)))
            except (OSError, ValueError) as exc:
                print(f"skipped {path}: {exc}", file=sys.stderr)
        if ready:
            batch = np.stack([pixels for _, pixels in ready])
            probabilities = session.run(["probabilities"], {"input": batch})[0]
            rows.extend((str(path), row) for (path, _), row in zip(ready, probabilities))
    for path, row in rows:
        top = int(row.argmax())
        print(f"{path}\t{classes[top]}\t{row[top]:.4f}")
    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "probability", *classes])
            for path, row in rows:
                top = int(row.argmax())
                writer.writerow([path, classes[top], f"{row[top]:.6f}", *(f"{p:.6f}" for p in row)])
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
