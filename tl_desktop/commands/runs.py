"""``tl-desktop runs [FOLDER]``: the run history of a project or runs folder as a table (or JSON), and
``--compare RUN_A RUN_B`` for the settings that differ and the headline metrics of two or more runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tl_desktop.commands import EXIT_BAD_INPUT, EXIT_OK
from tl_desktop.config import RunConfig

SORT_CHOICES = ("name", "date", "status", "backbone", "blocks", "epochs", "time", "val", "test", "balanced", "auc")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    default = RunConfig().out_dir
    parser = subparsers.add_parser(
        "runs",
        help="list the runs of a project or runs folder (status, settings, accuracy)",
        description="List every run folder in FOLDER (and in its runs/ sub-folder): date, status, backbone, "
        "trainable blocks, epochs, time, validation and test accuracy, balanced accuracy and macro AUC "
        "(test figures appear once the run's test split was evaluated).",
    )
    parser.add_argument("folder", nargs="?", default=default, metavar="PROJECT_OR_RUNS_FOLDER",
                        help=f"a project folder or a folder of run folders (default: {default}/, where train "
                        "puts its runs)")
    parser.add_argument("--sort", choices=SORT_CHOICES, default="date", metavar="COLUMN",
                        help=f"sort by one of: {', '.join(SORT_CHOICES)} (default date; dates newest first, "
                        "accuracies best first)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--compare", nargs="+", metavar="RUN",
                        help="compare two or more runs (folder names in FOLDER, or paths): the settings that "
                        "differ and the headline metrics with their intervals")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.engine.workflows.run_history import (
        RunHistoryError,
        list_runs,
        sort_runs,
    )

    try:
        if args.compare:
            return _compare(Path(args.folder), args.compare, args.json)
        runs = sort_runs(list_runs(args.folder), args.sort)
    except RunHistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not runs:
        print(f"error: {Path(args.folder)} holds no run folders (train puts them in {RunConfig().out_dir}/ "
              "unless --out says otherwise)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=1, ensure_ascii=False))
        return EXIT_OK
    print_table(runs)
    return EXIT_OK


def print_table(runs: list) -> None:
    from tl_desktop.engine.workflows.run_history import COLUMNS, cell_text

    header = list(COLUMNS.values())
    rows = [[cell_text(r, column) for column in COLUMNS] for r in runs]
    print_aligned([header, *rows])
    for r in runs:
        if r.note:
            print(f"{r.name}: note: {r.note}")
        if r.reason:
            print(f"{r.name}: {r.reason}")


def print_aligned(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _compare(folder: Path, names: list[str], as_json: bool) -> int:
    from tl_desktop.engine.workflows.run_comparison import compare_runs
    from tl_desktop.engine.workflows.run_history import RunHistoryError, looks_like_run

    paths = []
    for name in names:
        candidates = [Path(name).expanduser(), folder / name, folder / "runs" / name]
        found = next((p for p in candidates if looks_like_run(p)), None)
        if found is None:
            raise RunHistoryError(f"no run folder {name!r} in {folder} (give a folder name from "
                                  f"`tl-desktop runs {folder}` or a path)")
        paths.append(found)
    comparison = compare_runs(paths)
    names_shown = [r.name for r in comparison.runs]
    if as_json:
        print(json.dumps({
            "runs": [r.to_dict() for r in comparison.runs],
            "differing_settings": {row.key: list(row.values) for row in comparison.differing_settings()},
            "metrics_split": list(comparison.metrics_split),
            "metrics": {row.key: [_metric_json(v, ci) for v, ci in zip(row.values, row.intervals)]
                        for row in comparison.metrics},
        }, indent=1, ensure_ascii=False))
        return EXIT_OK
    differing = comparison.differing_settings()
    print("Settings that differ:" if differing else "The runs have the same settings.")
    if differing:
        print_aligned([["Setting", *names_shown], *[[row.key, *row.values] for row in differing]])
    print()
    splits = [split or "none" for split in comparison.metrics_split]
    print("Headline metrics (evaluated split: " + ", ".join(f"{n}: {s}" for n, s in zip(names_shown, splits)) + ")")
    print_aligned([["Metric", *names_shown], *[[row.label, *row.texts()] for row in comparison.metrics]])
    return EXIT_OK


def _metric_json(value: float | None, ci: Any) -> dict[str, Any]:
    return {"value": value, **({} if ci is None else {"low": ci.low, "high": ci.high, "method": ci.method})}
