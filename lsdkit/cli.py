"""The ``lsdkit`` command.

Each concept module that offers commands defines ``add_commands(subparsers)`` and registers its
subcommands there (each with ``func=`` set to a handler taking the parsed ``args``); this file
only collects them, so a command lives next to the code it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# modules that contribute subcommands, in the order they appear in ``lsdkit --help``
COMMAND_MODULES = (
    "lsdkit.data.sources",
    "lsdkit.train",
    "lsdkit.models.diffusion", "lsdkit.sample", "lsdkit.embed",
    "lsdkit.notebooks",
    "lsdkit.probe",
    "lsdkit.study",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsdkit",
        description="Latent Space Diffusion for protein sequence representations.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from lsdkit import __version__
        print(__version__)
        return 0
    if not getattr(args, "func", None):
        # a command group given without its subcommand, or nothing at all
        target = getattr(args, "_group_parser", parser)
        target.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
