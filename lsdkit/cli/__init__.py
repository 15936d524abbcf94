"""The ``lsdkit`` command: one module per command group, each thin (parse, call the library, print).

Each module in :data:`COMMAND_MODULES` defines ``add_commands(subparsers)`` and registers its
subcommands with ``func=`` set to a handler taking the parsed arguments. A user error anywhere
(an :class:`~lsdkit.errors.LsdkitError`: a bad flag, a malformed file, a checkpoint of another
model, ...) is printed as one line on stderr with exit code 2; anything else is a bug and keeps
its traceback. No module outside this package imports argparse.
"""

from __future__ import annotations

import importlib
import os
import sys

from lsdkit.cli.args import Parser
from lsdkit.errors import LsdkitError

# modules that contribute subcommands, in the order they appear in ``lsdkit --help``
COMMAND_MODULES = (
    "lsdkit.cli.data",
    "lsdkit.cli.train",
    "lsdkit.cli.sample",
    "lsdkit.cli.embed",
    "lsdkit.cli.notebooks",
    "lsdkit.cli.probe",
    "lsdkit.cli.geometry",
    "lsdkit.cli.study",
)


def build_parser() -> Parser:
    parser = Parser(prog="lsdkit", description="Latent Space Diffusion for protein sequence representations.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from lsdkit import __version__
            print(__version__)
            return 0
        if not getattr(args, "func", None):
            # a command group given without its subcommand, or nothing at all
            getattr(args, "group_parser", parser).print_help()
            return 2
        return int(args.func(args) or 0)
    except LsdkitError as e:
        print(f"lsdkit: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:             # `lsdkit ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


if __name__ == "__main__":
    sys.exit(main())
