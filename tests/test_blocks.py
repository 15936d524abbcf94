"""Shared transformer blocks: shapes, padding invariance, rotary, adaLN-zero conditioning."""

import math
from pathlib import Path

import pytest
import torch

from lsdkit.models.blocks import (TransformerStack, apply_rotary, attention_mask, count_parameters,
                                  rotary_tables)

torch.set_num_threads(1)


def _stack(**kw):
    torch.manual_seed(0)
    args = dict(d_model=32, n_layers=2, n_heads=4, ffn_mult=2, dropout=0.0)
    args.update(kw)
    return TransformerStack(**args).eval()


def test_shapes_and_hidden_list():
    s = _stack()
    x, mask = torch.randn(3, 7, 32), torch.ones(3, 7, dtype=torch.bool)
    y = s(x, mask)
    assert y.shape == (3, 7, 32)
    y2, hiddens = s(x, mask, return_hidden=True)
    assert torch.equal(y, y2)
    assert len(hiddens) == 3 and all(h.shape == (3, 7, 32) for h in hiddens)
    assert torch.allclose(hiddens[0], x)        # hiddens[0] is the input (rotary: nothing added)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_padding_does_not_affect_real_positions(positions):
    s = _stack(positions=positions, max_len=16)
    torch.manual_seed(1)
    x = torch.randn(2, 9, 32)
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    alone = s(x[:1, :5], torch.ones(1, 5, dtype=torch.bool))
    batched, hiddens = s(x, mask, return_hidden=True)
    assert torch.allclose(alone, batched[:1, :5], atol=1e-5)
    # garbage in the padding changes nothing either
    x2 = x.clone()
    x2[0, 5:] = 1e3
    assert torch.allclose(s(x2, mask)[0, :5], batched[0, :5], atol=1e-5)
    # padded outputs are zero, in the final output and in every hidden
    assert batched[0, 5:].abs().max() == 0
    assert all(h[0, 5:].abs().max() == 0 for h in hiddens)


def test_rotary_pinned_values_and_relative_property():
    cis = rotary_tables(4, 2)
    q = torch.tensor([1.0, 0.0]).expand(4, 2)
    rq = apply_rotary(q, cis)
    # head_dim 2: one frequency (1 rad per position): (1, 0) at position p -> (cos p, sin p)
    assert torch.allclose(rq[1], torch.tensor([math.cos(1.0), math.sin(1.0)]))
    assert torch.allclose(rq[3], torch.tensor([math.cos(3.0), math.sin(3.0)]))
    # second frequency of head_dim 4 turns 1/100 rad per position
    assert torch.allclose(rotary_tables(3, 4)[2, 1].angle(), torch.tensor(0.02))
    # dot products depend only on the offset between positions
    cis = rotary_tables(8, 16)
    torch.manual_seed(0)
    a, b = torch.randn(16), torch.randn(16)
    qa, kb = apply_rotary(a.expand(8, 16), cis), apply_rotary(b.expand(8, 16), cis)
    assert torch.allclose(qa[1] @ kb[3], qa[4] @ kb[6], atol=1e-5)
    assert not torch.allclose(qa[1] @ kb[3], qa[1] @ kb[4], atol=1e-3)


def test_attention_mask_empty_sequence_is_finite():
    s = _stack()
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[1, :2] = True
    m = attention_mask(mask)
    assert m.shape == (2, 1, 1, 4) and m[0].all()
    y = s(torch.randn(2, 4, 32), mask)
    assert torch.isfinite(y).all() and y[0].abs().max() == 0


def test_adaln_zero_conditioning():
    s = _stack(cond_dim=8)
    x, mask = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool)
    c1, c2 = torch.randn(2, 8), torch.randn(2, 8)
    # zero-initialised modulation: at init the stack ignores cond
    assert torch.equal(s(x, mask, cond=c1), s(x, mask, cond=c2))
    with torch.no_grad():
        for block in s.blocks:
            block.ada[1].weight.normal_(std=0.1)
    assert not torch.allclose(s(x, mask, cond=c1), s(x, mask, cond=c2))
    with pytest.raises(ValueError, match="cond"):
        s(x, mask)
    with pytest.raises(ValueError, match="cond"):
        _stack()(x, mask, cond=c1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        TransformerStack(30, 1, 4)
    with pytest.raises(ValueError, match="positions"):
        TransformerStack(32, 1, 4, positions="sinusoidal")
    s = _stack(positions="learned", max_len=4)
    with pytest.raises(ValueError, match="max_len=4"):
        s(torch.randn(1, 5, 32), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask has shape"):
        s(torch.randn(1, 3, 32), torch.ones(1, 4, dtype=torch.bool))


def test_parameter_count_pinned():
    # per block: qkv 32*96+96, out 32*32+32, ffn 32*64+64 + 64*32+32, 2 LayerNorms 4*32; final LN 64
    per_block = (32 * 96 + 96) + (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 4 * 32
    assert count_parameters(_stack()) == 2 * per_block + 64


def test_single_attention_implementation():
    """No second copy of attention: only blocks.py calls scaled_dot_product_attention or softmax-attends."""
    root = Path(__file__).resolve().parents[1] / "lsdkit"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "scaled_dot_product_attention" in p.read_text() or "MultiheadAttention" in p.read_text())
    assert users == ["models/blocks.py"]
