"""``tl-desktop report``: write a run's report as one self-contained HTML file and one PDF.

Exit codes: 0 written, 1 the files could not be written, 2 bad input (not a run folder, unreadable
model or card file), 130 stopped with Ctrl-C.
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
    tell,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="write a run's report (HTML and PDF)",
        description="Evaluate a run on its validation and test splits (and include external evaluations saved "
        "by `tl-desktop evaluate --data`) and write report.html and report.pdf.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run folder (it holds config.json and model.tlmodel), "
                        "or a cross-validation folder made by `tl-desktop cv`")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: RUN/report)")
    parser.add_argument("--card", metavar="FILE", help="text file with the intended use and limitations "
                        "(default: RUN/model_card.md if present, else a generated draft)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the intervals of balanced accuracy, F1 and macro AUC "
                        "(default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    add_force_flag(parser, "the report files in --out")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.evaluation.evaluate import EvaluationError
    from tl_desktop.engine.models.bundle import BundleError
    from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
    from tl_desktop.engine.workflows.cv_folder import CVFolder
    from tl_desktop.fileio import DiskWriteError
    from tl_desktop.report.build import REPORT_FILES, build_report
    from tl_desktop.report.cv_report import build_cv_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"error: {run_dir} is not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.out and refuses_to_replace([Path(args.out) / name for name in REPORT_FILES], args.force):
        return EXIT_BAD_INPUT
    if args.bootstrap < 0:
        print("error: --bootstrap must be 0 or more", file=sys.stderr)
        return EXIT_BAD_INPUT
    card = None
    if args.card:
        try:
            card = Path(args.card).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read the card file {args.card}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        if CVFolder(run_dir).is_cv():
            files = build_cv_report(run_dir, args.out, n_bootstrap=args.bootstrap, seed=args.seed)
        else:
            if RunFolder(run_dir).is_run():
                model_file_of(run_dir, note=tell)
            files = build_report(run_dir, args.out, model_card=card, n_bootstrap=args.bootstrap, seed=args.seed,
                                 progress=lambda text: print(f"{text}…", file=sys.stderr))
    except (BundleError, EvaluationError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DiskWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return EXIT_STOPPED
    print(f"Wrote {files.html} and {files.pdf} ({files.pdf_pages} pages)")
    if files.missing_glyphs:
        tell(f"note: no font on this computer has {' '.join(files.missing_glyphs)}; the report shows them as "
             "boxes and says so (install e.g. Noto Sans CJK and write it again)")
    if files.unfinished:
        tell(unfinished_warning(files.unfinished, args.card, RunFolder(run_dir).card_file))
    for title, first, last in files.sections:
        print(f"  {title}: page {first}" + (f"–{last}" if last > first else ""))
    return EXIT_OK


def unfinished_warning(parts: tuple[str, ...], card: str | None, saved: Path) -> str:
    """What to do about the placeholders the report printed, and where the text to complete is."""
    if card:
        where = f"Complete them in {card} and run `tl-desktop report` again."
    elif saved.is_file():
        where = f"Complete them in {saved} and run `tl-desktop report` again."
    else:
        where = ("Copy the report's last section into a text file, complete it and give it with --card FILE "
                 f"(it is kept as {saved} for the next report).")
    return (f"warning: the intended use and limitations still say \"[to be completed …]\" in {', '.join(parts)}; "
            f"the report prints them as they are. {where}")
