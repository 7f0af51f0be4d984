"""Sub-commands of ``tl-desktop``: each module has ``add_parser(subparsers)``; the parser it adds
sets ``run`` (via ``set_defaults(run=...)``) to a function taking the parsed arguments."""

import sys

EXIT_OK = 0  # done
EXIT_FAILED = 1  # the work itself failed (training failed, nothing could be written)
EXIT_BAD_INPUT = 2  # a bad file, folder or setting; the message names it
EXIT_STOPPED = 130  # stopped with Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # stopped by SIGTERM (128 + SIGTERM), e.g. a cluster's scheduler


def tell(text: str) -> None:
    """A note for the user on stderr (stdout stays for results)."""
    print(text, file=sys.stderr)
