"""Masked language model baseline (ESM-style), with a d_z latent read out of its last layer.

    tokens -> (mask 15 %: 80 % <mask>, 10 % random residue, 10 % unchanged) -> embedding
           -> transformer stack (n_layers) -> z = W_z·h  [B, L, d_z]
           -> LM head: Linear(d_z, d_model) -> GELU -> LayerNorm -> Linear(d_model, vocab)

*Ours*: "its hidden states projected to d_z are its latent space" (DESIGN.md) is realised by
putting the d_z projection *inside* the LM head, so the projection is trained by the MLM loss
itself (a projection fitted afterwards, e.g. PCA, would be a different, untrained latent).
``encode(tokens, mask)`` runs the unmasked sequence and returns z — the same signature and
shape as the autoencoders' latent. "Same size" as the autoencoder: ``n_layers`` equals the
autoencoder's encoder + decoder layers at the same ``d_model`` (see ``presets.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lsdkit.alphabet import ALPHABET, FIRST_RESIDUE, MASK
from lsdkit.checkpoint import Pretrained, register_kind
from lsdkit.models.blocks import TransformerSize, init_weights

N_STANDARD = 20


@dataclass
class MLMConfig(TransformerSize):
    # d_model, n_heads, ffn_mult, dropout, positions, max_len: TransformerSize
    vocab_size: int = len(ALPHABET)
    n_layers: int = 6
    d_z: int = 32
    mask_rate: float = 0.15         # fraction of residues selected for prediction (ESM)
    mask_token_frac: float = 0.8    # of selected: replaced by <mask>
    random_token_frac: float = 0.1  # of selected: replaced by a random standard residue (rest kept)


def mask_tokens(tokens, mask, rate=0.15, mask_frac=0.8, random_frac=0.1):
    """ESM/BERT corruption. Returns ``(inputs, selected)``; every sequence gets >= 1 selection."""
    scores = torch.rand(tokens.shape, device=tokens.device).masked_fill(~mask, 2.0)
    selected = (scores < rate) & mask
    # a sequence with no selection gets its lowest-score real residue selected
    none = ~selected.any(-1) & mask.any(-1)
    first = F.one_hot(scores.argmin(-1), tokens.shape[1]).bool() & none[:, None]
    selected = selected | first
    action = torch.rand(tokens.shape, device=tokens.device)
    to_mask = selected & (action < mask_frac)
    to_random = selected & (action >= mask_frac) & (action < mask_frac + random_frac)
    random_res = torch.randint(FIRST_RESIDUE, FIRST_RESIDUE + N_STANDARD, tokens.shape, device=tokens.device)
    inputs = torch.where(to_mask, torch.full_like(tokens, MASK), tokens)
    inputs = torch.where(to_random, random_res, inputs)
    return inputs, selected


class MLM(Pretrained, nn.Module):
    kind = "mlm"

    def __init__(self, config: MLMConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.stack = c.stack(c.n_layers)
        self.to_latent = nn.Linear(c.d_model, c.d_z)
        self.head = nn.Sequential(nn.Linear(c.d_z, c.d_model), nn.GELU(), nn.LayerNorm(c.d_model),
                                  nn.Linear(c.d_model, c.vocab_size))
        for m in (self.embed, self.to_latent, self.head):
            m.apply(init_weights)

    def latent(self, inputs, mask):
        return self.to_latent(self.stack(self.embed(inputs), mask))

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z [B, L, d_z] of the unmasked sequence (eval semantics, zero at padding)."""
        was_training = self.training
        self.eval()
        try:
            return self.latent(tokens, mask).masked_fill(~mask[..., None], 0.0)
        finally:
            self.train(was_training)

    def _masked_loss(self, batch):
        c = self.config
        tokens, mask = batch["tokens"], batch["mask"]
        inputs, selected = mask_tokens(tokens, mask, c.mask_rate, c.mask_token_frac, c.random_token_frac)
        logits = self.head(self.latent(inputs, mask)[selected])   # LM head only where it is scored
        target = tokens[selected]
        ce = F.cross_entropy(logits.float(), target)
        acc = (logits.argmax(-1) == target).float().mean()
        return ce, acc

    def loss(self, batch: dict):
        ce, acc = self._masked_loss(batch)
        return ce, {"loss": ce.item(), "masked_acc": acc.item(), "perplexity": math.exp(min(ce.item(), 50.0))}

    @torch.no_grad()
    def validation_metrics(self, batch: dict) -> dict:
        """Masked-token accuracy and perplexity (random masks: the Trainer seeds validation)."""
        ce, acc = self._masked_loss(batch)
        return {"masked_acc": acc.item(), "masked_ce": ce.item(), "perplexity": math.exp(min(ce.item(), 50.0))}


register_kind("mlm", MLMConfig, MLM)
