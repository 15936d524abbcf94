"""One model-agnostic Trainer (AdamW, warm-up + cosine, clipping, bf16 autocast, resume, DDP).

Model protocol: ``model.loss(batch) -> (loss, metrics: dict[str, float])``, optionally
``model.validation_metrics(batch) -> dict``, a ``model.config`` dataclass and a ``model.kind``
string. Parameters with ``requires_grad=False`` are not trained (the diffusion model freezes its
encoder). :func:`fit` also honours two optional hooks: ``model.training_loaders(train, valid,
config, run_dir) -> (train, valid)`` replaces the loaders the model trains on (the denoiser: batches
of cached encoder latents, :mod:`lsdkit.latents`) and ``model.prepare_training(train_loader,
device)`` runs before a fresh run (the denoiser: its latent statistics). Loaders are any iterable
of batch dicts (``make_loader`` from ``lsdkit.data.corpus`` or a plain list); ``set_epoch(e)`` is
called on the loader, its sampler/batch sampler and dataset where they have one, so the data order
depends only on (seed, epoch).

Run directory: ``metrics.jsonl`` (one JSON object per line: ``split`` train/valid, ``step``, ...)
and checkpoints ``step_NNNNNN/`` with a ``latest`` pointer (see ``lsdkit.checkpoint``).

Resume (``Trainer(..., resume=True)``) restores weights, optimizer, step, epoch, the batch index
within the epoch (batches already seen are skipped), every RNG (torch CPU/CUDA, numpy, python;
one set per rank) and the thread count, then drops metric lines written after the checkpoint:
a killed and resumed run reproduces the uninterrupted loss curve exactly (same thread count; with
``num_workers > 0`` only if the dataset's randomness depends on (seed, epoch, index) alone).
Validation runs under its own fixed seed and leaves the training RNG streams untouched.

Precision (``TrainConfig.precision``: auto | bf16 | fp32; :func:`lsdkit.device.resolve_precision`):
``auto`` is bf16 autocast on CUDA and on a CPU with native bf16 (AMX-BF16 / AVX512-BF16), else fp32.
Under bf16 only the forward pass runs in autocast (matmuls in bf16); master weights, gradients and
AdamW state stay fp32 and the models compute their losses and metrics in fp32. Validation uses the
same autocast. A resumed run continues identically at the same precision (the checkpoint records it).
Seeding: the caller seeds before building the model (initial weights); the Trainer then seeds
python/numpy/torch with ``seed + rank`` for the training streams (noise, masks, sampling).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the Trainer joins the process group (gloo on
CPU, nccl on CUDA) and wraps the model in DDP; each rank gets its shard from
``make_loader(..., num_replicas, rank)``. Gradients are averaged over ranks (each rank's loss is its
own batch mean); the logged loss is the rank mean; other logged train metrics are rank 0's.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from lsdkit.checkpoint import (latest_checkpoint, load_trainer_state, load_weights, remove_stale_staging,
                               save_checkpoint)
from lsdkit.device import autocast, resolve_device, resolve_precision
from lsdkit.errors import ArgumentError, LsdkitError
from lsdkit.io import atomic_write_text


class TrainingDiverged(LsdkitError, RuntimeError):
    """The loss, gradient norm or a validation metric became NaN/inf; the message names the step and
    the last checkpoint that is still good."""


class RunExists(LsdkitError, FileExistsError):
    """``fit`` was asked to start a fresh run in a directory that already holds one."""


@dataclass
class TrainConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1            # cosine decays to lr·min_lr_ratio at max_steps
    weight_decay: float = 0.01           # on matrices/embeddings only, not biases or norms
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 200
    max_steps: int = 10_000
    max_minutes: float | None = None     # stop (with a checkpoint) after this wall time
    grad_clip: float = 1.0               # max global grad norm; 0 disables
    seed: int = 0
    batch_tokens: int = 8192             # token budget per batch (per rank); used by loader builders
    eval_every: int = 500
    eval_batches: int = 20
    ckpt_every: int = 1000
    keep_checkpoints: int | None = 3     # newest step directories kept (None: all)
    milestones: tuple[int, ...] = ()     # steps always checkpointed and never pruned (learning curves)
    log_every: int = 10
    precision: str = "auto"              # auto | bf16 | fp32 (auto: bf16 where the device computes it natively)
    num_workers: int = 0
    num_threads: int | None = None       # torch CPU threads; None keeps the current setting
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    progress: bool = True

    def __post_init__(self):
        """Refuse values no run can use (an :class:`~lsdkit.errors.ArgumentError` naming the field)."""
        def need(ok: bool, name: str, rule: str):
            if not ok:
                raise ArgumentError(f"TrainConfig.{name}: expected {rule}, got {getattr(self, name)!r}")

        def finite(v) -> bool:
            return isinstance(v, numbers.Real) and math.isfinite(v)

        def integer(v) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        need(integer(self.max_steps) and self.max_steps >= 1, "max_steps", "an integer >= 1")
        need(finite(self.lr) and self.lr > 0, "lr", "a number > 0")
        need(finite(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "a number in [0, 1]")
        need(finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(finite(self.grad_clip) and self.grad_clip >= 0, "grad_clip", "a number >= 0 (0 disables)")
        need(self.max_minutes is None or (finite(self.max_minutes) and self.max_minutes >= 0),
             "max_minutes", "None or a number >= 0")
        for name in ("warmup_steps", "eval_every", "ckpt_every", "num_workers"):
            need(integer(getattr(self, name)) and getattr(self, name) >= 0, name, "an integer >= 0")
        for name in ("batch_tokens", "eval_batches", "log_every"):
            need(integer(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        need(self.keep_checkpoints is None or (integer(self.keep_checkpoints) and self.keep_checkpoints >= 1),
             "keep_checkpoints", "None or an integer >= 1")
        need(self.num_threads is None or (integer(self.num_threads) and self.num_threads >= 1),
             "num_threads", "None or an integer >= 1")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then cosine decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# --- RNG state, seeding -------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states of this process as JSON values (torch CPU/CUDA, numpy, python)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state().tolist(),
            "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
            "numpy": {"keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)},
            "python": [version, list(internal), gauss_next]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state(("MT19937", np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


@contextmanager
def isolated_rng(seed: int):
    """Run a block under a fixed seed and restore every RNG afterwards (used for validation)."""
    saved = rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


# --- distributed helpers -------------------------------------------------------------------------------
def distributed_context() -> tuple[int, int]:
    """(rank, world_size); joins the process group when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_json(obj, device) -> list:
    """all_gather of a JSON value across ranks (bytes in a uint8 tensor; no pickle)."""
    if not dist.is_initialized():
        return [obj]
    data = torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8, device=device)
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([data.numel()], device=device))
    n = max(int(s) for s in sizes)
    bufs = [torch.zeros(n, dtype=torch.uint8, device=device) for _ in sizes]
    dist.all_gather(bufs, torch.cat([data, data.new_zeros(n - data.numel())]))
    return [json.loads(bytes(b[: int(s)].tolist()).decode()) for b, s in zip(bufs, sizes)]


class _LossForward(nn.Module):
    """Routes DDP's forward to ``model.loss`` so gradient sync hooks fire."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _set_epoch(loader, epoch: int, skip: int = 0) -> int:
    """Select ``epoch`` on the loader (and its samplers/dataset); returns batches left to skip.

    A loader whose ``set_epoch(epoch, skip)`` takes ``skip`` (``make_loader``) skips the first
    batches itself without loading them; otherwise the caller discards ``skip`` batches.
    """
    if hasattr(loader, "set_epoch") and "skip" in inspect.signature(loader.set_epoch).parameters:
        loader.set_epoch(epoch, skip=skip)
        return 0
    seen = set()
    for obj in (loader, getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None),
                getattr(loader, "dataset", None)):
        if obj is not None and id(obj) not in seen and hasattr(obj, "set_epoch"):
            seen.add(id(obj))
            obj.set_epoch(epoch)
    return skip


def _legacy_precision(train_config: dict, device: torch.device) -> str:
    """The precision a checkpoint written before ``TrainConfig.precision`` trained in: its ``amp``
    flag meant bf16 autocast on CUDA only."""
    return "bf16" if train_config.get("amp", True) and device.type == "cuda" else "fp32"


# --- the trainer ---------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, model: nn.Module, train_loader, val_loader=None, config: TrainConfig | None = None,
                 run_dir: str | os.PathLike = "runs/run", resume: bool = False):
        self.cfg = cfg = config or TrainConfig()
        self.rank, self.world = distributed_context()
        self.is_main = self.rank == 0
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.model = model.to(self.device)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            stale = remove_stale_staging(self.run_dir)
            if stale:
                self._log(f"removed {len(stale)} leftover(s) of an interrupted checkpoint write: "
                          + ", ".join(p.name for p in stale))
        self.step = self.epoch = self.batch_in_epoch = 0
        self._resume_rng = None
        self.optimizer = self._make_optimizer()
        self.net = _LossForward(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        seed_everything(cfg.seed + self.rank)
        self.resumed_from = self._resume() if resume else None

    def _make_optimizer(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self.model).__name__} has no trainable parameters")
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas,
                                 fused=self.device.type in ("cuda", "cpu"))

    # -- checkpoint / resume -----------------------------------------------------------------------------
    def _resume(self):
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            self._log(f"no checkpoint in {self.run_dir}; starting from step 0")
            if self.is_main:
                self._truncate_metrics(0)      # lines of a run killed before its first checkpoint
            return None
        load_weights(self.model, ckpt)
        state = load_trainer_state(ckpt)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        if state["num_threads"] != torch.get_num_threads() and self.device.type == "cpu":
            self._log(f"resume: setting torch threads to {state['num_threads']} as recorded "
                      f"(was {torch.get_num_threads()}) so the run continues identically")
            torch.set_num_threads(state["num_threads"])
        saved = state.get("precision") or _legacy_precision(state.get("train_config") or {}, self.device)
        if saved != self.precision:
            self._log(f"resume: the checkpoint was trained in {saved}, this run uses {self.precision} "
                      "(set precision to continue exactly)")
        if len(state["rng"]) == self.world:
            self._resume_rng = state["rng"][self.rank]
        else:
            self._log(f"resume: checkpoint has {len(state['rng'])} rank(s), now {self.world}; "
                      "RNG streams restart from the seed")
        if self.is_main:
            self._truncate_metrics(self.step)
        self._log(f"resumed from {ckpt} at step {self.step} (epoch {self.epoch}, batch {self.batch_in_epoch})")
        return ckpt

    def _truncate_metrics(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = []
        for ln in path.read_text().splitlines():
            try:
                if json.loads(ln)["step"] <= step:
                    keep.append(ln)
            except (json.JSONDecodeError, KeyError, TypeError):
                pass    # a line torn by the kill, or not ours: dropped
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))

    def save(self) -> Path | None:
        """Checkpoint the current state (all ranks call it; rank 0 writes)."""
        rngs = _gather_json(rng_state(), self.device)
        path = None
        if self.is_main:
            state = {"optimizer": self.optimizer.state_dict(), "step": self.step, "epoch": self.epoch,
                     "batch_in_epoch": self.batch_in_epoch, "num_threads": torch.get_num_threads(),
                     "world_size": self.world, "rng": rngs, "precision": self.precision,
                     "train_config": json.loads(json.dumps(dataclasses.asdict(self.cfg)))}
            path = save_checkpoint(self.run_dir, self.step, self.model, state, keep=self.cfg.keep_checkpoints,
                                   protect=self.cfg.milestones)
        if self.world > 1:
            dist.barrier()
        self._last_saved = self.step
        return path

    # -- logging -------------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.is_main:
            tqdm.write(f"[lsdkit.train] {msg}")

    def _write_metrics(self, record: dict) -> None:
        """Append one JSON line; a NaN/inf value is written as ``null`` (metrics.jsonl stays JSON)."""
        if self.is_main:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(clean, allow_nan=False) + "\n")
                f.flush()

    # -- one step, validation ---------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _autocast(self):
        return autocast(self.device, self.precision)

    def train_step(self, batch: dict) -> dict:
        lr = lr_at(self.step, self.cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        with self._autocast():
            loss, metrics = self.net(self._to_device(batch))
        mean_loss = loss.detach().float()
        if self.world > 1:
            dist.all_reduce(mean_loss)
            mean_loss /= self.world
        if not torch.isfinite(mean_loss):
            raise TrainingDiverged(self._diverged_msg(f"loss is {mean_loss.item()}"))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        gnorm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf"))
        if not torch.isfinite(gnorm):
            raise TrainingDiverged(self._diverged_msg(f"gradient norm is {gnorm.item()}"))
        self.optimizer.step()
        return {**metrics, "loss": mean_loss.item(), "grad_norm": gnorm.item(), "lr": lr}

    def _diverged_msg(self, what: str, step: int | None = None) -> str:
        step = self.step + 1 if step is None else step
        return f"training diverged at step {step}: {what}; stopping ({self._good_checkpoint_note()})"

    def _validated_steps(self) -> dict[int, bool]:
        """``{step: every validation metric finite}`` from this run's metrics.jsonl."""
        path, out = self.run_dir / "metrics.jsonl", {}
        if path.exists():
            for ln in path.read_text().splitlines():
                try:
                    row = json.loads(ln)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and row.get("split") == "valid" and "step" in row:
                    values = [v for k, v in row.items() if k not in ("split", "step")]
                    out[row["step"]] = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        return out

    def _good_checkpoint_note(self) -> str:
        """Which checkpoint to go back to. With validation, that is the newest checkpoint whose own
        validation was finite (never one whose validation was NaN); a newer one that was not
        validated is named as such."""
        from lsdkit.checkpoint import step_dir_name
        latest = latest_checkpoint(self.run_dir)
        if latest is None:
            return "no checkpoint was written"
        steps = sorted(int(p.name.split("_")[1]) for p in self.run_dir.glob("step_*")
                       if p.is_dir() and p.name.split("_")[1].isdigit() and (p / "config.json").is_file())
        validated = self._validated_steps()
        if self.val_loader is None or not validated:
            return f"the last good checkpoint {latest} is left intact"
        good = [s for s in steps if validated.get(s) is True]
        if not good:
            return (f"no checkpoint has a finite validation; the latest, {latest}, is left intact but its "
                    "validation was not finite or not run")
        best = self.run_dir / step_dir_name(good[-1])
        note = f"the last good checkpoint, the newest whose validation was finite, is {best}"
        for flag, what in ((None, "not validated"), (False, "validation not finite")):
            later = [step_dir_name(s) for s in steps if s > good[-1] and validated.get(s) is flag]
            if later:
                note += f"; later {', '.join(later)}: {what}"
        return note

    @torch.no_grad()
    def validate(self) -> dict:
        """Token-weighted mean of ``model.validation_metrics`` over ``eval_batches`` batches (all ranks)."""
        if self.val_loader is None or not hasattr(self.model, "validation_metrics"):
            return {}
        self.model.eval()
        sums, weight = {}, 0.0
        with isolated_rng(self.cfg.seed + 100_003 + self.rank), self._autocast():
            _set_epoch(self.val_loader, 0)
            for i, batch in enumerate(self.val_loader):
                if i >= self.cfg.eval_batches:
                    break
                batch = self._to_device(batch)
                w = float(batch["mask"].sum())
                for k, v in self.model.validation_metrics(batch).items():
                    sums[k] = sums.get(k, 0.0) + w * v
                weight += w
        keys = sorted(sums)
        vec = torch.tensor([sums[k] for k in keys] + [weight], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(vec)
        return {k: (vec[i] / vec[-1]).item() for i, k in enumerate(keys)} if vec[-1] > 0 else {}

    # -- the loop -------------------------------------------------------------------------------------
    def _time_up(self, t0: float) -> bool:
        if self.cfg.max_minutes is None:
            return False
        flag = torch.tensor([float(time.time() - t0 > 60 * self.cfg.max_minutes)], device=self.device)
        if self.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def fit(self) -> dict:
        """Train until ``max_steps`` (or ``max_minutes``); returns the last train/valid metrics."""
        cfg, t0 = self.cfg, time.time()
        self._last_saved = self.step if self.resumed_from else -1
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.is_main),
                   desc=f"train {self.model.kind}", dynamic_ncols=True)
        try:
            last = self._loop(bar, t0)
        finally:
            bar.close()
        if self._last_saved != self.step:
            self.save()
        return last

    def _loop(self, bar, t0: float) -> dict:
        cfg, last, window = self.cfg, {}, []
        done = self.step >= cfg.max_steps
        while not done:
            to_skip = _set_epoch(self.train_loader, self.epoch, self.batch_in_epoch)
            it = iter(self.train_loader)
            for i in range(to_skip):
                if next(it, None) is None:
                    raise RuntimeError(f"resume: epoch {self.epoch} has only {i} batches but the checkpoint "
                                       f"was taken after {self.batch_in_epoch}; the data changed")
            if self._resume_rng is not None:   # after the iterator exists: it may draw from the RNG
                set_rng_state(self._resume_rng)
                self._resume_rng = None
            for batch in it:
                metrics = self.train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                window.append(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    last = {k: float(np.mean([m[k] for m in window if k in m])) for k in window[-1]}
                    self._write_metrics({"split": "train", "step": self.step, "epoch": self.epoch, **last})
                    window = []
                done = self.step >= cfg.max_steps or self._time_up(t0)
                # validate on schedule, and once more when the run ends between scheduled points
                # (a --max-minutes stop), so every finished run ends with a validation row
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or done):
                    val = self.validate()
                    if val:
                        self._write_metrics({"split": "valid", "step": self.step, **val})
                        bad = {k: v for k, v in val.items() if not math.isfinite(v)}
                        if bad:        # a divergence too: this state is not checkpointed
                            shown = ", ".join(f"{k} is {v}" for k, v in sorted(bad.items()))
                            raise TrainingDiverged(self._diverged_msg(f"validation {shown}", step=self.step))
                        last.update({f"val_{k}": v for k, v in val.items()})
                scheduled = cfg.ckpt_every and self.step % cfg.ckpt_every == 0
                if (scheduled or self.step in cfg.milestones) and not done:
                    self.save()
                if done:
                    break
            else:
                if self.batch_in_epoch == 0:
                    raise RuntimeError("the training loader yielded no batches")
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        return last


# --- the one way to train: fit() ------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` returns: the step reached, the last train/valid metrics, the checkpoint."""
    step: int
    metrics: dict
    checkpoint: Path | None
    resumed_from: Path | None = None

    def summary(self, kind: str) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"{kind}: step {self.step}; {shown}; checkpoint {self.checkpoint}"


def corpus_loaders(data: str | os.PathLike | None, max_len: int, cfg: TrainConfig, limit: int | None = None):
    """(train, valid) loaders over a corpus, sharded per rank.

    ``data`` is a FASTA file, a data directory holding the Swiss-Prot 2014 corpus, or None (the
    configured data directory, else the bundled sample); ``limit`` keeps the first N records.
    The corpus summary (read / dropped / kept / cropped) is printed as one line; a corpus that leaves
    no training sequence raises :class:`~lsdkit.data.corpus.CorpusError` naming the filters.
    """
    from lsdkit.data.corpus import Corpus, CorpusConfig, make_loader
    from lsdkit.data.sources import corpus_fasta

    rank, world = distributed_context()
    data = Path(data) if data else None
    source = str(data) if data is not None and data.is_file() else str(corpus_fasta(data))
    corpus = Corpus.load(CorpusConfig(fasta=source, max_len=max_len, limit=limit))
    if rank == 0:
        tqdm.write(f"[lsdkit.train] {corpus.summary()} ({source})")
    corpus.require_training_data(source)
    common = dict(num_workers=cfg.num_workers, num_replicas=world, rank=rank)
    train = make_loader(corpus.split("train"), cfg.batch_tokens, shuffle=True, seed=cfg.seed, **common)
    valid = corpus.split("valid")
    valid = make_loader(valid, cfg.batch_tokens, shuffle=False, seed=cfg.seed, **common) if len(valid) else None
    return train, valid


RUN_FILES = ("metrics.jsonl", "latest")     # with the step_NNNNNN/ directories: what makes a run


def existing_run(run_dir: str | os.PathLike) -> list[str]:
    """What in ``run_dir`` shows it already holds a training run (metrics.jsonl, latest, step_*/);
    empty when it holds none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [n for n in RUN_FILES if (run_dir / n).is_file() and (run_dir / n).stat().st_size > 0]
    found += sorted(p.name for p in run_dir.glob("step_*") if p.is_dir())
    return found


def clear_run(run_dir: str | os.PathLike) -> list[str]:
    """Remove a run's outputs from ``run_dir`` (metrics.jsonl, latest, step_*/ and leftovers of
    interrupted writes); other files, e.g. a content-keyed ``latent_cache/``, stay. Returns the names removed."""
    import shutil

    run_dir = Path(run_dir)
    removed = [p.name for p in remove_stale_staging(run_dir)]
    for name in existing_run(run_dir):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(name)
    return removed


def check_run_dir(run_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> bool:
    """Whether starting a run in ``run_dir`` must clear a previous one first (``overwrite``); raises
    :class:`RunExists` when ``run_dir`` holds a run and neither ``resume`` nor ``overwrite`` is given."""
    if resume and overwrite:
        raise ArgumentError("--resume and --overwrite exclude each other (resume continues the run in the "
                            "directory, overwrite clears it)")
    found = existing_run(run_dir)
    if not found or resume:
        return False
    if not overwrite:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise RunExists(f"{run_dir} already holds a training run ({shown}): pass --resume (resume=True) "
                        "to continue it, or --overwrite (overwrite=True) to clear it and start again")
    return True


def fit(model: nn.Module, data=None, config: TrainConfig | None = None, run_dir: str | os.PathLike = "runs/run",
        *, resume: bool = False, overwrite: bool = False, limit: int | None = None) -> FitResult:
    """Train ``model`` on a corpus into ``run_dir``: the one way to train (CLI, study, notebooks).

    ``data``: a FASTA file, a data directory, None (configured data directory, else the bundled
    sample), or a ``(train_loader, valid_loader)`` pair. Seed before building the model for
    reproducible initial weights (``seed_everything``). A model with a
    ``training_loaders(train, valid, config, run_dir)`` method gets to replace the loaders (the
    denoiser: batches of cached encoder latents, :mod:`lsdkit.latents`), fresh or resumed. A model
    with a ``prepare_training(train_loader, device)`` method (the denoiser: its latent statistics)
    gets it called before a fresh run; a resumed run restores what it prepared from the checkpoint.

    ``run_dir`` already holding a run (:func:`existing_run`): ``resume=True`` continues it;
    ``overwrite=True`` clears it first (:func:`clear_run`); neither raises :class:`RunExists`
    before any work, so a finished run is never overwritten by accident.
    """
    cfg = config or TrainConfig()
    if check_run_dir(run_dir, resume=resume, overwrite=overwrite):
        if distributed_context()[0] == 0:
            removed = clear_run(run_dir)
            tqdm.write(f"[lsdkit.train] --overwrite: cleared {len(removed)} item(s) of the previous run in {run_dir}")
        if dist.is_initialized():
            dist.barrier()
    if isinstance(data, tuple):
        train, valid = data
    else:
        train, valid = corpus_loaders(data, model.config.max_len, cfg, limit=limit)
    if hasattr(model, "training_loaders"):
        train, valid = model.training_loaders(train, valid, cfg, run_dir)
    resuming = resume and latest_checkpoint(run_dir) is not None
    if hasattr(model, "prepare_training") and not resuming:
        model.prepare_training(train, resolve_device(cfg.device))
    trainer = Trainer(model, train, valid, cfg, run_dir=run_dir, resume=resume)
    last = trainer.fit()
    return FitResult(step=trainer.step, metrics=last, checkpoint=latest_checkpoint(run_dir),
                     resumed_from=trainer.resumed_from)
