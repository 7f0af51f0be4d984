"""``tl-desktop cv``: k-fold cross-validation with the train command's settings, grouped and stratified.

Exit codes as ``train``: 0 every fold done, 1 a fold failed, 2 bad input, 130/143 stopped (finished
folds are kept; ``--resume CV_FOLDER`` goes on with the others).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from tl_desktop.commands import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_STOPPED
from tl_desktop.commands.train import (
    add_training_flags,
    bad_input_errors,
    on_stop_signal,
    prepare_new,
    stopped_code,
)

if TYPE_CHECKING:
    from tl_desktop.engine.workflows.cross_validation import CVResult, FoldEvent


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cv", help="cross-validate: train and test one model per fold",
        description="k-fold cross-validation. The images outside the test part are split into k folds "
        "(grouped and stratified by class); each fold's model trains on the other folds and predicts its own "
        "fold, and the out-of-fold predictions are pooled. Takes every train flag.",
    )
    add_training_flags(parser)
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--final-model", action="store_true",
                        help="after the folds, train the final model on every image outside the test part")
    parser.add_argument("--resume", metavar="CV_FOLDER", help="go on with an interrupted cross-validation")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.engine.runtime.stop import StopRequested, StopToken
    from tl_desktop.engine.training.callbacks import ConsoleProgress
    from tl_desktop.engine.workflows.cross_validation import (
        plan_cross_validation,
        resume_cross_validation,
        run_cross_validation,
    )

    stop, signals = StopToken(), []
    previous = {sig: signal.signal(sig, lambda signum, frame: on_stop_signal(stop, signum, signals))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            if args.resume:
                result = resume_cross_validation(args.resume, lambda i: [ConsoleProgress()], _say, stop)
            else:
                config, scan = prepare_new(args, stop)
                plan_cross_validation(config, scan, args.folds)  # refuse a bad --folds before anything is written
                result = run_cross_validation(config, scan, args.folds, lambda i: [ConsoleProgress()], _say, stop,
                                              final_model=args.final_model)
        except bad_input_errors() as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except StopRequested:
            print("Stopped before the cross-validation started.", file=sys.stderr)
            return stopped_code(signals)
    except KeyboardInterrupt:
        print("\nAborted at once; finished folds are kept.", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _finish(result, signals)


def _say(event: FoldEvent) -> None:
    from tl_desktop.engine.workflows.cross_validation import FoldStarted

    if isinstance(event, FoldStarted):
        print(f"\nFold {event.index} of {event.total}: training on {event.train:,} images, validating on "
              f"{event.val:,}, held out {event.held_out:,}", flush=True)
    elif event.status == "completed":
        acc = event.figures.get("accuracy")
        shown = "undefined" if acc is None else f"{100 * acc:.1f}%"
        print(f"Fold {event.index} of {event.total}: held-out accuracy {shown}", flush=True)


def _finish(result: CVResult, signals: list[int]) -> int:
    from tl_desktop.engine.evaluation.folds import AcrossFolds, summary_text

    summary = result.summary or {}
    print(f"\nCross-validation folder: {result.folder.path}")
    print(f"Folds done: {summary.get('folds_done', 0)} of {summary.get('folds_planned', '?')}")
    for name, raw in summary.get("across_folds", {}).items():
        print("  " + summary_text(name, AcrossFolds.from_dict(raw)))
    oof = summary.get("out_of_fold")
    if oof and oof.get("accuracy") is not None:
        interval = (oof.get("intervals") or {}).get("accuracy") or {}
        bounds = (f" (95% CI {100 * interval['low']:.1f}–{100 * interval['high']:.1f}%)"
                  if interval.get("low") is not None else "")
        print(f"Pooled out-of-fold accuracy: {100 * oof['accuracy']:.1f}%{bounds}, {oof['num_samples']:,} images")
    if summary.get("final_model"):
        print(f"Final model: {summary['final_model']}")
    if result.status == "failed":
        print(f"error: {result.error or 'a fold failed'}", file=sys.stderr)
        return EXIT_FAILED
    if result.status == "stopped":
        print(f"To go on later: tl-desktop cv --resume {result.folder.path}", file=sys.stderr)
        return stopped_code(signals)
    return EXIT_OK
