"""``tl-desktop export``: write a run's model file (building it from the best checkpoint of a run that
was interrupted before it exported), and copy it where the user wants it; or, with ``--format onnx``,
export a run or a model file to ONNX, checked against the app before it is written.

Exit codes: 0 written, 1 could not write, 2 bad input (not a run, nothing to export, a file that
exists and no ``--force``, an ONNX export that failed its parity check), 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tl_desktop.commands import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    add_force_flag,
    refuses_to_replace,
    say_overwrite_refused,
    tell,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="write a run's model file (also for a run that was interrupted), or export it to ONNX",
        description="Write RUN's model file. A run killed before it exported gets its model file built "
        "from its best checkpoint. With --out, the model file is also copied to FILE. With --format onnx, "
        "RUN (or a .tlmodel file) is exported to ONNX and checked: onnxruntime must give the app's top class "
        "for every one of up to 64 validation images (or images of --images) and probabilities within 1e-4, "
        "or nothing is written. The figures go to FILE's .parity.json beside it.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run folder (with --format onnx also a .tlmodel file)")
    parser.add_argument("--format", choices=("tlmodel", "onnx"), default="tlmodel",
                        help="tlmodel (default): the app's own model file; onnx: a standard ONNX file")
    parser.add_argument("--out", metavar="FILE", help="also copy the model file here (a .tlmodel file), or "
                        "where the ONNX file goes (default: beside the model file)")
    parser.add_argument("--images", metavar="FOLDER", help="with --format onnx: check the export on images "
                        "of FOLDER instead of the run's validation images")
    add_force_flag(parser, "FILE")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.models import MODEL_SUFFIX
    from tl_desktop.engine.models.backbones import BackboneError
    from tl_desktop.engine.models.bundle import BundleError
    from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
    from tl_desktop.fileio import DiskWriteError, atomic_write_bytes

    if args.format == "onnx":
        return run_onnx(args)
    if args.images:
        print("error: --images goes with --format onnx", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = RunFolder(args.run_dir)
    if not folder.is_run():
        print(f"error: {folder.path} is not a run folder (it has no {folder.config_file.name})", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.suffix != MODEL_SUFFIX:
        print(f"error: {out} must end in {MODEL_SUFFIX}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if out is not None and refuses_to_replace([out], args.force):
        return EXIT_BAD_INPUT
    try:
        model_file = model_file_of(folder.path, note=tell)
        if out is not None:
            atomic_write_bytes(out, model_file.read_bytes())
    except (BundleError, ConfigError, BackboneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (DiskWriteError, OSError) as exc:
        print(f"error: could not write {out or model_file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Model file: {out or model_file}")
    return EXIT_OK


def run_onnx(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.deploy.export import OnnxExportError
    from tl_desktop.engine.models.backbones import BackboneError
    from tl_desktop.engine.models.bundle import BundleError
    from tl_desktop.engine.workflows.onnx_export import OnnxExportRefused, export_onnx
    from tl_desktop.fileio import DiskWriteError, OverwriteRefused

    try:
        done = export_onnx(args.run_dir, args.out, force=args.force, images=args.images, note=tell)
    except OverwriteRefused as exc:
        say_overwrite_refused(exc)
        return EXIT_BAD_INPUT
    except (OnnxExportRefused, OnnxExportError, BundleError, ConfigError, BackboneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (DiskWriteError, OSError) as exc:
        print(f"error: could not write the ONNX file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Stopped; nothing was written.", file=sys.stderr)
        return EXIT_STOPPED
    print(done.message())
    print(f"Parity figures: {done.parity_path}")
    return EXIT_OK
