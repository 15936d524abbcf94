"""The study: train every latent space and its diffusion model, sweep, probe, tabulate, judge.

A :class:`Study` owns one run directory::

    RUN/
      tn/ nm/ mlm/ [tnm/]            autoencoder / MLM training runs (metrics.jsonl, step_*/ checkpoints)
      diffusion_tn/ ...               a denoiser per latent space
      cache/                          representation cache (Representer), keyed by model, data, t
      sweep.csv                       tidy: representation, task, key, t, layer, split, metric, value, ...
      baselines.csv                   the same columns for composition / dipeptide / ... features
      table.csv, table.md, findings.md

Every step is train-**or-load**: a model whose run finished is loaded, an interrupted one resumes
(the Trainer's checkpoints), so ``lsdkit reproduce`` can be stopped and re-run at any point, and
the notebooks call the same methods. Training goes through the ``lsdkit train`` commands (one way
to train), so a study's models are exactly what the CLI would produce.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lsdkit.checkpoint import latest_checkpoint, load_model, write_text_atomic

ENCODERS = {"tn": "LSD-TN", "nm": "LSD-NM", "tnm": "LSD-TN-M", "mlm": "MLM"}


@dataclass
class StudyConfig:
    """What a study trains and measures. Presets below; every field can be overridden."""

    preset: str = "tiny"                       # model size preset (lsdkit presets)
    encoders: tuple[str, ...] = ("tn", "nm", "mlm")
    encoder_steps: int = 200
    diffusion_steps: int = 150
    max_minutes: float | None = None           # per encoder (None: train to the step budget)
    diffusion_minutes: float | None = None     # per denoiser (None: as max_minutes)
    warmup_steps: int | None = None            # LR warm-up (None: the trainer's default, capped at the steps)
    batch_tokens: int = 4096
    corpus_limit: int | None = None            # first N corpus records (None: all)
    tasks: tuple[str, ...] = ("go_mf_sp14",)
    ts: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
    layers: str | tuple[int, ...] = "all"
    baselines: tuple[str, ...] = ("composition", "dipeptide")
    max_train_rows: int | None = 3000          # probe training rows per task (seeded subsample)
    max_valid_rows: int | None = 1000
    seed: int = 0


STUDY_PRESETS: dict[str, StudyConfig] = {
    # CI and the README's quick start: bundled sample only, a few minutes on 2 CPU cores
    "tiny": StudyConfig(),
    # the CPU study on Swiss-Prot 2014: `lsdkit reproduce --preset small --jobs 3` on 2 cores.
    # The encoders' 150 steps fit the 30-minute cap there (~11 s per 8k-token step with three models
    # side by side), so their LR schedule completes (the denoisers stop at their 15-minute cap after
    # ~50 of 80 steps); the tasks are two small ones, so that denoiser and sweep
    # take about an hour per encoder there (README, "The CPU study"). Add tasks with --tasks.
    "small": StudyConfig(preset="small", encoder_steps=150, diffusion_steps=80, max_minutes=30,
                         diffusion_minutes=15, warmup_steps=15, batch_tokens=8192,
                         tasks=("metal_ion_binding", "go_mf_sp14"),
                         max_train_rows=700, max_valid_rows=None),
    # paper scale, for a GPU
    "base": StudyConfig(preset="base", encoders=("tn", "nm", "tnm", "mlm"), encoder_steps=100_000,
                        diffusion_steps=100_000, batch_tokens=32768,
                        tasks=("deeploc10", "deeploc_binary", "thermostability", "metal_ion_binding",
                               "ec_level1", "ec_level2", "go_mf", "ppi_yeast", "gfp", "ss3", "go_mf_sp14"),
                        max_train_rows=None, max_valid_rows=None),
}


def study_config(name: str = "tiny", **overrides) -> StudyConfig:
    if name not in STUDY_PRESETS:
        raise ValueError(f"unknown study preset {name!r}; choose one of {sorted(STUDY_PRESETS)}")
    return dataclasses.replace(STUDY_PRESETS[name], **overrides)


class Study:
    """Train-or-load the models of a study in ``run_dir`` and measure them."""

    def __init__(self, run_dir: str | os.PathLike, config: StudyConfig | str = "tiny",
                 data_dir: str | os.PathLike | None = None, progress: bool = True):
        self.run_dir = Path(run_dir)
        self.config = study_config(config) if isinstance(config, str) else config
        self.data_dir = data_dir
        self.progress = progress
        self._valid = None            # the corpus's validation split, loaded on first use
        for name in self.config.encoders:
            if name not in ENCODERS:
                raise ValueError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")

    # -- where things are --------------------------------------------------------------------------
    def checkpoint_path(self, name: str) -> Path:
        """Run directory of ``name``: an encoder (tn, nm, tnm, mlm) or ``diffusion_<encoder>``."""
        return self.run_dir / name

    def _corpus_arg(self) -> str:
        from lsdkit.data.sources import corpus_fasta
        return str(corpus_fasta(self.data_dir))

    def _done_marker(self, name: str) -> Path:
        return self.checkpoint_path(name) / "study_done.json"

    def metrics(self, name: str) -> pd.DataFrame:
        """The training log (metrics.jsonl) of ``name`` as a DataFrame."""
        path = self.checkpoint_path(name) / "metrics.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: {name} has not been trained in this study yet")
        return pd.read_json(path, lines=True)

    # -- train or load -----------------------------------------------------------------------------
    def _train(self, name: str, argv: list[str], steps: int, minutes: float | None) -> Path:
        from lsdkit.cli import main
        c = self.config
        out = self.checkpoint_path(name)
        marker = self._done_marker(name)
        if not marker.exists():
            common = ["--preset", c.preset, "--data", self._corpus_arg(), "--out", str(out),
                      "--max-steps", str(steps), "--batch-tokens", str(c.batch_tokens), "--seed", str(c.seed),
                      "--eval-every", str(max(steps // 5, 1)), "--ckpt-every", str(max(steps // 5, 1)),
                      "--resume"]
            if minutes is not None:
                common += ["--max-minutes", str(minutes)]
            if c.warmup_steps is not None:
                common += ["--warmup-steps", str(c.warmup_steps)]
            if c.corpus_limit is not None:
                common += ["--limit", str(c.corpus_limit)]
            if not self.progress:
                common.append("--no-progress")
            rc = main([*argv, *common])
            if rc != 0:
                raise RuntimeError(f"training {name} failed (exit code {rc}); see the messages above")
            ckpt = latest_checkpoint(out)
            write_text_atomic(marker, json.dumps({"checkpoint": ckpt.name}) + "\n")
        return latest_checkpoint(out)

    def autoencoder(self, name: str):
        """Train (or load) the encoder ``name``: tn | nm | tnm (autoencoders) or mlm."""
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
        argv = ["train", "mlm"] if name == "mlm" else ["train", "autoencoder", "--variant", name]
        return load_model(self._train(name, argv, self.config.encoder_steps, self.config.max_minutes))

    def diffusion(self, name: str):
        """Train (or load) the denoiser on the latents of encoder ``name``."""
        self.autoencoder(name)
        latents = str(latest_checkpoint(self.checkpoint_path(name)))
        ckpt = self._train(f"diffusion_{name}", ["train", "diffusion", "--latents", latents],
                           self.config.diffusion_steps,
                           self.config.max_minutes if self.config.diffusion_minutes is None
                           else self.config.diffusion_minutes)
        return load_model(ckpt)

    def representer(self, name: str, diffusion: bool = True):
        """A cached :class:`~lsdkit.represent.Representer` for ``name`` (its diffusion model, or the
        encoder alone with ``diffusion=False``)."""
        from lsdkit.represent import Representer
        model = self.diffusion(name) if diffusion else self.autoencoder(name)
        return Representer(model, cache_dir=self.run_dir / "cache", seed=self.config.seed)

    # -- look at the models ------------------------------------------------------------------------
    def valid_sequences(self, n: int) -> tuple[list[str], list[str]]:
        """The first ``n`` sequences of the corpus's validation split (fixed crop to max_len)."""
        from lsdkit.alphabet import ALPHABET
        from lsdkit.data.corpus import Corpus, CorpusConfig
        from lsdkit.models.presets import SIZES
        if self._valid is None:       # parsing the corpus takes seconds: once per Study
            cfg = CorpusConfig(fasta=self._corpus_arg(), max_len=SIZES[self.config.preset]["max_len"],
                               limit=self.config.corpus_limit)
            self._valid = Corpus.load(cfg).split("valid")
        ds = self._valid
        items = [ds[i] for i in range(min(n, len(ds)))]
        return [i for i, _ in items], [ALPHABET.decode(t) for _, t in items]

    def _batch(self, seqs: list[str], ids: list[str]) -> dict:
        import torch

        from lsdkit.alphabet import ALPHABET
        tokens, mask = ALPHABET.batch_encode(seqs, ids)
        return {"tokens": torch.as_tensor(tokens), "mask": torch.as_tensor(mask), "ids": list(ids)}

    def reconstruct(self, name: str, seqs: list[str], ids: list[str]) -> list[str]:
        """Each sequence read back from its deterministic latent (argmax of the decoder; for the MLM,
        of its LM head on the unmasked sequence)."""
        import torch

        from lsdkit.alphabet import ALPHABET
        model = self.autoencoder(name).eval()
        b = self._batch(seqs, ids)
        with torch.no_grad():
            z = model.encode(b["tokens"], b["mask"])
            logits = model.head(z) if model.kind == "mlm" else model.decode(z, b["mask"])
        pred = logits.argmax(-1).numpy()
        return [ALPHABET.decode(p[: len(s)]) for p, s in zip(pred, seqs)]

    def loss_by_t(self, name: str, ts, n_sequences: int = 64) -> pd.DataFrame:
        """The diffusion model's loss on ``n_sequences`` validation sequences at each level t
        (noise seeded, so the curve is reproducible)."""
        from lsdkit.train import isolated_rng
        model = self.diffusion(name).eval()
        ids, seqs = self.valid_sequences(n_sequences)
        batch = self._batch(seqs, ids)
        rows = []
        for t in ts:
            with isolated_rng(self.config.seed):
                rows.append({"t": float(t), **model.loss_at(batch, float(t))})
        return pd.DataFrame(rows)

    # -- measure -----------------------------------------------------------------------------------
    def _probe_config(self):
        from lsdkit.probe import ProbeConfig
        c = self.config
        return ProbeConfig(seed=c.seed, max_train_rows=c.max_train_rows, max_valid_rows=c.max_valid_rows)

    def sweep_encoder(self, name: str, tasks: tuple[str, ...] | None = None,
                      ts: tuple[float, ...] | None = None) -> pd.DataFrame:
        """Probe encoder ``name``'s latent and its diffusion model at every (t, layer), per task
        (training them first if needed).

        Each (encoder, task) result is kept in ``sweeps/`` under a key of the checkpoint, the t grid,
        the layers and the probe settings, so calling again (a notebook re-run) costs nothing.
        """
        from lsdkit.sweep import sweep_task
        c = self.config
        ts = tuple(ts or c.ts)
        probe = self._probe_config()
        frames, rep = [], None
        for task in tasks or c.tasks:
            if rep is None:
                rep = self.representer(name)      # train-or-load before the checkpoint is named
            key = json.dumps([str(latest_checkpoint(self.checkpoint_path(f"diffusion_{name}"))), ts,
                              c.layers, dataclasses.asdict(probe)], default=str)
            path = self.run_dir / "sweeps" / f"{name}__{task}__{hashlib.sha256(key.encode()).hexdigest()[:12]}.csv"
            if path.exists():
                frames.append(pd.read_csv(path))
                continue
            df = sweep_task(rep, task, ENCODERS[name], ts=ts, layers=c.layers, config=probe, data=self.data_dir)
            _write_csv(path, df)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def sweep(self, tasks: tuple[str, ...] | None = None, ts: tuple[float, ...] | None = None) -> pd.DataFrame:
        """:meth:`sweep_encoder` for every encoder of the study, written to ``sweep.csv``."""
        df = pd.concat([self.sweep_encoder(name, tasks, ts) for name in self.config.encoders], ignore_index=True)
        _write_csv(self.run_dir / "sweep.csv", df)
        return df

    def baselines(self, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The feature baselines on the same probes and tasks."""
        from lsdkit.baselines import get_featurizer
        from lsdkit.probe import result_rows, run_probe
        rows = []
        for b in self.config.baselines:
            feat = get_featurizer(b)
            for task in tasks or self.config.tasks:
                rows += result_rows(run_probe(task, feat, self._probe_config(), data=self.data_dir))
        df = pd.DataFrame(rows)
        _write_csv(self.run_dir / "baselines.csv", df)
        return df

    def table(self) -> pd.DataFrame:
        """The paper-style table (rows: representations; columns: tasks; test scores)."""
        from lsdkit.report import comparison_table
        return comparison_table(_read(self.run_dir / "sweep.csv"), _read(self.run_dir / "baselines.csv"))

    def findings(self):
        from lsdkit.report import judge_findings
        return judge_findings(self.table())

    def run_parallel(self, jobs: int) -> None:
        """Train and sweep the encoders side by side: one worker process per encoder (at most
        ``jobs`` at a time), each running autoencoder → diffusion → sweep with
        ``cpu_count // jobs`` torch threads and its output in ``logs/<encoder>.log``.

        The pipelines share nothing but the run directory (each writes its own model directories,
        cache entries and sweep files, all atomically), so :meth:`run` afterwards only loads.
        On a CPU, processes with one thread each use the cores better than one process with all
        of them (``benchmarks/train_throughput.py``: 0.57 vs 0.41 of peak on 2 cores).
        """
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        names = list(self.config.encoders)
        jobs = max(1, min(jobs, len(names)))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        args = (str(self.run_dir), dataclasses.asdict(self.config), self.data_dir, threads)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_pipeline_worker, *args, name, str(logs / f"{name}.log")): name for name in names}
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    seconds = fut.result()
                except Exception as e:
                    raise RuntimeError(f"the {ENCODERS[name]} pipeline failed: {e}; "
                                       f"see {logs / f'{name}.log'}") from e
                print(f"[study] {ENCODERS[name]}: trained, diffusion trained, swept in {seconds / 60:.1f} min "
                      f"(log {logs / f'{name}.log'})", flush=True)

    def run(self, jobs: int = 1) -> pd.DataFrame:
        """Everything: train, sweep, baselines, table and findings (files in the run directory).
        ``jobs`` > 1 runs the encoders' pipelines in parallel processes first (:meth:`run_parallel`)."""
        from lsdkit.report import write_report
        if jobs > 1:
            self.run_parallel(jobs)
        self.sweep()
        self.baselines()
        table = self.table()
        write_report(self.run_dir, table, self.findings())
        return table


def _pipeline_worker(run_dir: str, config: dict, data_dir, threads: int, name: str, log: str) -> float:
    """One encoder's pipeline in a worker process (see :meth:`Study.run_parallel`)."""
    import time

    import torch
    torch.set_num_threads(threads)
    t0 = time.time()
    with open(log, "a", buffering=1) as f:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(f.fileno(), 1)                 # C-level output (and child processes) too
        os.dup2(f.fileno(), 2)
        sys.stdout = sys.stderr = f
        try:
            Study(run_dir, StudyConfig(**config), data_dir=data_dir, progress=False).sweep_encoder(name)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return time.time() - t0


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, df.to_csv(index=False))


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: run the study's sweep/baselines first")
    return pd.read_csv(path)


# --- command line: `lsdkit reproduce`, `lsdkit sweep`, `lsdkit table` -----------------------------
def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SystemExit(f"--t: expected comma-separated numbers in [0, 1], got {text!r}") from None


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="train, sweep, probe and tabulate the whole study (or run the notebooks)",
                       description="Run the study in --out: train-or-load every latent space and its diffusion "
                                   "model, sweep t, probe, write table.md and findings.md. With --notebooks, "
                                   "execute the numbered notebooks with papermill instead.")
    p.add_argument("--preset", default="tiny", choices=sorted(STUDY_PRESETS), help="study preset (default tiny)")
    p.add_argument("--out", required=True, help="run directory (re-running continues where it stopped)")
    p.add_argument("--data", default=None, help="data directory (default $LSDKIT_DATA; tiny uses the bundled sample)")
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: the preset's)")
    p.add_argument("--encoder-steps", type=int, default=None)
    p.add_argument("--diffusion-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time cap per encoder")
    p.add_argument("--jobs", type=int, default=1,
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
    s.add_argument("--tasks", required=True, help="comma-separated task names")
    s.add_argument("--t", default="0,0.1,0.3,0.5,0.7,0.9")
    s.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    s.add_argument("--data", default=None)
    s.add_argument("--cache", default=None, help="representation cache directory")
    s.add_argument("--out", required=True, help="tidy CSV to write")
    s.set_defaults(func=_cmd_sweep)

    t = sub.add_parser("table", help="the comparison table and the paper's findings from a study directory")
    t.add_argument("--run", required=True, help="study directory holding sweep.csv (and baselines.csv)")
    t.set_defaults(func=_cmd_table)


def _cmd_reproduce(args) -> int:
    if args.notebooks:
        from lsdkit.notebooks import NotebookError, run_notebooks
        try:
            run_notebooks(args.out, params=args.params)
        except NotebookError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    overrides = {k: v for k, v in dict(encoder_steps=args.encoder_steps, diffusion_steps=args.diffusion_steps,
                                       max_minutes=args.max_minutes).items() if v is not None}
    if args.tasks:
        overrides["tasks"] = tuple(x for x in args.tasks.split(",") if x)
    study = Study(args.out, study_config(args.preset, **overrides), data_dir=args.data,
                  progress=not args.no_progress)
    from lsdkit.report import findings_markdown, to_markdown
    if args.jobs < 1:
        raise SystemExit(f"--jobs: expected a positive number of processes, got {args.jobs}")
    table = study.run(jobs=args.jobs)
    print(to_markdown(table))
    print()
    print(findings_markdown(study.findings()))
    print(f"\nwritten: {study.run_dir / 'table.md'}, {study.run_dir / 'findings.md'}")
    return 0


def _cmd_sweep(args) -> int:
    from lsdkit.represent import Representer
    from lsdkit.sweep import sweep_task
    rep = Representer(args.checkpoint, cache_dir=args.cache)
    layers = "all" if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    name = args.name or Path(args.checkpoint).resolve().name
    frames = [sweep_task(rep, task, name, ts=_floats(args.t), layers=layers, data=args.data)
              for task in args.tasks.split(",") if task]
    df = pd.concat(frames, ignore_index=True)
    _write_csv(Path(args.out), df)
    best = df[(df["split"] == "test") & df["selected"]]
    print(best[["representation", "task", "key", "metric", "value"]].to_string(index=False))
    return 0


def _cmd_table(args) -> int:
    from lsdkit.report import comparison_table, findings_markdown, judge_findings, to_markdown, write_report
    run = Path(args.run)
    baselines = run / "baselines.csv"
    table = comparison_table(_read(run / "sweep.csv"), pd.read_csv(baselines) if baselines.exists() else None)
    findings = judge_findings(table)
    write_report(run, table, findings)
    print(to_markdown(table))
    print()
    print(findings_markdown(findings))
    return 0
