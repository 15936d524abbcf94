"""Sequence autoencoder with a per-residue latent: LSD-TN, LSD-NM and LSD-TN-M.

    tokens -> embedding -> [bottleneck.corrupt] -> encoder stack -> (mu, log sigma²) per residue
           -> z = mu (+ sigma·eps in training) -> [bottleneck(z)] -> decoder stack -> residue logits

Loss (DESIGN.md, weights ours): weighted cross-entropy reconstruction + beta·KL(q(z|x) || N(0, I)).

Bottlenecks are small modules chosen by name from :data:`BOTTLENECKS` (``register_bottleneck``
adds more). Each has two hooks, both identity by default:

* ``corrupt(emb, tokens, mask) -> (emb, corrupted)``: corrupts input embeddings (training only);
* ``forward(z, tokens, mask) -> z``: transforms the latent; its output *is* the latent space.

``"tn"`` TokenNorm (LSD-TN), ``"nm"`` NoiseMask (LSD-NM), ``"tn+nm"`` both (LSD-TN-M, *ours*:
what "-M" means is not known), ``"none"`` plain (ablation, and deterministic tests).

Representation API: ``encode(tokens, mask) -> z [B, L, d_z]`` (deterministic: eval semantics,
z = mu, running TokenNorm statistics, no corruption), ``decode(z, mask) -> logits [B, L, V]``,
``loss(batch) -> (loss, metrics)``, ``validation_metrics(batch) -> dict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import Pretrained, register_kind
from lsdkit.models.blocks import TransformerSize, init_weights


@dataclass
class AutoencoderConfig(TransformerSize):
    # d_model, n_heads, ffn_mult, dropout, positions, max_len: TransformerSize
    vocab_size: int = len(ALPHABET)
    n_enc_layers: int = 4
    n_dec_layers: int = 2
    d_z: int = 32                   # per-residue latent size (ours)
    bottleneck: str = "tn"          # tn | nm | tn+nm | none (registry BOTTLENECKS)
    variational: bool = True        # reparameterised z ~ N(mu, sigma²) in training
    kl_weight: float = 1e-3         # beta (ours)
    logvar_init: float = -4.6       # initial log sigma² (sigma ≈ 0.1): the latent starts readable (ours)
    kl_free_nats: float = 0.0       # KL target: nats per residue left unpenalised (ours)
    corrupt_weight: float = 1.0     # CE weight of corrupted positions relative to clean ones (ours)
    tn_momentum: float = 0.1        # running-statistics momentum of TokenNorm
    tn_eps: float = 1e-5
    tn_min_count: int = 2           # a type needs this many residues in a batch to use batch stats
    nm_rate: float = 0.2            # fraction of residues NoiseMask corrupts (ours)
    nm_sigma_min: float = 0.0       # noise strength s ~ U(nm_sigma_min, nm_sigma_max), s <= 1 (ours)
    nm_sigma_max: float = 1.0


# --- the equations ---------------------------------------------------------------------------------
def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per residue, summed over d_z: ½Σ(mu² + σ² − 1 − log σ²)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def weighted_cross_entropy(logits, targets, weights) -> torch.Tensor:
    """Σ w_i·CE_i / Σ w_i over positions (w = 0 at padding)."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    w = weights.flatten().to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp(min=1e-8)


def reparameterise(mu, logvar):
    """z = mu + exp(½ logvar)·eps, eps ~ N(0, I)."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


# --- bottlenecks -----------------------------------------------------------------------------------
BOTTLENECKS: dict = {}


def register_bottleneck(name: str):
    """Decorator: ``@register_bottleneck("mine")`` on a builder ``f(config) -> Bottleneck``."""
    def deco(builder):
        BOTTLENECKS[name] = builder
        return builder
    return deco


class Bottleneck(nn.Module):
    """Identity bottleneck; subclasses override ``corrupt`` and/or ``forward``."""

    def corrupt(self, emb, tokens, mask):
        return emb, torch.zeros_like(mask)

    def forward(self, z, tokens, mask):
        return z


class TokenNorm(Bottleneck):
    """Per-residue-type normalisation (LSD-TN): z_i -> (z_i − m_a) / sqrt(v_a + eps), a = token_i.

    m_a, v_a are per-dimension mean/variance over the real residues of type a: batch statistics
    in training (types with fewer than ``min_count`` residues in the batch use running ones) and
    running statistics (momentum, unbiased variance) at eval. After it, residues of every type
    have zero mean and unit variance per dimension. Under DDP the statistics are per rank
    (like BatchNorm without SyncBatchNorm).

    Deterministic: the per-type sums and the per-residue look-ups are matmuls with the one-hot
    type matrix H [N, V] (sums Hᵀz, look-up H·m), forward and backward, not ``index_add`` /
    indexing, whose scatter-adds (forward, or the backward of a gather) made runs with 2 CPU
    threads differ in the last digits. In fp32 (autocast off): a one-hot matmul picks values
    exactly, and the sums equal ``index_add``'s up to float rounding.
    """

    def __init__(self, n_types, d_z, momentum=0.1, eps=1e-5, min_count=2):
        super().__init__()
        self.momentum, self.eps, self.min_count = momentum, eps, min_count
        self.register_buffer("running_mean", torch.zeros(n_types, d_z))
        self.register_buffer("running_var", torch.ones(n_types, d_z))

    def one_hot(self, tokens, mask) -> torch.Tensor:
        """H [N, V] (fp32): H[i, a] = 1 where residue i is real and of type a, else 0."""
        hot = F.one_hot(tokens.flatten(), self.running_mean.shape[0]).float()
        return hot * mask.flatten()[:, None].float()

    def batch_stats(self, z, tokens, mask, hot=None):
        """Per-type (counts [V], mean [V, D], biased var [V, D]) over real residues (fp32)."""
        with torch.autocast(z.device.type, enabled=False):
            hot = self.one_hot(tokens, mask) if hot is None else hot
            zf = z.flatten(0, 1).float()
            counts = hot.sum(0)
            denom = counts.clamp(min=1)[:, None]
            mean = (hot.t() @ zf) / denom
            var = (hot.t() @ (zf - hot @ mean).pow(2)) / denom      # padding rows: zero in H
        return counts, mean, var

    def forward(self, z, tokens, mask):
        mean, var = self.running_mean, self.running_var
        with torch.autocast(z.device.type, enabled=False):
            hot = self.one_hot(tokens, mask)
            if self.training:
                counts, b_mean, b_var = self.batch_stats(z, tokens, mask, hot)
                use = (counts >= self.min_count)[:, None]
                mean, var = torch.where(use, b_mean, mean), torch.where(use, b_var, var)
                with torch.no_grad():
                    unbiased = b_var * (counts / (counts - 1).clamp(min=1))[:, None]
                    m = self.momentum
                    self.running_mean.copy_(torch.where(use, (1 - m) * self.running_mean + m * b_mean,
                                                        self.running_mean))
                    self.running_var.copy_(torch.where(use, (1 - m) * self.running_var + m * unbiased,
                                                       self.running_var))
            B, L = tokens.shape
            out = (z.float() - (hot @ mean).view(B, L, -1)) * (hot @ torch.rsqrt(var + self.eps)).view(B, L, -1)
        return out.masked_fill(~mask[..., None], 0.0)


class NoiseMask(Bottleneck):
    """Noise masking (LSD-NM): corrupt a random ``rate`` of residues' input embeddings (training).

    *Ours*: each real residue is chosen independently with probability ``rate``; a chosen
    embedding e becomes sqrt(1 − s²)·e + s·rms(e)·eps with s ~ U(sigma_min, sigma_max) per
    position and eps ~ N(0, I) — variance-preserving, s = 1 replaces the residue by noise
    of the embedding's scale (a "soft" mask token), small s only blurs it.
    """

    def __init__(self, rate=0.2, sigma_min=0.0, sigma_max=1.0):
        super().__init__()
        if not (0.0 <= rate <= 1.0 and 0.0 <= sigma_min <= sigma_max <= 1.0):
            raise ValueError(f"NoiseMask needs 0<=rate<=1 and 0<=sigma_min<=sigma_max<=1, got "
                             f"rate={rate}, sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.rate, self.sigma_min, self.sigma_max = rate, sigma_min, sigma_max

    def corrupt(self, emb, tokens, mask):
        if not self.training or self.rate == 0.0:
            return emb, torch.zeros_like(mask)
        B, L, _ = emb.shape
        chosen = (torch.rand(B, L, device=emb.device) < self.rate) & mask
        s = self.sigma_min + (self.sigma_max - self.sigma_min) * torch.rand(B, L, 1, device=emb.device)
        rms = emb.detach().pow(2).mean(-1, keepdim=True).sqrt()
        noisy = (1 - s.pow(2)).sqrt() * emb + s * rms * torch.randn_like(emb)
        return torch.where(chosen[..., None], noisy, emb), chosen


class Chain(Bottleneck):
    """Several bottlenecks in order (corruptions first to last, then latent maps first to last)."""

    def __init__(self, *parts):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def corrupt(self, emb, tokens, mask):
        corrupted = torch.zeros_like(mask)
        for p in self.parts:
            emb, c = p.corrupt(emb, tokens, mask)
            corrupted = corrupted | c
        return emb, corrupted

    def forward(self, z, tokens, mask):
        for p in self.parts:
            z = p(z, tokens, mask)
        return z


def _token_norm(c):
    return TokenNorm(c.vocab_size, c.d_z, c.tn_momentum, c.tn_eps, c.tn_min_count)


def _noise_mask(c):
    return NoiseMask(c.nm_rate, c.nm_sigma_min, c.nm_sigma_max)


register_bottleneck("none")(lambda c: Bottleneck())
register_bottleneck("tn")(_token_norm)
register_bottleneck("nm")(_noise_mask)
register_bottleneck("tn+nm")(lambda c: Chain(_noise_mask(c), _token_norm(c)))


def build_bottleneck(config: AutoencoderConfig) -> Bottleneck:
    if config.bottleneck not in BOTTLENECKS:
        raise ValueError(f"unknown bottleneck {config.bottleneck!r}; registered: {sorted(BOTTLENECKS)}")
    return BOTTLENECKS[config.bottleneck](config)


# --- the model -------------------------------------------------------------------------------------
class Autoencoder(Pretrained, nn.Module):
    kind = "autoencoder"

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = c.stack(c.n_enc_layers)
        self.to_latent = nn.Linear(c.d_model, 2 * c.d_z)     # -> (mu, logvar)
        self.bottleneck = build_bottleneck(c)
        self.from_latent = nn.Linear(c.d_z, c.d_model)
        self.decoder = c.stack(c.n_dec_layers)
        self.head = nn.Linear(c.d_model, c.vocab_size)
        for m in (self.embed, self.to_latent, self.from_latent, self.head):
            m.apply(init_weights)
        with torch.no_grad():
            self.to_latent.bias[c.d_z:] = c.logvar_init

    def _posterior(self, tokens, mask):
        """(mu, logvar, corrupted) of q(z|x); corrupts the input only in training mode."""
        emb, corrupted = self.bottleneck.corrupt(self.embed(tokens), tokens, mask)
        mu, logvar = self.to_latent(self.encoder(emb, mask)).chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0), corrupted

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The latent space: z [B, L, d_z] with eval semantics (zero at padding)."""
        was_training = self.training
        self.eval()
        try:
            mu, _, _ = self._posterior(tokens, mask)
            return self.bottleneck(mu, tokens, mask).masked_fill(~mask[..., None], 0.0)
        finally:
            self.train(was_training)

    def decode(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Residue logits [B, L, vocab] from latents z [B, L, d_z]."""
        return self.head(self.decoder(self.from_latent(z), mask))

    def loss(self, batch: dict):
        tokens, mask = batch["tokens"], batch["mask"]
        c = self.config
        mu, logvar, corrupted = self._posterior(tokens, mask)
        z = reparameterise(mu, logvar) if (c.variational and self.training) else mu
        logits = self.decode(self.bottleneck(z, tokens, mask), mask)
        weights = mask.float() * (1.0 + (c.corrupt_weight - 1.0) * corrupted.float())
        ce = weighted_cross_entropy(logits, tokens, weights)
        kl = torch.zeros((), device=ce.device)
        if c.variational:
            kl_res = kl_divergence(mu.float(), logvar.float())
            kl = (kl_res - c.kl_free_nats).clamp(min=0.0)[mask].mean()
        loss = ce + c.kl_weight * kl
        with torch.no_grad():
            hit = (logits.argmax(-1) == tokens) & mask
            metrics = {"loss": loss.item(), "recon_ce": ce.item(), "kl": kl.item(),
                       "recon_acc": hit.sum().item() / max(mask.sum().item(), 1)}
            if corrupted.any():
                metrics["recon_acc_corrupted"] = (hit & corrupted).sum().item() / corrupted.sum().item()
        return loss, metrics

    @torch.no_grad()
    def validation_metrics(self, batch: dict) -> dict:
        """Reconstruction through the deterministic latent: accuracy and CE over real residues."""
        tokens, mask = batch["tokens"], batch["mask"]
        logits = self.decode(self.encode(tokens, mask), mask)
        ce = weighted_cross_entropy(logits, tokens, mask.float())
        hit = (logits.argmax(-1) == tokens) & mask
        return {"recon_acc": hit.sum().item() / max(mask.sum().item(), 1), "recon_ce": ce.item()}


register_kind("autoencoder", AutoencoderConfig, Autoencoder)
