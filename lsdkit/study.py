"""The study: train every latent space and its diffusion model, sweep, probe, tabulate, judge.

A :class:`Study` owns one run directory::

    RUN/
      tn/ nm/ mlm/ [tnm/]            autoencoder / MLM training runs (metrics.jsonl, step_*/ checkpoints)
      diffusion_tn/ ...               a denoiser per latent space
      cache/                          representation cache (Representer), keyed by model, data, t
      sweeps/                         one sweep per (encoder, task): <encoder>__<task>__<key>.csv, and .npz
                                      with the test predictions of its chosen keys
      sweep.csv, sweep.npz            tidy: representation, task, key, t, layer, split, metric, value, ...;
                                      the test predictions behind its test rows (lsdkit.probe.Predictions)
      baselines.csv, baselines.npz    the same for composition / dipeptide / ... features
      table.csv, table.md, findings.md  test scores with bootstrap intervals; the findings (lsdkit.report)

Every step is train-**or-load**: a model whose run finished is loaded, an interrupted one resumes
(the Trainer's checkpoints), so ``lsdkit reproduce`` can be stopped and re-run at any point, and
the notebooks call the same methods. Training goes through :func:`lsdkit.train.fit` (one way
to train), so a study's models are exactly what ``lsdkit train`` would produce.
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

from lsdkit.checkpoint import latest_checkpoint, load_model
from lsdkit.errors import ArgumentError, LsdkitError
from lsdkit.io import atomic_write_text
from lsdkit.models.presets import DISPLAY_NAMES
from lsdkit.schedules import DEFAULT_TS

# the study's encoders and their display names (notebooks import this name)
ENCODERS = DISPLAY_NAMES


class StudyError(LsdkitError, FileNotFoundError):
    """A study file that should exist does not (e.g. ``lsdkit table`` before the sweep)."""


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
    ts: tuple[float, ...] = DEFAULT_TS
    layers: str | tuple[int, ...] = "all"
    baselines: tuple[str, ...] = ("composition", "dipeptide")
    max_train_rows: int | None = 3000          # probe training rows per task (seeded subsample)
    max_valid_rows: int | None = 1000
    seed: int = 0
    precision: str = "auto"                    # training precision: auto | bf16 | fp32 (TrainConfig.precision)


STUDY_PRESETS: dict[str, StudyConfig] = {
    # CI and the README's quick start: bundled sample only, a few minutes on 2 CPU cores
    "tiny": StudyConfig(),
    # the CPU study on Swiss-Prot 2014: `lsdkit reproduce --preset small --jobs 3` on 2 cores.
    # The encoders' 150 steps fit the 30-minute cap there (~11 s per 8k-token step with three models
    # side by side), so their LR schedule completes (the denoisers stop at their 15-minute cap after
    # ~50 of 80 steps); the tasks are two small ones, so that denoiser and sweep
    # take about an hour per encoder there (RESULTS.md, "The CPU study"). Add tasks with --tasks.
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
        raise ArgumentError(f"unknown study preset {name!r}; choose one of {sorted(STUDY_PRESETS)}")
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
                raise ArgumentError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")

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
    def train_config(self, steps: int, minutes: float | None):
        """The :class:`~lsdkit.train.TrainConfig` of one of the study's models: ``steps`` (warm-up
        capped at them), validation and checkpoints five times per run, the study's seed and batch."""
        from lsdkit.train import TrainConfig
        c = self.config
        every = max(steps // 5, 1)
        warmup = TrainConfig.warmup_steps if c.warmup_steps is None else c.warmup_steps
        return TrainConfig(max_steps=steps, max_minutes=minutes, warmup_steps=min(warmup, steps),
                           batch_tokens=c.batch_tokens, seed=c.seed, eval_every=every, ckpt_every=every,
                           precision=c.precision, progress=self.progress)

    def _train(self, name: str, build, steps: int, minutes: float | None) -> Path:
        """Train-or-load ``name``: ``build()`` makes the fresh model (seeded), :func:`lsdkit.train.fit`
        trains or resumes it, a marker records that the run finished."""
        from lsdkit.train import fit, seed_everything
        out = self.checkpoint_path(name)
        marker = self._done_marker(name)
        if not marker.exists():
            seed_everything(self.config.seed)      # the same initial weights on every rerun
            model = build()
            result = fit(model, self._corpus_arg(), self.train_config(steps, minutes), out, resume=True,
                         limit=self.config.corpus_limit)
            print(result.summary(model.kind), flush=True)
            atomic_write_text(marker, json.dumps({"checkpoint": latest_checkpoint(out).name}) + "\n")
        return latest_checkpoint(out)

    def autoencoder(self, name: str):
        """Train (or load) the encoder ``name``: tn | nm | tnm (autoencoders) or mlm."""
        from lsdkit.models.presets import build_encoder
        if name not in ENCODERS:
            raise ArgumentError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
        c = self.config
        return load_model(self._train(name, lambda: build_encoder(name, c.preset), c.encoder_steps, c.max_minutes))

    def diffusion(self, name: str):
        """Train (or load) the denoiser on the latents of encoder ``name``."""
        from lsdkit.models.diffusion import LatentDiffusion
        c = self.config
        self.autoencoder(name)
        latents = str(latest_checkpoint(self.checkpoint_path(name)))
        cache = self.cache_dir / "latents"       # encoder latents, encoded once (lsdkit.latents)
        ckpt = self._train(f"diffusion_{name}",
                           lambda: LatentDiffusion.from_encoder(latents, preset=c.preset).use_latent_cache(cache),
                           c.diffusion_steps, c.max_minutes if c.diffusion_minutes is None else c.diffusion_minutes)
        return load_model(ckpt)

    def representer(self, name: str, diffusion: bool = True):
        """A cached :class:`~lsdkit.represent.Representer` for ``name`` (its diffusion model, or the
        encoder alone with ``diffusion=False``)."""
        from lsdkit.represent import Representer
        model = self.diffusion(name) if diffusion else self.autoencoder(name)
        return Representer(model, cache_dir=self.cache_dir, seed=self.config.seed, progress=self.progress)

    @property
    def cache_dir(self) -> Path:
        """The run directory's cache: representations (Representer) and UMAP maps (lsdkit.viz)."""
        return self.run_dir / "cache"

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

    def losses_by_t(self, ts, n_sequences: int = 64) -> pd.DataFrame:
        """:meth:`loss_by_t` of every encoder's diffusion model, one table with a ``representation``
        column (the encoder's display name)."""
        return pd.concat([self.loss_by_t(name, ts, n_sequences).assign(representation=ENCODERS[name])
                          for name in self.config.encoders], ignore_index=True)

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
        the layers and the probe settings, with the test predictions of its chosen keys beside it
        (``.npz``), so calling again (a notebook re-run) costs nothing. A cached sweep without its
        predictions (a run of an older lsdkit) is recomputed.
        """
        return self._sweep_encoder(name, tasks, ts)[0]

    def _sweep_encoder(self, name: str, tasks, ts) -> tuple[pd.DataFrame, dict]:
        from lsdkit.probe import load_predictions, save_predictions
        from lsdkit.sweep import sweep_task
        c = self.config
        ts = tuple(ts or c.ts)
        probe = self._probe_config()
        # a sweep fits one probe per key: run_probe's number of MLP seeds is not part of its key
        probe_key = {k: v for k, v in dataclasses.asdict(probe).items() if k != "mlp_seeds"}
        frames, preds, rep = [], {}, None
        for task in tasks or c.tasks:
            if rep is None:
                rep = self.representer(name)      # train-or-load before the checkpoint is named
            key = json.dumps([str(latest_checkpoint(self.checkpoint_path(f"diffusion_{name}"))), ts,
                              c.layers, probe_key], default=str)
            path = self.run_dir / "sweeps" / f"{name}__{task}__{hashlib.sha256(key.encode()).hexdigest()[:12]}.csv"
            if path.exists() and path.with_suffix(".npz").exists():
                frames.append(pd.read_csv(path))
                preds.update(load_predictions(path.with_suffix(".npz")))
                continue
            got = {}
            df = sweep_task(rep, task, ENCODERS[name], ts=ts, layers=c.layers, config=probe, data=self.data_dir,
                            progress=self.progress, predictions=got)
            got = {(ENCODERS[name], task, k): p for k, p in got.items()}
            save_predictions(path.with_suffix(".npz"), got)
            save_frame(path, df)
            frames.append(df)
            preds.update(got)
        return pd.concat(frames, ignore_index=True), preds

    def sweep(self, tasks: tuple[str, ...] | None = None, ts: tuple[float, ...] | None = None) -> pd.DataFrame:
        """:meth:`sweep_encoder` for every encoder of the study, written to ``sweep.csv`` (and its
        test predictions to ``sweep.npz``)."""
        from lsdkit.probe import save_predictions
        frames, preds = [], {}
        for name in self.config.encoders:
            df, p = self._sweep_encoder(name, tasks, ts)
            frames.append(df)
            preds.update(p)
        df = pd.concat(frames, ignore_index=True)
        save_predictions(self.run_dir / "sweep.npz", preds)
        save_frame(self.run_dir / "sweep.csv", df)
        return df

    def baselines(self, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
        """The feature baselines on the same probes and tasks (``baselines.csv``; their test
        predictions in ``baselines.npz``)."""
        from lsdkit.baselines import get_featurizer
        from lsdkit.probe import pooled_predictions, result_rows, run_probe, save_predictions
        from lsdkit.report import BASELINE_KEY
        rows, preds = [], {}
        for b in self.config.baselines:
            feat = get_featurizer(b)
            for task in tasks or self.config.tasks:
                results = run_probe(task, feat, self._probe_config(), data=self.data_dir)
                rows += result_rows(results)
                preds[results[0].representation, task, BASELINE_KEY] = pooled_predictions(results)
        df = pd.DataFrame(rows)
        save_predictions(self.run_dir / "baselines.npz", preds)
        save_frame(self.run_dir / "baselines.csv", df)
        return df

    def table(self) -> pd.DataFrame:
        """The paper-style table (rows: representations; columns: tasks; test scores with intervals)."""
        return tabulate(self.run_dir)[0]

    def findings(self):
        """The paper's findings judged on :meth:`table` (:func:`lsdkit.report.judge_findings`)."""
        return tabulate(self.run_dir)[1]

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

    def report(self, tasks: tuple[str, ...] | None = None):
        """The study's end: the feature baselines on ``tasks`` (default: the study's), the comparison
        table of the sweep and baselines, and the findings judged on it, written to ``table.csv``,
        ``table.md`` and ``findings.md``. Returns ``(table, findings)``. Needs :meth:`sweep` first."""
        from lsdkit.report import write_report
        self.baselines(tasks)
        table, findings = tabulate(self.run_dir)
        write_report(self.run_dir, table, findings)
        return table, findings

    def run(self, jobs: int = 1) -> pd.DataFrame:
        """Everything: train, sweep, baselines, table and findings (files in the run directory).
        ``jobs`` > 1 runs the encoders' pipelines in parallel processes first (:meth:`run_parallel`)."""
        if jobs > 1:
            self.run_parallel(jobs)
        self.sweep()
        return self.report()[0]


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


def tabulate(run_dir: str | os.PathLike, baselines_required: bool = True):
    """``(table, findings)`` of a study directory: :func:`lsdkit.report.comparison_table` of
    ``sweep.csv`` and ``baselines.csv`` with intervals from their test predictions (``sweep.npz``,
    ``baselines.npz``; without them, no intervals), and :func:`lsdkit.report.judge_findings` on it."""
    from lsdkit.probe import load_predictions
    from lsdkit.report import comparison_table, judge_findings, table_predictions
    run_dir = Path(run_dir)
    sweep = load_frame(run_dir / "sweep.csv")
    path = run_dir / "baselines.csv"
    baselines = load_frame(path) if baselines_required or path.exists() else None
    preds = {}
    for name in ("sweep.npz", "baselines.npz"):
        if (run_dir / name).exists():
            preds.update(load_predictions(run_dir / name))
    table = comparison_table(sweep, baselines, preds)
    return table, judge_findings(table, table_predictions(sweep, baselines, preds))


def save_frame(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def load_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise StudyError(f"{path} does not exist yet: run the study's sweep/baselines first")
    return pd.read_csv(path)
