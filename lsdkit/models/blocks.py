"""Shared transformer pieces: the one attention, rotary positions, pre-norm blocks, a stack.

Every lsdkit network (autoencoder encoder/decoder, MLM, diffusion denoiser) is built from
:class:`TransformerStack`; there is no second copy of attention anywhere in the kit.

Conventions
-----------
* ``x``: float ``[B, L, d_model]``; ``mask``: bool ``[B, L]``, True = real residue (PAD is False).
  Padding keys are excluded from attention, so a padded position never influences a real one:
  a sequence alone and the same sequence inside a padded batch give the same outputs.
  Outputs at padded positions are set to zero.
* Positions: ``"rotary"`` (default; RoPE on queries and keys, no length limit) or ``"learned"``
  (an ``nn.Embedding(max_len, d_model)`` added to the input).
* Conditioning (used by the diffusion denoiser for the time ``t``): pass ``cond_dim`` to the stack
  and a vector ``cond [B, cond_dim]`` to ``forward``. Each block then uses **adaLN-zero**
  (DiT, Peebles & Xie 2023): its LayerNorms lose their own affine parameters and a linear map of
  ``SiLU(cond)`` produces, per block, shift/scale for the two norms and a gate for the two residual
  branches. That linear map is zero-initialised, so at initialisation every block is the identity
  and the stack ignores ``cond``; training opens the gates. The final norm is modulated the same way.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POSITIONS = ("rotary", "learned")


# --- the shared size fields of every model config ---------------------------------------------------
@dataclass
class TransformerSize:
    """The transformer sizes every lsdkit model config shares (autoencoder, MLM, denoiser).

    The configs inherit these fields, so they stay flat: a checkpoint's ``config.json`` keeps
    ``d_model``, ``n_heads``, ... at the top level, as before. Layer counts differ per model
    (``n_enc_layers``/``n_dec_layers`` or ``n_layers``) and are given to :meth:`stack`.
    """

    d_model: int = 256
    n_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.0
    positions: str = "rotary"       # rotary | learned
    max_len: int = 512

    def stack(self, n_layers: int, cond_dim: int | None = None) -> TransformerStack:
        """A :class:`TransformerStack` of ``n_layers`` blocks at these sizes."""
        return TransformerStack(self.d_model, n_layers, self.n_heads, self.ffn_mult, self.dropout,
                                self.positions, self.max_len, cond_dim=cond_dim)


# --- rotary position embedding --------------------------------------------------------------------
def rotary_tables(length: int, head_dim: int, device="cpu", base: float = 10000.0) -> torch.Tensor:
    """RoPE phases ``[L, head_dim/2]`` (complex): exp(i·p·θ_j), θ_j = base^(−2j/head_dim)."""
    theta = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), theta)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: torch.Tensor, cis: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rotate consecutive pairs (x_2j, x_2j+1) of the last dim by the phases ``cis``.

    ``x [..., head_dim]`` is read as complex numbers x_2j + i·x_2j+1 and multiplied by ``cis``
    (broadcast to ``x[..., head_dim/2]``): one complex multiply instead of the
    rotate-half formulation's cat/neg/mul/add (2× faster on CPU, same rotation). The result has
    ``x``'s dtype, or ``dtype``.
    """
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2)) * cis
    return torch.view_as_real(z).flatten(-2).to(dtype or x.dtype)


def attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """Key-padding mask ``[B, L]`` -> SDPA boolean mask ``[B, 1, 1, L]`` (True = may attend).

    A sequence with no real position at all would give rows of -inf (NaN after softmax); such
    rows attend to everything instead (their outputs are zeroed by the caller anyway).
    """
    empty = ~mask.any(dim=-1, keepdim=True)
    return (mask | empty)[:, None, None, :]


# --- blocks ---------------------------------------------------------------------------------------
def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention computes in: ``x``'s, except fp32 under CPU autocast.

    Measured on a 2-core AMX-BF16 CPU, one thread (torch 2.13, head_dim 32, L = 256): PyTorch's
    CPU flash attention takes 1.3x longer forward + backward in bf16 than in fp32, and the small
    preset's bf16 training step is 1.8-2.0x faster than fp32 with attention in fp32 vs 1.55x with
    it in bf16 (the tiny preset's: 1.2x vs 0.6x). On CUDA, bf16 attention is the fast path and is kept.
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.float32
    return x.dtype


class SelfAttention(nn.Module):
    """Multi-head self-attention via ``F.scaled_dot_product_attention`` (the kit's only attention)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if (d_model // n_heads) % 2:
            raise ValueError(f"head dimension d_model/n_heads={d_model // n_heads} must be even (rotary)")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, attn_mask, rotary=None):
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads)
        dtype = attention_dtype(qkv)
        if rotary is not None:      # rotate q and k together: [B, L, 2, H, Dh] by [L, 1, 1, Dh/2]
            qk = apply_rotary(qkv[:, :, :2], rotary[:, None, None, :], dtype)
            q, k = qk.permute(2, 0, 3, 1, 4)
        else:
            q, k = qkv[:, :, :2].to(dtype).permute(2, 0, 3, 1, 4)
        v = qkv[:, :, 2].to(dtype).transpose(1, 2)
        with torch.autocast(x.device.type, enabled=False) if dtype != qkv.dtype else nullcontext():
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(d, m·d) -> GELU -> Linear(m·d, d)."""

    def __init__(self, d_model: int, ffn_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.up = nn.Linear(d_model, ffn_mult * d_model)
        self.down = nn.Linear(ffn_mult * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.down(self.drop(F.gelu(self.up(x))))


def zero_linear(d_in: int, d_out: int) -> nn.Linear:
    """A zero-initialised linear layer (adaLN-zero); :func:`init_weights` leaves it at zero."""
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    layer._lsdkit_zero = True
    return layer


def modulate(x, shift, scale):
    """adaLN modulation: x·(1 + scale) + shift, with ``shift/scale [B, D]`` broadcast over L."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)); x + FFN(LN(x)); adaLN-zero when ``cond_dim`` is given."""

    def __init__(self, d_model, n_heads, ffn_mult=4, dropout=0.0, cond_dim: int | None = None):
        super().__init__()
        affine = cond_dim is None
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=affine)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=affine)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.ffn = FeedForward(d_model, ffn_mult, dropout)
        self.drop = nn.Dropout(dropout)
        self.ada = None
        if cond_dim is not None:
            self.ada = nn.Sequential(nn.SiLU(), zero_linear(cond_dim, 6 * d_model))

    def forward(self, x, attn_mask, rotary=None, cond=None):
        if self.ada is None:
            x = x + self.drop(self.attn(self.norm1(x), attn_mask, rotary))
            return x + self.drop(self.ffn(self.norm2(x)))
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(cond).chunk(6, dim=-1)
        x = x + g1[:, None, :] * self.drop(self.attn(modulate(self.norm1(x), sh1, sc1), attn_mask, rotary))
        return x + g2[:, None, :] * self.drop(self.ffn(modulate(self.norm2(x), sh2, sc2)))


class TransformerStack(nn.Module):
    """``n_layers`` pre-norm blocks plus a final LayerNorm.

    ``forward(x, mask, cond=None, return_hidden=False)`` returns the final hidden
    ``[B, L, d_model]`` (after the final norm, zero at padded positions). With
    ``return_hidden=True`` it returns ``(final, hiddens)`` where ``hiddens`` is a list of
    ``n_layers + 1`` tensors: ``hiddens[0]`` is the stack input (after position embedding) and
    ``hiddens[i]`` the output of block ``i`` (residual stream, before the final norm).
    """

    def __init__(self, d_model: int, n_layers: int, n_heads: int, ffn_mult: int = 4,
                 dropout: float = 0.0, positions: str = "rotary", max_len: int = 1024,
                 cond_dim: int | None = None):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r}; choose one of {POSITIONS}")
        self.d_model, self.n_heads, self.positions, self.max_len = d_model, n_heads, positions, max_len
        self.pos_emb = nn.Embedding(max_len, d_model) if positions == "learned" else None
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, ffn_mult, dropout, cond_dim)
                                    for _ in range(n_layers))
        self.cond_dim = cond_dim
        self.final_norm = nn.LayerNorm(d_model, elementwise_affine=cond_dim is None)
        self.final_ada = None
        if cond_dim is not None:
            self.final_ada = nn.Sequential(nn.SiLU(), zero_linear(cond_dim, 2 * d_model))
        self._rotary_cache: dict = {}
        self.apply(init_weights)

    def _rotary(self, L, device):
        key = (L, str(device))
        if key not in self._rotary_cache:
            self._rotary_cache = {key: rotary_tables(L, self.d_model // self.n_heads, device)}
        return self._rotary_cache[key]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None,
                return_hidden: bool = False):
        B, L, D = x.shape
        if mask.shape != (B, L):
            raise ValueError(f"mask has shape {tuple(mask.shape)} but x has [B, L] = {[B, L]}")
        if (cond is None) != (self.cond_dim is None):
            raise ValueError("pass cond exactly when the stack was built with cond_dim "
                             f"(cond_dim={self.cond_dim}, cond given: {cond is not None})")
        rotary = None
        if self.pos_emb is not None:
            if L > self.max_len:
                raise ValueError(f"sequence length {L} exceeds learned-position max_len={self.max_len}")
            x = x + self.pos_emb.weight[:L]
        else:
            rotary = self._rotary(L, x.device)
        keep = mask[:, :, None]
        attn_mask = attention_mask(mask)
        hiddens = [x.masked_fill(~keep, 0.0)] if return_hidden else None
        for block in self.blocks:
            x = block(x, attn_mask, rotary, cond)
            if return_hidden:
                hiddens.append(x.masked_fill(~keep, 0.0))
        x = self.final_norm(x)
        if self.final_ada is not None:
            shift, scale = self.final_ada(cond).chunk(2, dim=-1)
            x = modulate(x, shift, scale)
        x = x.masked_fill(~keep, 0.0)
        return (x, hiddens) if return_hidden else x


def init_weights(module: nn.Module) -> None:
    """GPT-2 style init: N(0, 0.02) for linear/embedding weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        if getattr(module, "_lsdkit_zero", False):
            return
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["TransformerSize", "TransformerStack", "TransformerBlock", "SelfAttention", "FeedForward", "attention_mask",
           "attention_dtype",
           "apply_rotary", "rotary_tables", "modulate", "zero_linear", "init_weights",
           "count_parameters", "POSITIONS"]
