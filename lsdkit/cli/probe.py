"""``lsdkit probe``: baseline features on the benchmark tasks (Markdown table and tidy CSV)."""

from __future__ import annotations

import sys

from lsdkit.cli.args import names, positive_int


def task_names() -> list[str]:
    from lsdkit.data.tasks import TASKS
    return list(TASKS)


def add_commands(sub) -> None:
    from lsdkit.baselines import FEATURIZERS
    p = sub.add_parser("probe", help="probe baseline representations on the benchmark tasks",
                       description="Fit probes (hyper-parameters on valid) and score test once; "
                                   "prints a Markdown table and writes a tidy CSV.")
    p.add_argument("--features", required=True, choices=FEATURIZERS)
    p.add_argument("--task", required=True, type=names(lambda: [*task_names(), "all"], "task"),
                   help="a registered task name, a comma-separated list, or 'all'")
    p.add_argument("--data", default=None, help="data directory (default: $LSDKIT_DATA)")
    p.add_argument("--out", default=None, help="tidy results CSV to write")
    p.add_argument("--model", default="linear", choices=("linear", "mlp"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=positive_int, default=None, help="cap on training rows (default: per task)")
    p.set_defaults(func=_cmd_probe)


def _cmd_probe(args) -> int:
    from lsdkit.baselines import get_featurizer
    from lsdkit.data.sources import DataError
    from lsdkit.data.tasks import TASKS
    from lsdkit.probe import ProbeConfig, markdown_table, result_rows, run_probe

    cfg = ProbeConfig(model=args.model, seed=args.seed, max_train_rows=args.max_train)
    everything = "all" in args.task
    done, rows = [], []
    for name in (task_names() if everything else args.task):
        spec = TASKS[name]
        if args.features == "onehot-flat" and (spec.sequence_length is None or spec.kind == "residue_multiclass"):
            if not everything:
                raise DataError(f"onehot-flat needs a fixed-length task; {name} has none (try gb1_*, gfp)")
            continue
        featurizer = get_featurizer(args.features, flat_length=spec.sequence_length)
        results = run_probe(name, featurizer, cfg, data=args.data)
        done.append(results)
        rows += result_rows(results)
        print(markdown_table([results]).splitlines()[-1], file=sys.stderr, flush=True)
    print(markdown_table(done))
    if args.out:
        write_rows_csv(args.out, rows)
    return 0


def write_rows_csv(path, rows: list[dict]) -> None:
    import csv

    from lsdkit.io import atomic_open
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["representation"])
        w.writeheader()
        w.writerows(rows)
