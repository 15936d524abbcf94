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
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
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
