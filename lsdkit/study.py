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
    pretrained: tuple[str, ...] = ()           # pretrained latent spaces beside them: near, esm2:PATH[@LAYER]
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
    precision: str = "auto"                    # training and representations: auto | bf16 | fp32 (TrainConfig)
    lr: float | None = None                    # peak learning rate (None: the trainer's default)
    diffusion_batch_tokens: int | None = None  # denoiser token budget per step (None: batch_tokens)
    long_sequences: str = "window"             # longer than max_len: window | truncate (Representer(long=))
    curve_tasks: tuple[str, ...] = ()          # learning curves: tasks probed (validation) along training
    curve_points: tuple[float, ...] = (0.125, 0.25, 0.5)   # fractions of encoder_steps kept (+ the final step)


STUDY_PRESETS: dict[str, StudyConfig] = {
    # CI and the README's quick start: bundled sample only, a few minutes on 2 CPU cores
    "tiny": StudyConfig(curve_tasks=("go_mf_sp14",)),
    # the CPU study on Swiss-Prot 2014: `lsdkit reproduce --preset cpu --jobs 3` on 2 cores, about an
    # hour. Sized by measurement (RESULTS.md, "Sizing the CPU study"): the encoder size with the lowest
    # validation loss for a fixed wall time (benchmarks/scale.py), three one-thread pipelines rather
    # than one two-thread process (the same benchmark's jobs ratio), bf16 where native; the encoders'
    # step budgets fill their time caps, the denoisers train on cached latents.
    "cpu": StudyConfig(preset="cpu", encoder_steps=2800, diffusion_steps=1200, max_minutes=30,
                       diffusion_minutes=12, warmup_steps=100, lr=1e-3, batch_tokens=8192,
                       diffusion_batch_tokens=4096, corpus_limit=100_000,
                       tasks=("deeploc10", "metal_ion_binding", "thermostability"), ts=(0.0, 0.1, 0.3, 0.6),
                       max_train_rows=3000, max_valid_rows=1000, curve_tasks=("deeploc10",)),
    # the first CPU study (RESULTS.md, "The CPU study: small"): 4.8 M-parameter encoders, 1.2 M tokens each
    "small": StudyConfig(preset="small", encoder_steps=150, diffusion_steps=80, max_minutes=30,
                         diffusion_minutes=15, warmup_steps=15, batch_tokens=8192,
                         tasks=("metal_ion_binding", "go_mf_sp14"),
                         max_train_rows=700, max_valid_rows=None),
    # ten minutes of training on one GPU (bf16): three encoders of 2 minutes, three denoisers of
    # 1 minute, on a data directory small enough to travel (README, "A GPU study"). Not yet run on a GPU.
    "gpu": StudyConfig(preset="gpu", encoder_steps=4000, diffusion_steps=3000, max_minutes=2.0,
                       diffusion_minutes=1.0, warmup_steps=200, lr=6e-4, batch_tokens=32768,
                       tasks=("deeploc10", "metal_ion_binding", "thermostability"), ts=(0.0, 0.1, 0.3, 0.6),
                       max_train_rows=None, max_valid_rows=None, curve_tasks=("deeploc10", "metal_ion_binding")),
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


def check_config(c: StudyConfig) -> None:
    """Every field a study needs, checked before any training starts (an :class:`ArgumentError`
    naming the field and the value): encoders, preset, tasks, baselines, t grid, budgets."""
    from lsdkit import pretrained
    from lsdkit.baselines import FEATURIZERS
    from lsdkit.data.tasks import TASKS
    from lsdkit.device import PRECISIONS
    from lsdkit.models.presets import SIZES
    from lsdkit.represent import LONG_MODES

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ArgumentError(f"study config: {what}")
    for name in c.encoders:
        need(name in ENCODERS, f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
    from lsdkit.pretrained import is_spec
    for name in c.pretrained:
        need(isinstance(name, str) and is_spec(name),
             f"pretrained: unknown pretrained model {name!r}; use near or esm2:PATH[@LAYER]")
    need(len(set(c.pretrained)) == len(c.pretrained), f"pretrained: {list(c.pretrained)} names a model twice")
    need(c.preset in SIZES, f"unknown model preset {c.preset!r}; choose one of {sorted(SIZES)}")
    for field_name in ("tasks", "curve_tasks"):
        for task in getattr(c, field_name):
            need(task in TASKS, f"{field_name}: unknown task {task!r} (`lsdkit probe --list` shows them)")
    for b in c.baselines:
        need(b in FEATURIZERS or pretrained.is_spec(b), f"baselines: unknown featurizer {b!r}; choose from {FEATURIZERS}")
    need(all(0.0 <= float(t) <= 1.0 for t in c.ts), f"ts: every t must lie in [0, 1], got {tuple(c.ts)}")
    need(all(0.0 < float(f) <= 1.0 for f in c.curve_points), f"curve_points: fractions in (0, 1], got {c.curve_points}")
    for field_name in ("encoder_steps", "diffusion_steps", "batch_tokens"):
        need(int(getattr(c, field_name)) >= 1, f"{field_name} must be >= 1, got {getattr(c, field_name)}")
    for field_name in ("max_minutes", "diffusion_minutes", "lr"):
        v = getattr(c, field_name)
        need(v is None or float(v) > 0, f"{field_name} must be > 0 (or None), got {v}")
    need(c.precision in PRECISIONS, f"precision {c.precision!r}: expected one of {PRECISIONS}")
    need(c.long_sequences in LONG_MODES, f"long_sequences {c.long_sequences!r}: expected one of {LONG_MODES}")


class Study:
    """Train-or-load the models of a study in ``run_dir`` and measure them."""

    def __init__(self, run_dir: str | os.PathLike, config: StudyConfig | str = "tiny",
                 data_dir: str | os.PathLike | None = None, progress: bool = True):
        self.run_dir = Path(run_dir)
        self.config = study_config(config) if isinstance(config, str) else config
        self.data_dir = data_dir
        self.progress = progress
        self._valid = None            # the corpus's validation split, loaded on first use
        check_config(self.config)

    # -- where things are --------------------------------------------------------------------------
    @property
    def latent_spaces(self) -> tuple[str, ...]:
        """The latent spaces the study diffuses on and sweeps: its encoders, then its pretrained models."""
        return (*self.config.encoders, *self.config.pretrained)

    def display_name(self, name: str) -> str:
        """``LSD-TN``, ``MLM``, ``NEAR``, ... (table rows, figure legends)."""
        from lsdkit.pretrained import display_name
        return ENCODERS[name] if name in ENCODERS else display_name(name)

    def _dir_name(self, name: str) -> str:
        from lsdkit.pretrained import is_spec, slug
        return slug(name) if is_spec(name) else name

    def checkpoint_path(self, name: str) -> Path:
        """Run directory of ``name``: an encoder (tn, nm, tnm, mlm) or ``diffusion_<latent space>``
        (``diffusion_near`` for NEAR)."""
        return self.run_dir / name

    def diffusion_path(self, name: str) -> Path:
        """Run directory of the denoiser on latent space ``name`` (an encoder or a pretrained model)."""
        return self.checkpoint_path(f"diffusion_{self._dir_name(name)}")

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
    def train_config(self, steps: int, minutes: float | None, milestones: tuple[int, ...] = (),
                     batch_tokens: int | None = None):
        """The :class:`~lsdkit.train.TrainConfig` of one of the study's models: ``steps`` (warm-up
        capped at them), validation and checkpoints five times per run, the study's seed and batch;
        ``milestones``: steps whose checkpoints are kept for the learning curves."""
        from lsdkit.train import TrainConfig
        c = self.config
        every = max(steps // 5, 1)
        warmup = TrainConfig.warmup_steps if c.warmup_steps is None else c.warmup_steps
        return TrainConfig(lr=TrainConfig.lr if c.lr is None else c.lr, max_steps=steps, max_minutes=minutes,
                           warmup_steps=min(warmup, steps), batch_tokens=batch_tokens or c.batch_tokens,
                           seed=c.seed, eval_every=every, ckpt_every=every, milestones=tuple(milestones),
                           precision=c.precision, progress=self.progress)

    def curve_steps(self) -> tuple[int, ...]:
        """The encoder steps whose checkpoints the learning curves probe (the final one is added)."""
        c = self.config
        if not c.curve_tasks:
            return ()
        return tuple(sorted({max(1, round(f * c.encoder_steps)) for f in c.curve_points if 0 < f < 1}))

    def _train(self, name: str, build, steps: int, minutes: float | None, milestones: tuple[int, ...] = (),
               batch_tokens: int | None = None) -> Path:
        """Train-or-load ``name``: ``build()`` makes the fresh model (seeded), :func:`lsdkit.train.fit`
        trains or resumes it, a marker records that the run finished."""
        from lsdkit.train import fit, seed_everything
        out = self.checkpoint_path(name)
        marker = self._done_marker(name)
        cfg = self.train_config(steps, minutes, milestones, batch_tokens)
        recipe = {"preset": self.config.preset, "corpus_limit": self.config.corpus_limit,
                  "train": {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(cfg))).items()
                            if k not in ("progress", "num_threads", "device", "num_workers")}}
        if marker.exists():
            done = json.loads(marker.read_text())
            if "recipe" in done and done["recipe"] != recipe:   # markers of lsdkit < 0.2 carry none
                from lsdkit.checkpoint import config_differences
                diff = "; ".join(config_differences(done["recipe"], recipe)) or "the recipe changed"
                raise StudyError(f"{out} was trained by a different study configuration ({diff}): use another "
                                 "run directory (--out), or delete it to train again")
        else:
            seed_everything(self.config.seed)      # the same initial weights on every rerun
            model = build()
            result = fit(model, self._corpus_arg(), cfg, out, resume=True, limit=self.config.corpus_limit)
            print(result.summary(model.kind), flush=True)
            atomic_write_text(marker, json.dumps({"checkpoint": latest_checkpoint(out).name, "recipe": recipe}) + "\n")
        return latest_checkpoint(out)

    def autoencoder(self, name: str):
        """Train (or load) the encoder ``name``: tn | nm | tnm (autoencoders) or mlm; a pretrained
        model of ``config.pretrained`` is loaded (frozen, never trained)."""
        from lsdkit.models.presets import build_encoder
        if name in self.config.pretrained:
            from lsdkit.pretrained import load_encoder
            return load_encoder(name)
        if name not in ENCODERS:
            raise ArgumentError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
        c = self.config
        return load_model(self._train(name, lambda: build_encoder(name, c.preset), c.encoder_steps, c.max_minutes,
                                      self.curve_steps()))

    def diffusion(self, name: str):
        """Train (or load) the denoiser on the latents of encoder (or pretrained model) ``name``."""
        from lsdkit.models.diffusion import LatentDiffusion
        c = self.config
        self.autoencoder(name)
        latents = name if name in c.pretrained else str(latest_checkpoint(self.checkpoint_path(name)))
        cache = self.cache_dir / "latents"       # encoder latents, encoded once (lsdkit.latents)
        ckpt = self._train(self.diffusion_path(name).name,
                           lambda: LatentDiffusion.from_encoder(latents, preset=c.preset).use_latent_cache(cache),
                           c.diffusion_steps, c.max_minutes if c.diffusion_minutes is None else c.diffusion_minutes,
                           batch_tokens=c.diffusion_batch_tokens)
        return load_model(ckpt)

    def representer(self, name: str, diffusion: bool = True):
        """A cached :class:`~lsdkit.represent.Representer` for ``name`` (its diffusion model, or the
        encoder alone with ``diffusion=False``)."""
        from lsdkit.represent import Representer
        model = self.diffusion(name) if diffusion else self.autoencoder(name)
        return Representer(model, cache_dir=self.cache_dir, seed=self.config.seed, progress=self.progress,
                           precision=self.config.precision, long=self.config.long_sequences)

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
            key = json.dumps([str(latest_checkpoint(self.diffusion_path(name))), ts,
                              c.layers, probe_key, c.long_sequences], default=str)
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = self.run_dir / "sweeps" / f"{self._dir_name(name)}__{task}__{digest}.csv"
            if path.exists() and path.with_suffix(".npz").exists():
                frames.append(pd.read_csv(path))
                preds.update(load_predictions(path.with_suffix(".npz")))
                continue
            got = {}
            df = sweep_task(rep, task, self.display_name(name), ts=ts, layers=c.layers, config=probe,
                            data=self.data_dir, progress=self.progress, predictions=got)
            got = {(self.display_name(name), task, k): p for k, p in got.items()}
            save_predictions(path.with_suffix(".npz"), got)
            save_frame(path, df)
            frames.append(df)
            preds.update(got)
        return pd.concat(frames, ignore_index=True), preds

    def sweep(self, tasks: tuple[str, ...] | None = None, ts: tuple[float, ...] | None = None) -> pd.DataFrame:
        """:meth:`sweep_encoder` for every latent space of the study (:attr:`latent_spaces`), written
        to ``sweep.csv`` (and its test predictions to ``sweep.npz``)."""
        from lsdkit.probe import save_predictions
        frames, preds = [], {}
        for name in self.latent_spaces:
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

    def learning_curve_encoder(self, name: str, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
        """Encoder ``name``'s latent probed at each kept checkpoint (:meth:`curve_steps` and the last):
        validation scores (mean over probe seeds) against training tokens (steps × the token budget
        per step, an upper bound: batches are packed up to it). Kept in ``curves/`` under a key of the
        checkpoints, tasks and probe settings, so calling again costs nothing."""
        from lsdkit.probe import result_rows, run_probe
        from lsdkit.represent import Representer
        tasks = tuple(tasks or self.config.curve_tasks)
        self.autoencoder(name)
        run = self.checkpoint_path(name)
        last = latest_checkpoint(run)
        ckpts = [run / f"step_{s:06d}" for s in self.curve_steps()]
        ckpts = [p for p in ckpts if p.is_dir() and p.name < last.name] + [last]
        probe = self._probe_config()
        key = json.dumps([[str(p) for p in ckpts], tasks, dataclasses.asdict(probe), self.config.long_sequences],
                         default=str)
        path = self.run_dir / "curves" / f"{name}__{hashlib.sha256(key.encode()).hexdigest()[:12]}.csv"
        if path.exists():
            return pd.read_csv(path)
        rows = []
        for ckpt in ckpts:
            step = int(ckpt.name.split("_")[1])
            rep = Representer(str(ckpt), cache_dir=self.cache_dir, seed=self.config.seed, progress=self.progress,
                              precision=self.config.precision, long=self.config.long_sequences)
            for task in tasks:
                results = run_probe(task, rep.featurizer(None, name=ENCODERS[name]), probe, data=self.data_dir)
                rows += [dict(r, step=step, tokens=step * self.config.batch_tokens) for r in result_rows(results)
                         if r["split"] == "valid" and r["metric"] == results[0].metric]
        df = pd.DataFrame(rows).drop(columns=["hyperparams", "t"])
        save_frame(path, df)
        return df

    def learning_curve(self, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
        """:meth:`learning_curve_encoder` for every encoder plus the feature baselines' validation
        scores on the same probes (rows without a step), written to ``learning_curve.csv`` and drawn
        in ``learning_curve.png`` (:func:`lsdkit.viz.learning_curve_plot`)."""
        from lsdkit.baselines import get_featurizer
        from lsdkit.probe import result_rows, run_probe
        from lsdkit.report import primary_metric
        from lsdkit.viz import learning_curve_plot, save_figure
        tasks = tuple(tasks or self.config.curve_tasks)
        if not tasks:
            raise ArgumentError("no learning-curve tasks: set StudyConfig.curve_tasks (or pass tasks)")
        frames = [self.learning_curve_encoder(name, tasks) for name in self.config.encoders]
        path = self.run_dir / "baselines.csv"        # the report's baseline probes, where it has them
        done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["representation", "task"])
        rows = []
        for b in self.config.baselines:
            for task in tasks:
                have = done[(done["representation"] == b) & (done["task"] == task)]
                if len(have):
                    results = have.to_dict("records")
                else:
                    results = result_rows(run_probe(task, get_featurizer(b), self._probe_config(), data=self.data_dir))
                rows += [r for r in results if r["split"] == "valid" and r["metric"] == primary_metric(task)]
        if rows:
            frames.append(pd.DataFrame(rows).drop(columns=["hyperparams", "t"]))
        df = pd.concat(frames, ignore_index=True)
        save_frame(self.run_dir / "learning_curve.csv", df)
        save_figure(learning_curve_plot(df), self.run_dir, "learning_curve")
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

        names = list(self.latent_spaces)
        jobs = max(1, min(jobs, len(names)))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        args = (str(self.run_dir), dataclasses.asdict(self.config), self.data_dir, threads)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            log = {name: logs / f"{self._dir_name(name)}.log" for name in names}
            futures = {pool.submit(_pipeline_worker, *args, name, str(log[name])): name for name in names}
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    seconds = fut.result()
                except Exception as e:
                    raise RuntimeError(f"the {self.display_name(name)} pipeline failed: {e}; "
                                       f"see {log[name]}") from e
                print(f"[study] {self.display_name(name)}: trained, diffusion trained, swept in {seconds / 60:.1f} min "
                      f"(log {log[name]})", flush=True)

    def report(self, tasks: tuple[str, ...] | None = None):
        """The study's end: the feature baselines on ``tasks`` (default: the study's), the comparison
        table of the sweep and baselines, and the findings judged on it, written to ``table.csv``,
        ``table.md`` (with every learned row against the floor, :func:`floor_table`; ``floor.csv``)
        and ``findings.md``. Returns ``(table, findings)``. Needs :meth:`sweep` first."""
        from lsdkit.report import write_report
        self.baselines(tasks)
        table, findings = tabulate(self.run_dir)
        write_report(self.run_dir, table, findings, floor_table(self.run_dir, table))
        return table, findings

    def run(self, jobs: int = 1) -> pd.DataFrame:
        """Everything: train, sweep, baselines, table and findings (files in the run directory).
        ``jobs`` > 1 runs the encoders' pipelines in parallel processes first (:meth:`run_parallel`)."""
        if jobs > 1:
            self.run_parallel(jobs)
        self.sweep()
        table = self.report()[0]
        if self.config.curve_tasks:
            self.learning_curve()                  # after the report: its baseline probes are reused
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
            study = Study(run_dir, StudyConfig(**config), data_dir=data_dir, progress=False)
            study.sweep_encoder(name)
            if study.config.curve_tasks and name in study.config.encoders:
                study.learning_curve_encoder(name)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return time.time() - t0


def _study_results(run_dir: Path, baselines_required: bool):
    """``sweep.csv``, ``baselines.csv`` (None where absent and not required) and the test
    predictions of both (``sweep.npz``, ``baselines.npz``) of a study directory."""
    from lsdkit.probe import load_predictions
    sweep = load_frame(run_dir / "sweep.csv")
    path = run_dir / "baselines.csv"
    baselines = load_frame(path) if baselines_required or path.exists() else None
    preds = {}
    for name in ("sweep.npz", "baselines.npz"):
        if (run_dir / name).exists():
            preds.update(load_predictions(run_dir / name))
    return sweep, baselines, preds


def tabulate(run_dir: str | os.PathLike, baselines_required: bool = True):
    """``(table, findings)`` of a study directory: :func:`lsdkit.report.comparison_table` of
    ``sweep.csv`` and ``baselines.csv`` with intervals from their test predictions (``sweep.npz``,
    ``baselines.npz``; without them, no intervals), and :func:`lsdkit.report.judge_findings` on it."""
    from lsdkit.report import comparison_table, judge_findings, table_predictions
    sweep, baselines, preds = _study_results(Path(run_dir), baselines_required)
    table = comparison_table(sweep, baselines, preds)
    return table, judge_findings(table, table_predictions(sweep, baselines, preds))


def floor_table(run_dir: str | os.PathLike, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`lsdkit.report.floor_comparison` of a study directory: every learned row against the
    best feature baseline of its task, paired bootstrap on the test proteins (empty without baselines)."""
    from lsdkit.report import comparison_table, floor_comparison, table_predictions
    sweep, baselines, preds = _study_results(Path(run_dir), False)
    table = comparison_table(sweep, baselines, preds) if table is None else table
    return floor_comparison(table, table_predictions(sweep, baselines, preds))


def save_frame(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def load_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise StudyError(f"{path} does not exist yet: run the study's sweep/baselines first")
    return pd.read_csv(path)
