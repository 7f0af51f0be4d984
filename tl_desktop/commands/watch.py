"""``tl-desktop watch RUN``: follow a run that another process writes (a torchrun job on a server, a
run on another machine, reached over a shared drive) by tailing its ``events.jsonl``, printing each
epoch as ``train`` does, until the run ends.

RUN is a run folder, or the folder a job writes its runs to (its newest run is followed; with none
yet, watch waits for one). Exit codes: 0 the run completed (or stopped with a model), 1 it failed or
stopped without a model, 2 RUN is not a folder, 130 the watching was interrupted (the run goes on).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from tl_desktop.commands import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_STOPPED


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "watch", help="follow a run another process is writing (e.g. a torchrun job) until it ends",
        description="Follow a run folder written by another process (a torchrun job on a server, or a run on "
        "another computer, over a shared drive): print its progress as it happens, until it ends. The run is "
        "not touched; Ctrl-C stops watching, not the run.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run folder, or the folder a job writes its run folders "
                        "to (its newest run is followed; with none yet, watch waits for one)")
    parser.add_argument("--poll", type=float, default=0.5, metavar="SECONDS",
                        help="how often to look for new lines (default 0.5)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.runtime.stop import StopRequested, StopToken
    from tl_desktop.engine.training.callbacks import ConsoleProgress
    from tl_desktop.engine.workflows.watch import follow_run

    if not args.poll > 0:
        print(f"error: --poll must be a positive number of seconds, got {args.poll}", file=sys.stderr)
        return EXIT_BAD_INPUT
    stop = StopToken()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.request())
    printer = ConsoleProgress()
    try:
        followed = follow_run(args.run_dir, printer.on_event, stop, poll_s=args.poll,
                              on_waiting=lambda text: print(text[:1].upper() + text[1:] + " (Ctrl-C to stop) ...",
                                                            flush=True))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StopRequested:
        print("\nStopped watching; the run itself goes on.", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        signal.signal(signal.SIGINT, previous)
    result = followed.fit_result()
    if result.model_path is None:
        return EXIT_FAILED
    print(f"Next: tl-desktop evaluate --model {result.run_dir} --split test, then tl-desktop report {result.run_dir}")
    return EXIT_OK
