"""``tl-desktop export``: write a run's model file (building it from the best checkpoint of a run that
was interrupted before it exported), and copy it where the user wants it.

Exit codes: 0 written, 1 could not write, 2 bad input (not a run, nothing to export, a file that
exists and no ``--force``).
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
    add_force_flag,
    refuses_to_replace,
    tell,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="write a run's model file (also for a run that was interrupted)",
        description="Write RUN's model file. A run killed before it exported gets its model file built "
        "from its best checkpoint. With --out, the model file is also copied to FILE.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run folder")
    parser.add_argument("--out", metavar="FILE", help="also copy the model file here (a .tlmodel file)")
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
