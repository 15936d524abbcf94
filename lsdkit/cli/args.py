"""Argument parsing shared by the commands: a parser whose errors are one line, and typed flags.

Every bad argument becomes a :class:`~lsdkit.errors.ArgumentError` whose message names the flag,
raised before any work starts; :func:`lsdkit.cli.main` prints it as one line and exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lsdkit.errors import ArgumentError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`ArgumentError` (one line, exit 2) instead of
    printing the usage and calling ``sys.exit``."""

    def error(self, message: str):
        raise ArgumentError(f"{message} (see `{self.prog} --help`)")


def add_group(sub, name: str, help: str, description: str, metavar: str = "SUBCOMMAND"):
    """A command group (``lsdkit NAME SUBCOMMAND``); returns the subparsers to add its commands to.
    Given without a subcommand, the group prints its help (exit 2)."""
    group = sub.add_parser(name, help=help, description=description)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar=metavar)


def flag_error(flag: str, message: str) -> ArgumentError:
    return ArgumentError(f"{flag}: {message}")


# --- argparse ``type=`` converters (argparse names the flag in its message) ------------------------------
def _number(cast: Callable, test: Callable, what: str):
    def convert(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    convert.__name__ = what          # argparse shows the converter's name in some messages
    return convert


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a number > 0")


def unit_floats(text: str) -> tuple[float, ...]:
    """Comma-separated levels t in [0, 1] (at least one)."""
    values = []
    for part in (x.strip() for x in text.split(",")):
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number (give e.g. 0,0.1,0.5)") from None
        if not 0.0 <= values[-1] <= 1.0:
            raise argparse.ArgumentTypeError(f"levels must lie in [0, 1], got {part}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one level t in [0, 1]")
    return tuple(values)


def layer_list(text: str) -> str | tuple[int, ...]:
    """``all``, or comma-separated layer indices (negative counts from the last)."""
    if text.strip() == "all":
        return "all"
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected 'all' or at least one layer index")
    return values


def device_name(text: str) -> str:
    """auto | cpu | cuda | cuda:N, checked against this machine (CUDA asked for but absent is an error)."""
    from lsdkit.device import resolve_device
    try:
        resolve_device(text)
    except ArgumentError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def names(choices, noun: str = "name") -> Callable[[str], tuple[str, ...]]:
    """Comma-separated names, each one of ``choices`` (a list, or a function giving it when parsing)."""
    def convert(text: str) -> tuple[str, ...]:
        known = choices() if callable(choices) else choices
        values = tuple(x.strip() for x in text.split(",") if x.strip())
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one {noun}")
        unknown = [v for v in values if v not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {noun} {unknown[0]!r}; choose from {', '.join(known)}")
        return values
    return convert


def pretrained_spec(text: str) -> str:
    """A pretrained model: ``near`` or ``esm2:PATH[@LAYER]`` (the weights are not read yet)."""
    from lsdkit.pretrained import is_spec
    if not is_spec(text):
        raise argparse.ArgumentTypeError(f"unknown pretrained model {text!r}: near or esm2:PATH[@LAYER]")
    return text


def comma_list(item: Callable[[str], str], noun: str) -> Callable[[str], tuple[str, ...]]:
    """Comma-separated values, each checked by ``item`` (an argparse type), duplicates dropped."""
    def convert(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one {noun}")
        return tuple(item(v) for v in values)
    return convert


pretrained_specs = comma_list(pretrained_spec, "pretrained model (near, esm2:PATH[@LAYER])")


# --- tasks: registered names or your own files ----------------------------------------------------------
TASK_FILE_SUFFIXES = (".csv", ".tsv", ".tab", ".fasta", ".fa", ".faa", ".fas")


def _looks_like_file(text: str) -> bool:
    from pathlib import Path
    name = text.lower()
    for z in (".gz", ".xz", ".bz2"):
        name = name.removesuffix(z)
    return Path(text).exists() or "/" in text or name.endswith(TASK_FILE_SUFFIXES)


def task_refs(choices, allow_all: bool = False) -> Callable[[str], tuple[str, ...]]:
    """Comma-separated tasks: registered names (``choices``, a list or a function giving it), ``all``
    if allowed, or paths of task files (CSV/TSV/FASTA, optionally compressed), which must exist."""
    def convert(text: str) -> tuple[str, ...]:
        from pathlib import Path
        known = list(choices() if callable(choices) else choices) + (["all"] if allow_all else [])
        values = tuple(x.strip() for x in text.split(",") if x.strip())
        if not values:
            raise argparse.ArgumentTypeError("expected at least one task name or task file")
        for v in values:
            if v in known:
                continue
            if _looks_like_file(v):
                if not Path(v).is_file():
                    raise argparse.ArgumentTypeError(f"task file {v!r} does not exist")
                continue
            raise argparse.ArgumentTypeError(f"unknown task {v!r}; choose from {', '.join(known)}, or give a "
                                             f"task file ({', '.join(TASK_FILE_SUFFIXES)})")
        return values
    return convert


def add_task_file_arguments(p: argparse.ArgumentParser) -> None:
    """How a task file (``--task PATH``) is read: column mapping, kind, bad records, duplicates."""
    from lsdkit.data.tasks import DUPLICATES, LABEL_KINDS, ON_BAD
    g = p.add_argument_group("task files", "for a CSV/TSV/FASTA task given as a path (lsdkit.data.tasks."
                                           "load_custom_task)")
    g.add_argument("--labels", default=None, help="a FASTA task's labels: CSV/TSV with id, label[, split]")
    g.add_argument("--id-col", default=None, help="id column (default: id, name, accession or entry; else row numbers)")
    g.add_argument("--seq-col", default=None, help="sequence column (default: sequence or seq)")
    g.add_argument("--label-col", default=None, help="label column (default: label or target)")
    g.add_argument("--split-col", default=None,
                   help="split column with train/valid/test (default: split; absent: a stable hash split of the id)")
    g.add_argument("--kind", default=None, choices=LABEL_KINDS, help="label kind (default: inferred, and printed "
                                                                     "with the reason)")
    g.add_argument("--multilabel-sep", default=";", help="separator of a multilabel label's terms (default ;)")
    g.add_argument("--on-bad", default="error", choices=ON_BAD,
                   help="bad records: error (default; all reported at once) or skip (dropped, counted)")
    g.add_argument("--duplicates", default="keep", choices=DUPLICATES,
                   help="exact duplicate sequences across splits: keep (reported) or group (moved to the split of "
                        "the first occurrence)")


TASK_FILE_FLAGS = {"labels": None, "id_col": None, "seq_col": None, "label_col": None, "split_col": None,
                   "kind": None, "multilabel_sep": ";", "on_bad": "error", "duplicates": "keep"}


def check_task_file_arguments(args, tasks) -> None:
    """The task-file flags apply only when a task is a file (and ``--labels`` only to a FASTA one)."""
    from lsdkit.data.tasks import is_fasta_path
    files = [t for t in tasks if _looks_like_file(t)]
    for name, default in TASK_FILE_FLAGS.items():
        if getattr(args, name) != default and not files:
            raise flag_error("--" + name.replace("_", "-"), "applies only to a task file (give --task PATH)")
    if args.labels is not None and not any(is_fasta_path(f) for f in files):
        raise flag_error("--labels", "applies only to a FASTA task file")
    if not args.multilabel_sep:
        raise flag_error("--multilabel-sep", "must not be empty")
    fasta = [f for f in files if is_fasta_path(f)]
    if fasta and args.labels is None:
        raise flag_error("--labels", f"the FASTA task {fasta[0]} needs --labels FILE (id, label[, split])")


def load_task_ref(args, ref: str):
    """A task argument as what run_probe / sweep_task take: a registered name, or a loaded task file."""
    if not _looks_like_file(ref):
        return ref
    from lsdkit.data.tasks import is_fasta_path, load_custom_task
    return load_custom_task(ref, args.kind, labels=args.labels if is_fasta_path(ref) else None,
                            id_col=args.id_col, seq_col=args.seq_col, label_col=args.label_col,
                            split_col=args.split_col, sep=args.multilabel_sep, on_bad=args.on_bad,
                            duplicates=args.duplicates)


def describe_task(task) -> list[str]:
    """Lines printed before a task is probed: a task file's kind (with the reason), classes, sizes and
    notes (dropped records); for every task, exact duplicate sequences across its splits."""
    from lsdkit.data.tasks import describe_duplicates
    lines = []
    if task.spec.protocol.startswith("custom"):
        sizes = "/".join(str(n) for n in task.sizes().values())
        lines.append(f"task {task.name} ({task.spec.source}): {task.notes[0]}; train/valid/test {sizes} records; "
                     f"metric {task.spec.metric}")
        lines += [f"task {task.name}: {n}" for n in task.notes[1:]]
    lines.append(describe_duplicates(task))
    return lines


# --- the options every training command shares ---------------------------------------------------------
def add_train_arguments(p: argparse.ArgumentParser, default_preset: str = "small") -> None:
    """Data, run directory, budget, resume, seed: the options of every ``lsdkit train`` target."""
    from lsdkit.device import PRECISIONS
    from lsdkit.models.presets import SIZES
    from lsdkit.train import TrainConfig
    d = TrainConfig()
    p.add_argument("--preset", default=default_preset, choices=sorted(SIZES),
                   help=f"model size (default {default_preset}); see `lsdkit presets`")
    p.add_argument("--data", help="a FASTA file, or the data directory (default $LSDKIT_DATA: Swiss-Prot 2014)")
    p.add_argument("--out", required=True, help="run directory (metrics.jsonl, checkpoints)")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps)
    p.add_argument("--max-minutes", type=positive_float, default=None)
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    again.add_argument("--overwrite", action="store_true",
                       help="clear a previous run in --out (metrics.jsonl, checkpoints) and start again; without "
                            "--resume or --overwrite an existing run is refused")
    p.add_argument("--batch-tokens", type=positive_int, default=d.batch_tokens,
                   help="tokens per batch (per process); at least the model's max_len")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N corpus records")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--lr", type=positive_float, default=d.lr)
    p.add_argument("--warmup-steps", type=nonnegative_int, default=d.warmup_steps)
    p.add_argument("--eval-every", type=nonnegative_int, default=d.eval_every, help="0: never validate")
    p.add_argument("--ckpt-every", type=positive_int, default=d.ckpt_every)
    p.add_argument("--log-every", type=positive_int, default=d.log_every)
    p.add_argument("--num-workers", type=nonnegative_int, default=d.num_workers)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--device", type=device_name, default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="bf16 autocast or fp32 (default auto: bf16 on CUDA and on CPUs with native bf16, "
                        "e.g. AMX/AVX512-BF16; weights, optimizer and losses stay fp32)")
    p.add_argument("--no-progress", action="store_true")


def train_config_from_args(args):
    """The TrainConfig the shared training flags describe (warm-up capped at the step budget)."""
    from lsdkit.train import TrainConfig
    return TrainConfig(lr=args.lr, warmup_steps=min(args.warmup_steps, args.max_steps), max_steps=args.max_steps,
                       max_minutes=args.max_minutes, seed=args.seed, batch_tokens=args.batch_tokens,
                       eval_every=args.eval_every, ckpt_every=args.ckpt_every, log_every=args.log_every,
                       num_workers=args.num_workers, num_threads=args.threads, device=args.device,
                       precision=args.precision, progress=not args.no_progress)
