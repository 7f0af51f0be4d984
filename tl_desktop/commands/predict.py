"""``tl-desktop predict``: classify an image or a folder of images with a trained model file.

Prints the top-k classes per image, or writes a CSV (path, top label, probability, one column per
class, error) for a folder. Exit codes: 0 at least one image predicted, 1 no image could be read,
2 bad input (model file or image path, a --csv file that exists and no ``--force``), 130 stopped
with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.commands import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    add_force_flag,
    positive_int,
    refuses_to_replace,
    tell,
)
from tl_desktop.config import DEVICES

if TYPE_CHECKING:
    from tl_desktop.engine.models.predictor import PredictionResult


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="classify images with a trained model",
        description="Classify an image, or every image in a folder (recursively), with a .tlmodel file, "
        "a run folder or an ONNX file exported by tl-desktop export --format onnx.",
    )
    parser.add_argument("--model", required=True, metavar="MODEL_FILE_OR_RUN",
                        help="a .tlmodel file, a run folder or an exported .onnx file")
    parser.add_argument("images", metavar="IMAGE_OR_FOLDER", help="an image file or a folder of images")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to show per image (default 3)")
    parser.add_argument("--csv", metavar="FILE", help="write all probabilities to this CSV file")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    add_force_flag(parser, "the --csv file")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.caching.onnx_models import inference_predictor
    from tl_desktop.engine.data.dataset import DataError, list_images
    from tl_desktop.engine.data.images import unreachable_reason
    from tl_desktop.engine.runtime.device import pick_device
    from tl_desktop.engine.workflows.prediction import (
        MODEL_ERRORS,
        open_predictor,
        prediction_rows,
        write_predictions_csv,
    )
    from tl_desktop.fileio import DiskWriteError

    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.csv and refuses_to_replace([Path(args.csv)], args.force):
        return EXIT_BAD_INPUT
    target = Path(args.images)
    if not target.exists():
        print(f"error: {target}: {unreachable_reason(target)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        loaded = open_predictor(args.model, device=pick_device(args.device), note=tell)
        paths = list_images(target)
        loaded = inference_predictor(loaded, len(paths))
    except (*MODEL_ERRORS, DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not paths:
        print(f"error: no supported images in {target}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = loaded.predict_paths(paths, batch_size=args.batch_size)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return EXIT_STOPPED
    if args.csv:
        try:
            write_predictions_csv(args.csv, loaded.classes, prediction_rows(loaded.classes, result))
        except DiskWriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"Wrote {len(result.paths)} predictions to {args.csv}"
              + (f" ({len(result.failures)} unreadable files listed with their reason)" if result.failures else ""))
    else:
        print_top_k(loaded.classes, result, args.top_k)
    for path, reason in result.failures:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return EXIT_OK if result.paths else EXIT_FAILED


def print_top_k(classes: list[str], result: PredictionResult, k: int) -> None:
    """One block per image: its path, then the k most probable classes."""
    k = min(k, len(classes))
    for path, row in zip(result.paths, result.probs):
        order = row.argsort()[::-1][:k]
        print(path)
        for index in order:
            print(f"  {row[index]:7.2%}  {classes[index]}")
