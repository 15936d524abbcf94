"""``lsdkit notebooks run|strip``: the numbered notebooks headless (papermill)."""

from __future__ import annotations

from pathlib import Path

from lsdkit.cli.args import add_group, positive_float


def add_commands(sub) -> None:
    from lsdkit.notebooks import PARAM_SETS
    nsub = add_group(sub, "notebooks", help="run the numbered notebooks headless (papermill)",
                     description="Execute the study's notebooks in order with a parameter set, or strip their outputs.")
    r = nsub.add_parser("run", help="execute every notebook in order, writing executed copies and figures")
    r.add_argument("--params", choices=PARAM_SETS, default="ci", help="parameter set from notebooks/params.json")
    r.add_argument("--out", required=True, help="output folder (executed notebooks, figures/, run/, README.md)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks (name or number, e.g. 00 03)")
    r.add_argument("--run-dir", help="where models are trained/loaded (default OUT/run)")
    r.add_argument("--notebooks", help="folder of notebooks (default: the checkout's notebooks/, else the installed copy)")
    r.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    r.add_argument("--cell-timeout", type=positive_float, help="seconds allowed per cell (default: none)")
    r.set_defaults(func=_cmd_run)
    s = nsub.add_parser("strip", help="remove outputs from the committed notebooks (in place)")
    s.add_argument("--notebooks", help="folder of notebooks (default: the checkout's notebooks/, else the installed copy)")
    s.set_defaults(func=_cmd_strip)


def _cmd_run(args) -> int:
    return run(args.out, args.params, args.only, notebooks=args.notebooks, run_dir=args.run_dir,
               log_output=args.log_output, cell_timeout=args.cell_timeout)


def run(out, params: str, only=None, **kw) -> int:
    """Run the notebooks; 0 when all ran, 1 when one failed (its executed copy holds the traceback)."""
    from lsdkit.notebooks import NotebookError, run_notebooks
    try:
        runs = run_notebooks(out, params, only, **kw)
    except NotebookError as exc:
        if exc.output is None:      # could not start (bad parameters, --only, ...): a user error, exit 2
            raise
        print(f"error: {exc}")
        return 1
    total = sum(r.seconds for r in runs)
    print(f"{len(runs)} notebook(s) executed in {total:.0f} s; report: {Path(out) / 'README.md'}")
    return 0


def _cmd_strip(args) -> int:
    from lsdkit.notebooks import list_notebooks, strip_outputs
    changed = [nb.name for nb in list_notebooks(args.notebooks) if strip_outputs(nb)]
    print(f"stripped {', '.join(changed)}" if changed else "all notebooks already stripped")
    return 0
