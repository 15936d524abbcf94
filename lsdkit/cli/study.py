"""``lsdkit reproduce``, ``lsdkit sweep``, ``lsdkit table``: the study, a checkpoint's t-sweep, the table."""

from __future__ import annotations

import sys
from pathlib import Path

from lsdkit.cli.args import (add_task_file_arguments, check_task_file_arguments, describe_task, flag_error,
                             layer_list, load_task_ref, names, positive_float, positive_int, pretrained_specs, task_refs,
                             unit_floats)
from lsdkit.cli.probe import task_names


def add_commands(sub) -> None:
    from lsdkit.schedules import DEFAULT_TS
    from lsdkit.study import STUDY_PRESETS

    p = sub.add_parser("reproduce", help="train, sweep, probe and tabulate the whole study (or run the notebooks)",
                       description="Run the study in --out: train-or-load every latent space and its diffusion "
                                   "model, sweep t, probe, write table.md and findings.md. With --notebooks, "
                                   "execute the numbered notebooks with papermill instead.")
    p.add_argument("--preset", default="tiny", choices=sorted(STUDY_PRESETS), help="study preset (default tiny)")
    p.add_argument("--out", required=True, help="run directory (re-running continues where it stopped)")
    p.add_argument("--data", default=None, help="data directory (default $LSDKIT_DATA; tiny uses the bundled sample)")
    p.add_argument("--tasks", type=names(task_names, "task"), default=None,
                   help="comma-separated task names (default: the preset's)")
    p.add_argument("--encoder-steps", type=positive_int, default=None)
    p.add_argument("--diffusion-steps", type=positive_int, default=None)
    p.add_argument("--max-minutes", type=positive_float, default=None, help="wall-time cap per encoder")
    p.add_argument("--pretrained", type=pretrained_specs, default=None, metavar="MODEL[,MODEL]",
                   help="pretrained latent spaces beside the encoders: near, esm2:PATH[@LAYER] (their denoisers are "
                        "trained and swept like the encoders'; rows 'NEAR embedding', 'Diffusion on NEAR')")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="train and sweep up to N encoders in parallel processes (CPU threads split "
                        "between them; logs in OUT/logs/)")
    p.add_argument("--notebooks", action="store_true", help="execute notebooks/ with papermill into --out")
    p.add_argument("--params", default="ci", choices=("ci", "full"), help="notebook parameter set")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_reproduce)

    s = sub.add_parser("sweep", help="probe a checkpoint's representations over t (tidy CSV)",
                       description="Probe the latent and every (t, layer) of a checkpoint on tasks; the best "
                                   "(t, layer) is chosen on validation and reported on test.")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--name", default=None, help="representation name in the table (default: checkpoint dir name)")
    s.add_argument("--tasks", required=True, type=task_refs(task_names),
                   help="comma-separated registered task names and/or task files (CSV/TSV, or FASTA with --labels)")
    s.add_argument("--t", type=unit_floats, default=DEFAULT_TS,
                   help=f"levels t in [0, 1], comma separated (default {','.join(f'{t:g}' for t in DEFAULT_TS)})")
    s.add_argument("--layers", type=layer_list, default="all", help="'all' or comma-separated layer indices")
    s.add_argument("--data", default=None)
    s.add_argument("--cache", default=None, help="representation cache directory")
    s.add_argument("--long", choices=("window", "truncate"), default="window",
                   help="sequences longer than the model's window: overlapping windows (default) or cut")
    s.add_argument("--max-train", type=positive_int, default=None,
                   help="cap on probe training rows (seeded subsample; default: per task)")
    s.add_argument("--max-valid", type=positive_int, default=None, help="cap on probe validation rows")
    s.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                   help="encoder and denoiser passes: fp32 (default) or bf16 autocast")
    s.add_argument("--out", required=True, help="tidy CSV to write (the chosen keys' test predictions go "
                                                "beside it, same name, .npz)")
    add_task_file_arguments(s)
    s.set_defaults(func=_cmd_sweep)

    t = sub.add_parser("table", help="the comparison table and the paper's findings from a study directory")
    t.add_argument("--run", required=True, help="study directory holding sweep.csv (and baselines.csv)")
    t.set_defaults(func=_cmd_table)


def _cmd_reproduce(args) -> int:
    from lsdkit.study import Study, study_config
    if args.notebooks:
        from lsdkit.cli.notebooks import run
        return run(args.out, args.params)
    overrides = {k: v for k, v in dict(encoder_steps=args.encoder_steps, diffusion_steps=args.diffusion_steps,
                                       max_minutes=args.max_minutes, tasks=args.tasks,
                                       pretrained=args.pretrained).items() if v is not None}
    study = Study(args.out, study_config(args.preset, **overrides), data_dir=args.data, progress=not args.no_progress)
    study.run(jobs=args.jobs)
    for name in ("table.md", "findings.md"):
        print((study.run_dir / name).read_text())
    print(f"written: {study.run_dir / 'table.md'}, {study.run_dir / 'findings.md'}")
    return 0


def _cmd_sweep(args) -> int:
    import pandas as pd

    from lsdkit.data.tasks import load_task, task_folds
    from lsdkit.probe import ProbeConfig, save_predictions
    from lsdkit.represent import LayerError, Representer
    from lsdkit.study import save_frame
    from lsdkit.sweep import sweep_task
    check_task_file_arguments(args, args.tasks)
    tasks = [load_task_ref(args, ref) for ref in args.tasks]       # task files: read (and checked) before any work
    for task in tasks:
        if not isinstance(task, str):
            print("\n".join(describe_task(task)), file=sys.stderr, flush=True)
    rep = Representer(args.checkpoint, cache_dir=args.cache, long=args.long, precision=args.precision)
    cfg = ProbeConfig(max_train_rows=args.max_train, max_valid_rows=args.max_valid)
    layers = args.layers if args.layers == "all" else list(args.layers)
    try:
        rep.resolve_layers(layers)
    except LayerError as e:
        raise flag_error("--layers", str(e)) from None
    name = args.name or Path(args.checkpoint).resolve().name
    frames, preds = [], {}
    for task in tasks:
        got = {}
        if isinstance(task, str):
            print(describe_task(load_task(task, args.data, task_folds(task)[0]))[-1], file=sys.stderr, flush=True)
        frames.append(sweep_task(rep, task, name, ts=args.t, layers=layers, config=cfg, data=args.data,
                                 predictions=got))
        task_name = task if isinstance(task, str) else task.name
        preds.update({(name, task_name, k): p for k, p in got.items()})
    df = pd.concat(frames, ignore_index=True)
    save_predictions(Path(args.out).with_suffix(".npz"), preds)      # beside the CSV: for intervals
    save_frame(Path(args.out), df)
    best = df[(df["split"] == "test") & df["selected"]]
    print(best[["representation", "task", "key", "metric", "value"]].to_string(index=False))
    print(_latent_vs_best(best, preds))
    return 0


def _latent_vs_best(best, preds) -> str:
    """The test score of the latent and of the chosen (t, layer) per task, each with its 95 %
    bootstrap interval, and their difference with its paired interval."""
    from lsdkit.represent import LATENT
    lines = ["", "| task | metric | latent | best (t, layer) on valid | chosen − latent |", "|---|---|---|---|---|"]
    for (name, task), rows in best.groupby(["representation", "task"], sort=False):
        metric = rows["metric"].iloc[0]
        latent = preds.get((name, task, LATENT))
        chosen = [k for k in rows["key"] if k != LATENT]
        if latent is None:
            continue
        cells = [latent.interval(metric).format()]
        if chosen:
            p = preds[name, task, chosen[0]]
            cells += [f"{p.interval(metric).format()} ({chosen[0]})", p.diff(latent, metric).format(signed=True)]
        else:
            cells += ["—", "—"]
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cmd_table(args) -> int:
    from lsdkit.report import findings_markdown, floor_markdown, to_markdown, write_report
    from lsdkit.study import floor_table, tabulate
    run = Path(args.run)
    table, findings = tabulate(run, baselines_required=False)
    floor = floor_table(run, table)
    write_report(run, table, findings, floor)
    print(to_markdown(table))
    if not floor.empty:
        print("\nAgainst the floor (learned row − best baseline, paired bootstrap):\n")
        print(floor_markdown(floor))
    print()
    print(findings_markdown(findings))
    return 0
