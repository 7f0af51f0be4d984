"""``tl-desktop evaluate``: metrics of a trained model on its own split or on an external folder.

Prints the metrics (with 95% intervals, each with its method) and writes metrics.json, per_class.csv,
confusion_matrix.csv and predictions.csv. Exit codes: 0 evaluated, 1 the files could not be
written, 2 bad input (model, folder, class names, options, evaluation files outside a run folder that exist and no
``--force``, or no image that could be read: then nothing is written, so earlier results are never
replaced by an empty set), 130 stopped with Ctrl-C.
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
    refuses_to_replace,
    tell,
)
from tl_desktop.config import DEVICES

if TYPE_CHECKING:
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.evaluation.metrics import Metrics
    from tl_desktop.engine.workflows.evaluation import Calibration


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="measure a trained model on its validation/test split or an external folder",
        description="Evaluate a model. With --data, every image in FOLDER (one sub-folder per class, named "
        "like the model's classes) is used; without it, the run's own --split is used (MODEL must then be "
        "a run folder or the model.tlmodel inside one).",
    )
    parser.add_argument("--model", required=True, metavar="MODEL_FILE_OR_RUN", help="a .tlmodel file or a run folder")
    parser.add_argument("--data", metavar="FOLDER", help="external folder with one sub-folder per class")
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="which split of the run to use when --data is not given (default: val)")
    parser.add_argument("--out", metavar="DIR", help="where to write the files (default: <run>/evaluation/<name>, "
                        "or ./evaluation/<name> for a model file outside a run folder)")
    parser.add_argument("--positive-class", metavar="NAME", help="two classes only: the class to call positive")
    parser.add_argument("--threshold", type=float, metavar="P",
                        help="two classes only: positive when its probability is at least P (default 0.5)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the intervals of balanced accuracy, F1 and macro AUC "
                        "(0 = no intervals at all; default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--calibrate", action="store_true",
                        help="first fit temperature scaling on the run's validation split and store it in the model")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    add_force_flag(parser, "the evaluation files in --out (or in ./evaluation for a model outside a run folder)")
    parser.set_defaults(run=run)
    return parser


def calibration_line(fitted: Calibration) -> str:
    return (f"Temperature scaling: T = {fitted.temperature:.3f} stored in {fitted.model_file} "
            f"(validation NLL {fitted.val_nll_before:.3f} -> {fitted.val_nll_after:.3f}, "
            f"ECE {fitted.val_ece_before:.3f} -> {fitted.val_ece_after:.3f})")


def print_evaluation(where: str, predictions: Predictions, result: Metrics) -> None:
    from tl_desktop.engine.evaluation.formatting import summary_lines

    print(f"Evaluation on the {where}")
    for line in summary_lines(result):
        print(line)
    for path, reason in predictions.failures:
        print(f"skipped {path}: {reason}", file=sys.stderr)


def refuses_input(args: argparse.Namespace) -> bool:
    """True (after saying why) for a bad option, a missing model, or evaluation files outside a run folder
    that exist and no --force."""
    from tl_desktop.engine.evaluation.files import EVALUATION_FILES
    from tl_desktop.engine.training.runfolder import RunFolder
    from tl_desktop.engine.workflows.evaluation import default_external_dir

    if args.out and refuses_to_replace([Path(args.out) / name for name in EVALUATION_FILES], args.force):
        return True
    if args.bootstrap < 0:
        print("error: --bootstrap must be 0 or more", file=sys.stderr)
        return True
    model = Path(args.model)
    if not model.exists():
        print(f"error: {model} does not exist", file=sys.stderr)
        return True
    # ./evaluation is the user's folder, not a run's: its files are not replaced unasked either.
    return bool(args.data and not args.out and RunFolder.containing(model) is None and refuses_to_replace(
        [default_external_dir(model, args.data) / name for name in EVALUATION_FILES], args.force))


def run(args: argparse.Namespace) -> int:
    from tl_desktop.engine.evaluation.evaluate import EvaluationError, evaluate_run
    from tl_desktop.engine.evaluation.files import save_evaluation
    from tl_desktop.engine.models.bundle import BundleError
    from tl_desktop.engine.runtime.device import pick_device
    from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
    from tl_desktop.engine.workflows.evaluation import calibrate_run, evaluate_external
    from tl_desktop.fileio import DiskWriteError

    if refuses_input(args):
        return EXIT_BAD_INPUT
    model = Path(args.model)
    run = RunFolder.containing(model)
    options = {"positive_class": args.positive_class, "threshold": args.threshold,
               "n_bootstrap": args.bootstrap, "seed": args.seed}
    try:
        if run is not None:
            model_file_of(run.path, note=tell)
        if args.calibrate:
            if run is None:
                raise EvaluationError("--calibrate needs a run folder (its validation split is used to fit)")
            print(calibration_line(calibrate_run(run.path)))
        if args.data:
            external = evaluate_external(model, args.data, out_dir=args.out, device=pick_device(args.device),
                                         **options)
            predictions, result, out, written = external.predictions, external.metrics, external.out_dir, external.files
            where = f"external folder {Path(args.data).resolve()}"
        else:
            if run is None:
                raise EvaluationError(f"{model} is not in a run folder, so it has no split to evaluate on; "
                                      "give an image folder with --data")
            predictions, result = evaluate_run(run.path, args.split, **options)
            out, written = Path(args.out) if args.out else run.split_evaluation_dir(args.split), None
            where = f"{args.split} split of {run.name}"
    except (BundleError, EvaluationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DiskWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return EXIT_STOPPED
    print_evaluation(where, predictions, result)
    if written is None:
        source = {"kind": "split", "split": args.split, "run": str(run.path.resolve())}
        try:
            written = save_evaluation(out, predictions, result, source)
        except DiskWriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(f"Wrote {', '.join(p.name for p in written)} to {out}")
    return EXIT_OK
