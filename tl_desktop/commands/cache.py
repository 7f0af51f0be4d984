"""``tl-desktop cache info|clear``: show or empty the per-user cache of features and decoded images."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the cache of features and decoded images",
        description="The cache speeds up training on frozen backbones. It lives in a per-user folder "
        "(TL_DESKTOP_CACHE_DIR overrides it; TL_DESKTOP_CACHE_LIMIT_MB sets its size limit).",
    )
    actions = parser.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    actions.add_parser("info", help="print the cache folder, its size limit and what it holds")
    clear = actions.add_parser("clear", help="delete cached features and decoded images")
    clear.add_argument("--weights", action="store_true",
                       help="also delete downloaded backbone weights (they are downloaded again when needed)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tl_desktop.engine.caching.store import CacheError, CacheStore, human_size

    try:
        store = CacheStore()
        if args.cache_action == "info":
            for line in store.info().summary_lines():
                print(line)
            return 0
        freed = store.clear(include_weights=args.weights)
    except (CacheError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"cleared {human_size(freed)} from {store.root}")
    return 0
