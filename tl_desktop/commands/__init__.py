"""Sub-commands of ``tl-desktop``: each module has ``add_parser(subparsers)``; the parser it adds
sets ``run`` (via ``set_defaults(run=...)``) to a function taking the parsed arguments."""
