"""``tl-desktop train``: scan a folder of images, print its audit, train, say where the model is.

Exit codes: 0 trained, 1 training failed, 2 bad input (data, configuration, weights), 130 stopped
with Ctrl-C, 143 stopped by SIGTERM (either asks the run to stop cleanly after the current batch and
keeps its best model; a second Ctrl-C aborts at once). ``--resume RUN`` continues an interrupted run
from its last completed epoch.

Under ``torchrun --nproc-per-node N -m tl_desktop train ...`` every process runs this command: rank 0
reads the settings, scans the images and prints, the others receive what it found, and all of them
train data-parallel (:mod:`tl_desktop.engine.training.distributed`); each rank exits with the codes above.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.commands import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_TERMINATED,
)
from tl_desktop.config import AUGMENTATION_PRESETS, CLASS_BALANCE_MODES, DEVICES

if TYPE_CHECKING:
    from tl_desktop.config import RunConfig
    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.runtime.stop import StopToken
    from tl_desktop.engine.training.distributed import Ranks


# flag destination -> (config section, field)
_FLAG_FIELDS: dict[str, tuple[str, str]] = {
    "data": ("data", "root"),
    "labels": ("data", "labels"),
    "group_by": ("data", "group_by"),
    "val_fraction": ("data", "val_fraction"),
    "test_fraction": ("data", "test_fraction"),
    "dicom_window": ("data", "dicom_window"),
    "dicom_frame": ("data", "dicom_frame"),
    "overrides": ("data", "overrides"),
    "backbone": ("model", "backbone"),
    "trainable_blocks": ("model", "trainable_blocks"),
    "dropout": ("model", "dropout"),
    "weights_file": ("model", "weights_file"),
    "epochs": ("train", "epochs"),
    "head_epochs": ("train", "head_epochs"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "finetune_lr": ("train", "finetune_lr"),
    "weight_decay": ("train", "weight_decay"),
    "label_smoothing": ("train", "label_smoothing"),
    "class_balance": ("train", "class_balance"),
    "augmentation": ("train", "augmentation"),
    "patience": ("train", "early_stopping_patience"),
    "device": ("train", "device"),
    "num_workers": ("train", "num_workers"),
}


def trainable_blocks_arg(text: str) -> int | str:
    """Parse ``--trainable-blocks``: a whole number >= 0 or "all"."""
    if text.strip().lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'all', got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train a classifier from a folder of images or a label table",
        description="Train an image classifier by transfer learning. PATH holds one sub-folder per class, "
        "or train/ and val/ (and optionally test/) folders that each hold one sub-folder per class; "
        "or --labels names a table of image paths and labels.",
    )
    add_training_flags(parser)
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder from its last "
                        "completed epoch, with the run's own settings and images")
    parser.set_defaults(run=run)
    return parser


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """The data, model and recipe flags of ``train`` (``cv`` takes the same ones)."""
    parser.add_argument("--data", metavar="PATH", help="image folder (required unless --labels or --config names one)")
    parser.add_argument("--labels", metavar="TABLE", help="a CSV/TSV label table instead of a folder: columns "
                        "path,label and optionally group and split (train/val/test); paths relative to the "
                        "table's folder")
    parser.add_argument("--group-by", metavar="COLUMN|dicom:TAG|re:PATTERN",
                        help="keep each group's images (a patient's, a field's) in one part: a table column, a DICOM "
                        "tag (e.g. dicom:PatientID, stored only hashed) or a pattern with one (capture group) on "
                        "the path relative to the data folder, e.g. 're:^(P\\d+)_'")
    parser.add_argument("--config", metavar="FILE", help="start from this config.json (flags override it)")
    parser.add_argument("--out", metavar="DIR", help="where run folders go (default: runs/)")
    parser.add_argument("--backbone", help="pretrained network (default: efficientnet_lite0)")
    parser.add_argument("--trainable-blocks", type=trainable_blocks_arg, metavar="N|all",
                        help="blocks from the top that train after the head (0 = head only, all = everything)")
    parser.add_argument("--weights-file", metavar="FILE", help="pretrained weights file to use instead of the cache")
    parser.add_argument("--dropout", type=float, help="dropout before the new head")
    parser.add_argument("--epochs", type=int, help="all epochs, head phase included (with fewer epochs than "
                        "the head phase, about half of them train the head)")
    parser.add_argument("--head-epochs", type=int, help="first epochs that train only the head")
    parser.add_argument("--batch-size", type=int, help="images per training step; under torchrun the global "
                        "batch, shared among the processes (so 1 and N processes train alike)")
    parser.add_argument("--lr", type=float, help="peak learning rate of the head phase")
    parser.add_argument("--finetune-lr", type=float, help="peak learning rate once blocks unfreeze")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--class-balance", choices=CLASS_BALANCE_MODES, help="weight the loss by class frequency")
    parser.add_argument("--augmentation", choices=AUGMENTATION_PRESETS)
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (0 = off)")
    parser.add_argument("--seed", type=int, help="random seed for the split and the training")
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--num-workers", type=int, help="image-loading worker processes")
    parser.add_argument("--val-fraction", type=float, help="share of images for validation when splitting")
    parser.add_argument("--test-fraction", type=float, help="share of images for testing when splitting")
    parser.add_argument("--dicom-window", metavar="auto|CENTRE,WIDTH",
                        help="window for DICOM images, e.g. 40,400 (default auto: each file's own window)")
    parser.add_argument("--dicom-frame", metavar="middle|first|last|N",
                        help="frame of multi-frame DICOM files to use (default middle)")
    parser.add_argument("--overrides", metavar="FILE|PROJECT", help="images you marked mislabelled or excluded: "
                        "an overrides.csv, or a project folder (its marks); applied before the split")


def build_config(args: argparse.Namespace) -> RunConfig:
    """Map the flags onto a RunConfig (starting from ``--config`` if given); raises ConfigError."""
    from tl_desktop.config import ConfigError, RunConfig

    config = RunConfig.load(args.config) if args.config else RunConfig()
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for dest, (section, name) in _FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            sections[section][name] = value
    epochs = sections["train"].get("epochs")
    if epochs is not None and "head_epochs" not in sections["train"] and config.train.head_epochs >= epochs:
        # fewer epochs than the head phase would take: keep a head phase, and fine-tune in the rest
        sections["train"]["head_epochs"] = max(1, epochs // 2) if epochs > 0 else 0
    if args.seed is not None:
        sections["data"]["seed"] = args.seed
        sections["train"]["seed"] = args.seed
    config = config.replace(
        data=dataclasses.replace(config.data, **sections["data"]),
        model=dataclasses.replace(config.model, **sections["model"]),
        train=dataclasses.replace(config.train, **sections["train"]),
        out_dir=args.out if args.out is not None else config.out_dir,
    )
    if args.data is not None and args.labels is not None:
        raise ConfigError("give --data FOLDER or --labels TABLE, not both")
    if args.data is not None or args.labels is not None:  # the flag replaces the other source of --config
        config = config.replace(data=dataclasses.replace(config.data, root=args.data or "", labels=args.labels or ""))
    if not config.data.root and not config.data.labels:
        raise ConfigError("no images given: use --data FOLDER or --labels TABLE (or --config with data.root)")
    # Absolute paths, so the run's config.json repeats the run from any folder.
    weights_file = config.model.weights_file
    config = config.replace(
        data=dataclasses.replace(config.data, root=_absolute(config.data.root), labels=_absolute(config.data.labels),
                                 overrides=_absolute(config.data.overrides)),
        model=dataclasses.replace(config.model, weights_file=str(Path(weights_file).expanduser().resolve())
                                  if weights_file else None),
    )
    return config.validate()


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve()) if path else ""


def resume_config(args: argparse.Namespace) -> RunConfig:
    """The settings of the run ``--resume`` names; only --device and --num-workers may change."""
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.training.runfolder import RunFolder

    fixed = [f"--{dest.replace('_', '-')}" for dest in (*_FLAG_FIELDS, "config", "out", "seed")
             if dest not in ("device", "num_workers") and getattr(args, dest, None) is not None]
    if fixed:
        raise ConfigError(f"--resume goes on with the run's own settings; leave out {', '.join(fixed)}")
    run = RunFolder(args.resume)
    if not run.is_run():
        raise ConfigError(f"{run.path} is not a run folder (it has no {run.config_file.name})")
    if not run.resume_file.is_file():
        raise ConfigError(f"{run.path} has no resume point: it completed, or stopped before its first epoch ended")
    config = run.config()
    train = dataclasses.replace(config.train, **{name: getattr(args, name) for name in ("device", "num_workers")
                                                 if getattr(args, name) is not None})
    return config.replace(train=train).validate()


def prepare(args: argparse.Namespace, stop: StopToken) -> tuple[RunConfig, ScanResult | None]:
    """The run's settings and scanned images (printing the audit), or a resumed run's settings;
    weights a new run needs are downloaded first. Raises on bad input."""
    if args.resume:
        return resume_config(args), None
    return prepare_new(args, stop)


def prepare_new(args: argparse.Namespace, stop: StopToken) -> tuple[RunConfig, ScanResult]:
    """A new run's settings from the flags and its scanned images (printing the audit); weights it needs
    are downloaded first. Raises on bad input."""
    from tl_desktop.engine.data.dataset import scan_dataset
    from tl_desktop.engine.models.weights import resolve_weights
    from tl_desktop.engine.training.checks import check_before_training, check_settings

    config = build_config(args)
    check_settings(config)
    print(f"Scanning {config.data.labels or config.data.root} ...", flush=True)
    scan = scan_dataset(config.data, stop=stop)
    for line in scan.audit.summary_lines():
        print(line)
    plan = check_before_training(config, scan)
    if plan.needs_download:
        resolve_weights(plan.spec, progress=_download_progress(), stop=stop)
    return config, scan


def bad_input_errors() -> tuple[type[Exception], ...]:
    """What preparing a run raises for bad input (exit 2)."""
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.data.dataset import DataError
    from tl_desktop.engine.models.backbones import BackboneError
    from tl_desktop.engine.models.weights import WeightsFileError, WeightsUnavailable

    return ConfigError, DataError, WeightsUnavailable, WeightsFileError, BackboneError


def run(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.training.distributed import (
        end_process_group,
        ranks_from_env,
        start_process_group,
    )

    try:
        ranks = ranks_from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not ranks.distributed:
        return train(args, ranks)
    start_process_group(ranks)
    try:
        return train(args, ranks)
    finally:
        end_process_group()


def train(args: argparse.Namespace, ranks: Ranks) -> int:
    """Prepare and train (on this rank), printing as it goes; returns the exit code."""
    from tl_desktop.engine.runtime.stop import StopRequested, StopToken
    from tl_desktop.engine.training.callbacks import ConsoleProgress
    from tl_desktop.engine.training.trainer import Trainer

    stop, signals, trainer = StopToken(), [], None
    # Under torchrun a terminal's Ctrl-C reaches each rank twice (from the terminal and from torchrun):
    # there a repeated signal must not abort, or the ranks would stop at different steps.
    abort_on_repeat = not ranks.distributed
    previous = {sig: signal.signal(sig, lambda signum, frame: on_stop_signal(stop, signum, signals, abort_on_repeat,
                                                                             speak=ranks.is_main))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            config, scan = prepare_on_ranks(args, stop, ranks)
        except bad_input_errors() as exc:
            if ranks.is_main:
                print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except StopRequested:
            if ranks.is_main:
                print("Stopped before training started.", file=sys.stderr)
            return stopped_code(signals)
        trainer = Trainer(config, scan=scan, callbacks=[ConsoleProgress()] if ranks.is_main else [], stop=stop,
                          run_dir=args.resume, resume=bool(args.resume), ranks=ranks)
        result = trainer.fit()
    except KeyboardInterrupt:
        run_dir = trainer.run_dir if trainer is not None else None
        where = f" in {run_dir}; `tl-desktop train --resume {run_dir}` goes on from there" if run_dir else ""
        print(f"\nAborted at once; the best model and the last completed epoch are kept{where}.", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.status == "failed":
        return EXIT_FAILED
    if result.status == "stopped":
        if ranks.is_main:
            print(f"To go on later: tl-desktop train --resume {result.run_dir}", file=sys.stderr)
        return stopped_code(signals)
    return EXIT_OK


def prepare_on_ranks(args: argparse.Namespace, stop: StopToken, ranks: Ranks) -> tuple[RunConfig, ScanResult | None]:
    """:func:`prepare` on rank 0; the other ranks get its settings and scan (or its refusal) from it, so
    every rank trains on exactly the same split."""
    from tl_desktop.engine.runtime.stop import StopRequested
    from tl_desktop.engine.training.prepared import decode_prepared, encode_prepared

    if not ranks.distributed:
        return prepare(args, stop)
    if not ranks.is_main:
        return decode_prepared(ranks.broadcast_text(None))
    try:
        config, scan = prepare(args, stop)
    except bad_input_errors() as exc:
        ranks.broadcast_text(encode_prepared(refusal=str(exc)))
        raise
    except StopRequested:
        ranks.broadcast_text(encode_prepared(stopped=True))
        raise
    except BaseException as exc:
        ranks.broadcast_text(encode_prepared(refusal=f"rank 0 could not prepare the run ({exc})"))
        raise
    ranks.broadcast_text(encode_prepared(config, scan))
    return config, scan


def stopped_code(signals: list[int]) -> int:
    return EXIT_TERMINATED if signal.SIGTERM in signals else EXIT_STOPPED


def on_stop_signal(stop: StopToken, signum: int, seen: list[int], abort_on_repeat: bool = True,
                   speak: bool = True) -> None:
    """First Ctrl-C or SIGTERM: stop after the current batch; a second Ctrl-C: abort at once (unless
    ``abort_on_repeat`` is off). ``speak``: say so (rank 0 only, under torchrun)."""
    seen.append(signum)
    if stop.requested and signum == signal.SIGINT and abort_on_repeat:
        raise KeyboardInterrupt
    if not stop.requested:
        if speak:
            again = " (Ctrl-C again to abort at once)" if abort_on_repeat else " on every process"
            print(f"\nStopping after the current batch{again} ...", file=sys.stderr, flush=True)
        stop.request()


def _download_progress() -> Callable[[int, int | None], None]:
    """A console progress printer for weight downloads (prints at each 10%)."""
    shown = {"last": -1}

    def report(done: int, total: int | None) -> None:
        if total:
            tenth = int(10 * done / total)
            if tenth != shown["last"]:
                shown["last"] = tenth
                print(f"Downloading weights: {done / total:.0%}", flush=True)

    return report
