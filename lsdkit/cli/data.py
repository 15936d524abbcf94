"""``lsdkit data list|check|fetch|make-sample``: the data directory."""

from __future__ import annotations

from pathlib import Path

from lsdkit.cli.args import add_group, positive_int


def add_commands(sub) -> None:
    from lsdkit.data.bundle import SampleConfig
    from lsdkit.data.sources import ENV_VAR

    data_sub = add_group(sub, "data", help="the data directory: list, check and fetch sources",
                         description=f"Manage the data directory ({ENV_VAR} or --data DIR). See data/README.md.")

    p = data_sub.add_parser("list", help="the registered sources: name, licence, size, description")
    p.set_defaults(func=_cmd_list)

    p = data_sub.add_parser("check", help="verify the sources of a data directory (sizes and sha256)",
                            description=_cmd_check.__doc__)
    p.add_argument("--data", help=f"data directory (default: ${ENV_VAR}, else the bundled one)")
    p.add_argument("--source", nargs="+", metavar="NAME", help="check exactly these sources (absent = error)")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="require every source except the bundled sample")
    p.add_argument("--quick", action="store_true", help="compare sizes only (no sha256)")
    p.set_defaults(func=_cmd_check)

    p = data_sub.add_parser("fetch", help="download a source where a direct URL exists, else print the recipe")
    p.add_argument("name", help="source name (see `lsdkit data list`)")
    p.add_argument("--to", help=f"data directory to fill (default: ${ENV_VAR})")
    p.set_defaults(func=_cmd_fetch)

    p = data_sub.add_parser("make-sample", help="rebuild the bundled Swiss-Prot sample from the full source",
                            description=_cmd_make_sample.__doc__)
    p.add_argument("--data", help="data directory holding swissprot2014_go_metastudent (default: $LSDKIT_DATA)")
    p.add_argument("--to", required=True, help="output data directory (swissprot2014_sample/ is made in it)")
    d = SampleConfig()
    p.add_argument("--n", type=positive_int, default=d.n, help=f"number of sequences (default {d.n})")
    p.add_argument("--min-len", type=positive_int, default=d.min_len, help=f"default {d.min_len}")
    p.add_argument("--max-len", type=positive_int, default=d.max_len, help=f"default {d.max_len}")
    p.add_argument("--salt", default=d.salt, help=f"selection salt (default {d.salt!r})")
    p.set_defaults(func=_cmd_make_sample)


def _cmd_list(args) -> int:
    from lsdkit.data.manage import human_size
    from lsdkit.data.sources import SOURCES
    for s in SOURCES.values():
        print(f"{s.name:<36} {human_size(s.total_size):>9}  {s.licence}")
        print(f"{'':<36} {'':>9}  {s.description}{' (bundled with lsdkit)' if s.bundled else ''}")
    return 0


def _cmd_check(args) -> int:
    """Verify the sources of a data directory against the registry. By default the sources present
    are checked; absent ones are listed, not errors. Exit 0 only when every checked source is OK."""
    from lsdkit.data.manage import check
    from lsdkit.data.sources import ENV_VAR, SOURCES, configured_data_dir, default_data_dir
    root = configured_data_dir(args.data)
    if root is None:
        root = default_data_dir()
        print(f"no data directory given (--data or {ENV_VAR}): checking the bundled one")
    reports = check(root, args.source, everything=args.everything, quick=args.quick)
    if not reports:
        print(f"no known source in {root}: is this a data directory? (`lsdkit data list`)")
        return 1
    print(f"data directory {root} ({'sizes only' if args.quick else 'sizes and sha256'})")
    for r in reports:
        print(r.line())
    checked = {r.source.name for r in reports}
    absent = [s.name for s in SOURCES.values() if s.name not in checked and not s.bundled]
    if absent and not args.source:
        print(f"absent (not required): {', '.join(absent)}")
    bad = [r.source.name for r in reports if not r.ok]
    print(f"{len(reports) - len(bad)} of {len(reports)} sources OK" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def _cmd_fetch(args) -> int:
    import sys

    from lsdkit.data.manage import fetch
    from lsdkit.data.sources import ENV_VAR, DataError, configured_data_dir, get_source
    src = get_source(args.name)
    root = Path(args.to) if args.to else configured_data_dir(None)
    if root is None:
        raise DataError(f"say where to put it: --to DIR (or set {ENV_VAR})")
    print(f"fetching {src.name} into {root / src.folder}")
    try:
        left = fetch(src, root)
    except DataError as exc:
        print(f"lsdkit: error: {exc}", file=sys.stderr)
        print(f"how to obtain {src.name} by hand (on a machine with internet):\n  {src.obtain}")
        return 1
    if not left:
        print(f"{src.name}: all {len(src.files)} files present and verified")
        return 0
    print(f"{src.name}: no direct download for {len(left)} file(s): {', '.join(left)}")
    print(f"how to obtain them (on a machine with internet):\n  {src.obtain}")
    print(f"licence: {src.licence}\nthen verify with: lsdkit data check --data {root} --source {src.name}")
    return 1


def _cmd_make_sample(args) -> int:
    """Cut the bundled sample from swissprot2014_go_metastudent (see lsdkit/data/bundle.py for the
    selection rule). Rebuild the shipped one with:
    lsdkit data make-sample --data FULL_DATA_DIR --to lsdkit/data/bundled"""
    from lsdkit.data.bundle import SampleConfig, make_sample
    from lsdkit.data.sources import data_dir
    from lsdkit.io import sha256_file
    full = data_dir(args.data)
    cfg = SampleConfig(n=args.n, min_len=args.min_len, max_len=args.max_len, salt=args.salt)
    written = make_sample(full, Path(args.to), cfg)
    for name, path in written.items():
        print(f"{sha256_file(path)}  {path.stat().st_size:>9}  {path}")
    return 0
