"""Latent diffusion on per-residue latent sequences (kind ``"diffusion"``).

    tokens ─► frozen encoder (autoencoder | MLM) ─► z ─► standardise: z₀ = (z − μ) / s
    z_t = α_t z₀ + σ_t ε            (schedule from :mod:`lsdkit.schedules`, cosine by default)
    denoiser(z_t, t, mask) ─► v̂ (or ẑ₀);   L = ‖v̂ − v‖² averaged over real residues and dims

* **Standardisation** (*ours*, as in DiMA): μ, s are per-dimension mean/std of the encoder's
  latents over real residues, estimated from training batches before training
  (:meth:`LatentDiffusion.estimate_latent_stats`) and stored as buffers in the checkpoint.
* **Denoiser**: ``in_proj(z_t)`` ─► :class:`~lsdkit.models.blocks.TransformerStack` conditioned on
  t through adaLN-zero (sinusoidal embedding of 1000·t ─► MLP ─► ``cond``) ─► ``out_proj``;
  padding is masked out of attention, so a sequence is denoised the same alone or in a batch.
* **Frozen encoder**: built from ``encoder_kind``/``encoder_config`` stored in this model's config,
  its weights saved inside this checkpoint (so the directory is self-contained); ``encoder_path``
  records where it came from and ``encoder_hash`` (:func:`weights_hash`) is verified on load.
  It never trains (``requires_grad=False``) and always runs in eval mode (no noise masking).

* **Cached latents** (:mod:`lsdkit.latents`): a batch may carry the encoder's latents as
  ``batch["latents"]`` (un-standardised, ``[B, L, d_z]``); the loss then standardises those and
  never runs the encoder. :func:`lsdkit.train.fit` trains on such batches by default
  (:meth:`LatentDiffusion.training_loaders`, cache under ``RUN/latent_cache``;
  :meth:`LatentDiffusion.use_latent_cache` picks another directory or turns it off).

Build one from an encoder checkpoint with :func:`LatentDiffusion.from_encoder`; the Trainer
only sees ``loss(batch)`` / ``validation_metrics(batch)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lsdkit.checkpoint import (KIND_MODULES, CheckpointError, Pretrained, config_from_dict, config_to_dict,
                               kind_classes, load_model, register_kind, resolve)
from lsdkit.models.blocks import TransformerSize, init_weights
from lsdkit.schedules import (SCHEDULES, eps_from_v, eps_from_z0, get_schedule, q_sample, v_target,
                              z0_from_v)

PREDICTIONS = ("v", "x0")


@dataclass
class DiffusionConfig(TransformerSize):
    # the denoiser's d_model, n_heads, ffn_mult, dropout, positions, max_len: TransformerSize
    # the frozen encoder whose latents are diffused
    encoder_kind: str = "autoencoder"          # autoencoder | mlm
    encoder_config: dict = field(default_factory=dict)
    encoder_path: str = ""                     # provenance: the checkpoint it was loaded from
    encoder_hash: str = ""                     # weights_hash(encoder), verified on load
    d_z: int = 32
    # the denoiser
    n_layers: int = 6
    time_embed_dim: int = 128                  # sinusoidal features of 1000·t
    # the diffusion
    schedule: str = "cosine"                   # registry lsdkit.schedules.SCHEDULES
    prediction: str = "v"                      # v | x0  (ours)
    t_min: float = 0.0                         # training t ~ U(t_min, t_max)
    t_max: float = 1.0
    stats_batches: int = 16                    # training batches used to estimate μ, s
    std_floor: float = 1e-4                    # s = max(std, std_floor): dead dims are not blown up


# --- the equations ---------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of 1000·t: [cos(1000 t ω_k), sin(1000 t ω_k)], ω_k = max_period^(−k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def standardise(z: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """z₀ = (z − μ) / s per latent dimension."""
    return (z - mu) / s


def unstandardise(z0: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """z = μ + s·z₀."""
    return mu + s * z0


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (pred − target)² over real residues (``mask``) and latent dimensions, in fp32
    (under bf16 autocast the network's output is bf16; the loss is not)."""
    w = mask[..., None].float()
    return ((pred.float() - target.float()).pow(2) * w).sum() / (w.sum() * pred.shape[-1]).clamp(min=1.0)


def x0_prediction_loss(z0_hat: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_x0 = E‖ẑ₀ − z₀‖² over real residues."""
    return masked_mse(z0_hat, z0, mask)


def v_prediction_loss(v_hat: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_v = E‖v̂ − v‖², v = α_t ε − σ_t z₀, over real residues."""
    return masked_mse(v_hat, v, mask)


def weights_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): a content id of its weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --- the denoiser ----------------------------------------------------------------------------------
class Denoiser(nn.Module):
    """z_t [B, L, d_z], t [B], mask [B, L] -> prediction [B, L, d_z] (and all hidden layers)."""

    def __init__(self, c: DiffusionConfig):
        super().__init__()
        self.time_embed_dim = c.time_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.time_embed_dim, c.d_model), nn.SiLU(),
                                      nn.Linear(c.d_model, c.d_model))
        self.in_proj = nn.Linear(c.d_z, c.d_model)
        self.stack = c.stack(c.n_layers, cond_dim=c.d_model)
        self.out_proj = nn.Linear(c.d_model, c.d_z)
        for m in (self.time_mlp, self.in_proj, self.out_proj):
            m.apply(init_weights)

    def forward(self, z_t, t, mask, return_hidden: bool = False):
        """``hiddens`` (with ``return_hidden``): n_layers + 1 tensors [B, L, d_model], zero at padding."""
        cond = self.time_mlp(timestep_embedding(t, self.time_embed_dim))
        out, hiddens = self.stack(self.in_proj(z_t), mask, cond, return_hidden=True)
        pred = self.out_proj(out).masked_fill(~mask[..., None], 0.0)
        return (pred, hiddens) if return_hidden else pred


# --- the model -------------------------------------------------------------------------------------
class LatentDiffusion(Pretrained, nn.Module):
    kind = "diffusion"

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        c = self.config = config
        if c.prediction not in PREDICTIONS:
            raise ValueError(f"prediction={c.prediction!r}; choose one of {PREDICTIONS}")
        if not 0.0 <= c.t_min < c.t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={c.t_min}, t_max={c.t_max}")
        if not c.encoder_config:
            raise ValueError("DiffusionConfig.encoder_config is empty: build the model with "
                             "LatentDiffusion.from_encoder(<autoencoder or mlm checkpoint>)")
        enc_cfg_cls, enc_cls = kind_classes(c.encoder_kind)
        self.encoder = enc_cls(config_from_dict(enc_cfg_cls, c.encoder_config, "encoder_config"))
        if self.encoder.config.d_z != c.d_z:
            raise ValueError(f"encoder d_z={self.encoder.config.d_z} but diffusion d_z={c.d_z}")
        self.encoder.requires_grad_(False).eval()
        self.denoiser = Denoiser(c)
        self.schedule = get_schedule(c.schedule)
        self.register_buffer("latent_mean", torch.zeros(c.d_z))
        self.register_buffer("latent_std", torch.ones(c.d_z))
        self.register_buffer("latent_count", torch.zeros((), dtype=torch.float64))  # residues seen
        self.register_load_state_dict_post_hook(_verify_encoder)
        self.latent_cache: bool | str | os.PathLike = True   # where fit caches latents (not saved)

    @classmethod
    def from_encoder(cls, encoder: str | os.PathLike | nn.Module, preset: str | None = "small",
                     **overrides) -> LatentDiffusion:
        """A fresh diffusion model on the latents of ``encoder`` (checkpoint path or model).

        ``preset`` (tiny | small | base) sets the denoiser size like the encoder presets;
        ``overrides`` set any :class:`DiffusionConfig` field.
        """
        path = ""
        if isinstance(encoder, str) and _is_pretrained_spec(encoder):   # near | esm2:PATH (lsdkit.pretrained)
            from lsdkit.pretrained import load_encoder
            encoder = load_encoder(encoder)
        if not isinstance(encoder, nn.Module):
            path = str(resolve(encoder).resolve())
            encoder = load_model(path)
        if encoder.kind not in ("autoencoder", "mlm", "pretrained"):
            raise CheckpointError(f"{path or 'model'}: diffusion needs an autoencoder or mlm encoder (or a "
                                  f"pretrained one: near, esm2:PATH), got a {encoder.kind!r} model")
        enc = encoder.config
        fields = dict(encoder_kind=encoder.kind, encoder_config=config_to_dict(enc), encoder_path=path or
                      getattr(enc, "path", ""), encoder_hash=weights_hash(encoder), d_z=enc.d_z,
                      positions=getattr(enc, "positions", "rotary"), max_len=enc.max_len)
        if preset is not None:
            fields.update(denoiser_preset(preset))
        if encoder.kind == "pretrained":        # no window of its own (NEAR) or ESM's 1022: the preset's
            from lsdkit.models.presets import SIZES
            fields["max_len"] = min(enc.max_len, SIZES[preset or "small"]["max_len"])
        model = cls(dataclasses.replace(DiffusionConfig(**fields), **overrides))
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()          # frozen: eval semantics always (no dropout, no noise masking)
        return self

    # -- latents -------------------------------------------------------------------------------
    @property
    def stats_ready(self) -> bool:
        return bool(self.latent_count > 0)

    @torch.no_grad()
    def encoder_latents(self, tokens, mask, cached: torch.Tensor | None = None) -> torch.Tensor:
        """The frozen encoder's latents z [B, L, d_z] (un-standardised, zero at padding); ``cached``
        (a batch's ``"latents"``, :mod:`lsdkit.latents`) are returned instead of running it."""
        return (self.encoder.encode(tokens, mask) if cached is None else cached).float()

    @torch.no_grad()
    def clean_latents(self, tokens, mask, cached: torch.Tensor | None = None) -> torch.Tensor:
        """z₀ = standardise(encoder(tokens)) (or of ``cached`` latents), zero at padding."""
        if not self.stats_ready:
            raise RuntimeError("latent statistics not estimated: call model.estimate_latent_stats(batches) "
                               "before training or sampling (`lsdkit train diffusion` does this)")
        z0 = standardise(self.encoder_latents(tokens, mask, cached), self.latent_mean, self.latent_std)
        return z0.masked_fill(~mask[..., None], 0.0)

    def use_latent_cache(self, where: bool | str | os.PathLike = True) -> LatentDiffusion:
        """Where :func:`lsdkit.train.fit` caches the encoder's latents: True (default: the run
        directory's ``latent_cache/``), a directory, or False (the encoder runs in every step)."""
        self.latent_cache = where
        return self

    def training_loaders(self, train, valid, config, run_dir):
        """:func:`lsdkit.train.fit`'s hook: the corpus loaders wrapped so that their batches carry
        cached encoder latents (:func:`lsdkit.latents.cached_loaders`), unless the cache is off."""
        if self.latent_cache is False:
            return train, valid
        from lsdkit.latents import cached_loaders
        root = Path(run_dir) / "latent_cache" if self.latent_cache is True else Path(self.latent_cache)
        return cached_loaders(self, train, valid, root, config)

    def prepare_training(self, train_loader, device) -> dict:
        """Before a fresh training run (:func:`lsdkit.train.fit` calls it): the latent mean/std from
        the first ``stats_batches`` training batches, estimated on the training ``device``."""
        from itertools import islice
        self.to(device)
        train_loader.set_epoch(0)
        stats = self.estimate_latent_stats(islice(train_loader, self.config.stats_batches))
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"latent statistics from {stats['residues']} residues: mean |mu| {stats['mean_abs_mu']:.3g}, "
                  f"mean std {stats['mean_std']:.3g}")
        return stats

    @torch.no_grad()
    def estimate_latent_stats(self, batches) -> dict:
        """Per-dimension mean/std of the encoder latents over the real residues of ``batches``."""
        dev = self.latent_mean.device
        n, s1 = 0.0, torch.zeros_like(self.latent_mean, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        for batch in batches:
            mask = batch["mask"].to(dev)
            cached = batch["latents"].to(dev) if "latents" in batch else None
            z = self.encoder_latents(batch["tokens"].to(dev), mask, cached)[mask].double()
            n, s1, s2 = n + z.shape[0], s1 + z.sum(0), s2 + z.pow(2).sum(0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            packed = torch.cat([torch.tensor([n], dtype=torch.float64, device=dev), s1, s2])
            torch.distributed.all_reduce(packed)       # every rank gets the same statistics
            n, s1, s2 = packed[0].item(), packed[1:1 + len(s1)], packed[1 + len(s1):]
        if n < 2:
            raise ValueError(f"need at least 2 residues to estimate latent statistics, got {int(n)}")
        mean = s1 / n
        std = ((s2 / n - mean.pow(2)).clamp(min=0.0) * n / (n - 1)).sqrt()
        self.latent_mean.copy_(mean.float())
        self.latent_std.copy_(std.clamp(min=self.config.std_floor).float())
        self.latent_count.fill_(n)
        return {"residues": int(n), "mean_abs_mu": mean.abs().mean().item(), "mean_std": std.mean().item()}

    def decode_logits(self, z0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Residue logits [B, L, V] from standardised latents, by the encoder's own decoder.

        Autoencoders use ``decode``; an MLM uses its LM head (which reads the d_z latent). Any
        other encoder has no way back to residues and is refused.
        """
        z = unstandardise(z0, self.latent_mean, self.latent_std)
        if hasattr(self.encoder, "decode"):
            return self.encoder.decode(z, mask)
        head = getattr(self.encoder, "head", None)
        first = head[0] if isinstance(head, nn.Sequential) else head
        if isinstance(first, nn.Linear) and first.in_features == self.config.d_z:
            return head(z)
        raise RuntimeError(f"the {self.config.encoder_kind!r} encoder has no decoder from its d_z="
                           f"{self.config.d_z} latent: its samples cannot be turned into sequences")

    # -- denoising -----------------------------------------------------------------------------
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """α_t, σ_t shaped [B, 1, 1] for latents [B, L, d_z]."""
        return self.schedule.alpha(t)[:, None, None], self.schedule.sigma(t)[:, None, None]

    def predict(self, z_t, t, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(ẑ₀, ε̂) from one denoiser pass, whatever the network predicts (t > 0 for ε̂ under x0)."""
        out = self.denoiser(z_t, t, mask)
        alpha, sigma = self.alpha_sigma(t)
        if self.config.prediction == "v":
            return z0_from_v(z_t, out, alpha, sigma), eps_from_v(z_t, out, alpha, sigma)
        return out, eps_from_z0(z_t, out, alpha, sigma)

    def _diffusion_loss(self, batch, t: torch.Tensor):
        tokens, mask = batch["tokens"], batch["mask"]
        z0 = self.clean_latents(tokens, mask, batch.get("latents"))
        eps = torch.randn_like(z0).masked_fill(~mask[..., None], 0.0)
        alpha, sigma = self.alpha_sigma(t)
        z_t = q_sample(z0, alpha, sigma, eps)
        out = self.denoiser(z_t, t, mask)
        if self.config.prediction == "v":
            loss = v_prediction_loss(out, v_target(z0, eps, alpha, sigma), mask)
            z0_hat = z0_from_v(z_t, out, alpha, sigma)
        else:
            loss = x0_prediction_loss(out, z0, mask)
            z0_hat = out
        return loss, {"loss": loss.item(), "z0_mse": masked_mse(z0_hat, z0, mask).item()}

    @torch.no_grad()
    def loss_at(self, batch: dict, t: float) -> dict:
        """Metrics of the diffusion loss with every sequence of ``batch`` at the same level t."""
        B = batch["tokens"].shape[0]
        return self._diffusion_loss(batch, torch.full((B,), float(t), device=batch["tokens"].device))[1]

    def loss(self, batch: dict):
        """Diffusion loss at t ~ U(t_min, t_max), one t per sequence."""
        c, B = self.config, batch["tokens"].shape[0]
        t = c.t_min + (c.t_max - c.t_min) * torch.rand(B, device=batch["tokens"].device)
        return self._diffusion_loss(batch, t)

    @torch.no_grad()
    def validation_metrics(self, batch: dict) -> dict:
        """Loss on stratified t: row i of the batch at t = t_min + (i + ½)/B·(t_max − t_min)."""
        c, B = self.config, batch["tokens"].shape[0]
        u = (torch.arange(B, device=batch["tokens"].device, dtype=torch.float32) + 0.5) / B
        return self._diffusion_loss(batch, c.t_min + (c.t_max - c.t_min) * u)[1]


def _verify_encoder(model: LatentDiffusion, incompatible) -> None:
    want = model.config.encoder_hash
    if want and not incompatible.missing_keys and weights_hash(model.encoder) != want:
        raise CheckpointError(f"the frozen encoder's weights do not match encoder_hash={want[:12]}… "
                              f"recorded in the diffusion config (encoder from {model.config.encoder_path!r})")


def _is_pretrained_spec(name: str) -> bool:
    return name == "near" or name.startswith("esm2:")


def denoiser_preset(preset: str) -> dict:
    """Denoiser sizes matching the encoder presets: same width/heads, layers = enc + dec layers."""
    from lsdkit.models.presets import SIZES
    if preset not in SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(SIZES)}")
    s = SIZES[preset]
    return dict(d_model=s["d_model"], n_heads=s["n_heads"], n_layers=s["n_enc_layers"] + s["n_dec_layers"])


register_kind("diffusion", DiffusionConfig, LatentDiffusion)
KIND_MODULES.setdefault("pretrained", "lsdkit.pretrained")      # a denoiser on NEAR / ESM-2 latents
