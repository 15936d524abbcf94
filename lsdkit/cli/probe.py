"""``lsdkit probe``: baseline features on the benchmark tasks (Markdown table and tidy CSV)."""

from __future__ import annotations

import sys

from lsdkit.cli.args import (add_task_file_arguments, check_task_file_arguments, comma_list, describe_task, flag_error,
                             load_task_ref, names, positive_int, task_refs)

METRICS = ("macro_f1", "balanced_accuracy", "mcc", "auroc", "auprc")


def task_names() -> list[str]:
    from lsdkit.data.tasks import TASKS
    return list(TASKS)


def add_commands(sub) -> None:
    from lsdkit.baselines import FEATURIZERS
    p = sub.add_parser("probe", help="probe baseline representations on the benchmark tasks",
                       description="Fit probes (hyper-parameters on valid) and score test once; "
                                   "prints a Markdown table and writes a tidy CSV.")
    p.add_argument("--features", required=True, type=_feature_names, metavar="NAME[,NAME...]",
                   help=f"one or more (comma separated) of {', '.join(FEATURIZERS)}, or a pretrained model: near, "
                        "esm2:PATH[@LAYER] (ESM-2 weights on disk: a fair-esm .pt or a HuggingFace directory; LAYER "
                        "default last). With several, a comparison table follows: every test score with its 95 %% "
                        "interval, and each representation against the best composition baseline given (the floor)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="where near / esm2 / unirep features are cached per sequence set "
                        "(default $LSDKIT_CACHE/features, i.e. ~/.cache/lsdkit/features)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                   help="near / esm2 / unirep forward passes: fp32 (default) or bf16 (autocast; UniRep: bf16 "
                        "recurrent products). The representation's name gets a -bf16 suffix")
    p.add_argument("--task", required=True, type=task_refs(task_names, allow_all=True),
                   help="a registered task name, a task file (CSV/TSV, or FASTA with --labels), a comma-separated "
                        "list of these, or 'all'")
    p.add_argument("--data", default=None, help="data directory (default: $LSDKIT_DATA)")
    p.add_argument("--out", default=None, help="tidy results CSV to write")
    p.add_argument("--model", default="linear", choices=("linear", "mlp"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=positive_int, default=None, help="cap on training rows (default: per task)")
    p.add_argument("--max-valid", type=positive_int, default=None, help="cap on validation rows (default: per task)")
    p.add_argument("--metrics", type=names(METRICS, "metric"), default=(),
                   help="extra metrics beside each task's own, where its kind has them: "
                        f"{', '.join(METRICS)} (task files get them by default)")
    p.add_argument("--floor-out", default=None, metavar="FILE",
                   help="with several --features: write the comparison against the floor to this CSV")
    p.add_argument("--predictions", default=None, metavar="FILE",
                   help="write every test record's label, prediction and score to this CSV")
    p.add_argument("--folds", type=positive_int, default=None, metavar="K",
                   help="K-fold cross-validation of a task file without a split column (mean ± sd over folds)")
    add_task_file_arguments(p)
    p.set_defaults(func=_cmd_probe)


def _feature_name(text: str) -> str:
    import argparse

    from lsdkit.baselines import FEATURIZERS, is_featurizer
    if not is_featurizer(text):
        raise argparse.ArgumentTypeError(f"unknown features {text!r}; choose from {', '.join(FEATURIZERS)}, near, "
                                         "esm2:PATH[@LAYER]")
    return text


_feature_names = comma_list(_feature_name, "feature name")


FLOOR_FEATURES = ("composition", "dipeptide", "onehot", "onehot-flat")   # the floor of the comparison


def _featurizer(args, name, flat_length):
    """The featurizer ``name`` (pretrained models and UniRep: built once, cached on disk)."""
    from lsdkit.baselines import get_featurizer
    from lsdkit.pretrained import default_cache_dir, is_spec
    if not (is_spec(name) or name == "unirep"):
        return get_featurizer(name, flat_length=flat_length)
    built = args.__dict__.setdefault("_featurizers", {})
    if name not in built:
        built[name] = get_featurizer(name, cache_dir=args.cache or default_cache_dir(), precision=args.precision)
    return built[name]


def _cmd_probe(args) -> int:
    from lsdkit.data.sources import DataError
    from lsdkit.data.tasks import TASKS, load_task, task_folds
    from lsdkit.probe import ProbeConfig, markdown_table, prediction_rows, result_rows, run_probe

    check_task_file_arguments(args, args.task)
    if args.floor_out and len(args.features) < 2:
        raise flag_error("--floor-out", "needs several --features (a composition baseline and what to compare with it)")
    cfg = ProbeConfig(model=args.model, seed=args.seed, max_train_rows=args.max_train, max_valid_rows=args.max_valid,
                      extra_metrics=args.metrics)
    everything = "all" in args.task
    refs = task_names() if everything else list(args.task)
    tasks = [load_task_ref(args, ref) for ref in refs]          # task files: read (and checked) before any work
    if args.folds is not None:
        from lsdkit.data.tasks import cv_task
        if all(isinstance(t, str) for t in tasks):
            raise flag_error("--folds", "applies only to a task file (give --task PATH)")
        tasks = [t if isinstance(t, str) else cv_task(t, args.folds) for t in tasks]
    for task in tasks:
        if not isinstance(task, str):
            print("\n".join(describe_task(task[0] if isinstance(task, list) else task)), file=sys.stderr, flush=True)
    done, rows, predicted, floor_names = [], [], [], set()
    for task in tasks:
        spec = TASKS[task] if isinstance(task, str) else task[0].spec if isinstance(task, list) else task.spec
        if isinstance(task, str):
            print(describe_task(load_task(task, args.data, task_folds(task)[0]))[-1], file=sys.stderr, flush=True)
        for name in args.features:
            if name == "onehot-flat" and (spec.sequence_length is None or spec.kind == "residue_multiclass"):
                if not everything:
                    raise DataError(f"onehot-flat needs a fixed-length task; {spec.name} has none (try gb1_*, gfp)")
                continue
            featurizer = _featurizer(args, name, spec.sequence_length)
            if isinstance(task, list):                   # --folds: one probe per fold, rows give mean ± sd
                results = [r for fold in task for r in run_probe(fold, featurizer, cfg, data=args.data)]
            else:
                results = run_probe(task, featurizer, cfg, data=args.data)
            if name in FLOOR_FEATURES:
                floor_names.add(results[0].representation)
            done.append(results)
            rows += result_rows(results)
            print(markdown_table([results]).splitlines()[-1], file=sys.stderr, flush=True)
            if isinstance(task, list):
                folds = {d.fold: d for d in task}
            else:
                folds = {r.fold: (task if not isinstance(task, str) else load_task(task, args.data, r.fold))
                         for r in results}
            print(_metric_lines(results, folds), file=sys.stderr, flush=True)
            if args.predictions:
                predicted += [row for r in results for row in prediction_rows(folds[r.fold], r)]
    print(markdown_table(done))
    if args.out:
        write_rows_csv(args.out, rows)
    if len(args.features) > 1:
        floor = _comparison(done, floor_names)
        if args.floor_out and floor is not None:
            write_rows_csv(args.floor_out, floor.to_dict("records"))
    if args.predictions:
        write_rows_csv(args.predictions, predicted)
        print(f"wrote {len(predicted)} test predictions to {args.predictions}", file=sys.stderr)
    return 0


def _comparison(done, floor_names):
    """Print the representations x tasks grid of test scores with their 95 % intervals and, when
    some of the features are composition baselines, every other one against the best of them per
    task (paired bootstrap on the same test items). Returns the floor comparison (or None)."""
    import pandas as pd

    from lsdkit.probe import pooled_predictions, score_interval
    from lsdkit.report import floor_comparison, floor_markdown, to_markdown
    table, preds = [], {}
    for results in done:
        r0 = results[0]
        ci = score_interval(results)         # its value: the first probe seed's (all of a linear probe's)
        table.append(dict(row=r0.representation, task=r0.task, metric=r0.metric, value=ci.value, ci_low=ci.low,
                          ci_high=ci.high, detail=""))
        preds[r0.representation, r0.task] = pooled_predictions(results)
    table = pd.DataFrame(table)
    print("\nTest scores, 95 % bootstrap intervals over test items:\n")
    print(to_markdown(table))
    if not floor_names or set(table["row"]) <= floor_names:
        return None
    floor = floor_comparison(table, preds, floor_rows=floor_names)
    print("\nAgainst the floor (the best of " + ", ".join(sorted(floor_names)) + " per task, by test score):\n")
    print(floor_markdown(floor))
    return floor


def _metric_lines(results, folds) -> str:
    """Every test metric of a task (mean over folds) and, for a classification, the per-class report."""
    import numpy as np

    from lsdkit.probe import class_report, pooled_predictions
    r0 = results[0]
    scores = ", ".join(f"{m}={np.mean([r.test[m] for r in results]):.3f}" for m in r0.metrics)
    lines = [f"{r0.task} test: {scores}"]
    data = folds[r0.fold]
    if data.kind in ("multiclass", "binary", "pair_binary", "residue_multiclass"):
        p = pooled_predictions(results)
        report = class_report(p.y, p.pred, data.classes)
        if len(report) > 30:
            lines.append(f"  per-class report: {len(report)} classes (--predictions writes every record)")
        else:
            lines.append(f"  {'class':<24} precision  recall      f1  support")
            lines += [f"  {str(c['class'])[:24]:<24} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:7.3f} "
                      f"{c['support']:8d}" for c in report]
    return "\n".join(lines)


def write_rows_csv(path, rows: list[dict]) -> None:
    import csv

    from lsdkit.io import atomic_open
    with atomic_open(path, "w", newline="") as fh:
        fields = list(dict.fromkeys(k for row in rows for k in row)) or ["representation"]
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
