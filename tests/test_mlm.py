"""MLM baseline: ESM masking statistics, latent API, metrics, same size as the autoencoder."""

import math

import pytest
import torch

from lsdkit.alphabet import FIRST_RESIDUE, MASK
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.blocks import count_parameters
from lsdkit.models.mlm import MLM, mask_tokens
from lsdkit.models.presets import autoencoder_config, mlm_config
from lsdkit.train import TrainConfig, Trainer

torch.set_num_threads(1)


def test_masking_80_10_10():
    torch.manual_seed(0)
    tokens = torch.randint(FIRST_RESIDUE, FIRST_RESIDUE + 20, (64, 500))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 400:] = False
    tokens = tokens.masked_fill(~mask, 0)
    inputs, selected = mask_tokens(tokens, mask)
    assert not selected[~mask].any() and torch.equal(inputs[~mask], tokens[~mask])
    assert torch.equal(inputs[~selected], tokens[~selected])
    n = selected.sum().item()
    assert n / mask.sum().item() == pytest.approx(0.15, abs=0.005)
    sel_in, sel_tok = inputs[selected], tokens[selected]
    masked = (sel_in == MASK).float().mean().item()
    kept = (sel_in == sel_tok).float().mean().item()    # 10 % kept + random draws equal to the truth
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 20, abs=0.01)
    assert ((sel_in >= FIRST_RESIDUE) & (sel_in < FIRST_RESIDUE + 20) | (sel_in == MASK)).all()


def test_every_sequence_gets_a_prediction_target():
    torch.manual_seed(0)
    tokens = torch.randint(FIRST_RESIDUE, FIRST_RESIDUE + 20, (50, 3))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[0, 1:] = False
    _, selected = mask_tokens(tokens, mask, rate=0.0)
    assert (selected.sum(1) == 1).all() and selected[0, 0]


def test_latent_api_and_metrics():
    torch.manual_seed(0)
    model = MLM(mlm_config("tiny")).train()
    tokens = torch.randint(4, 24, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 4:] = False
    tokens = tokens.masked_fill(~mask, 0)
    z = model.encode(tokens, mask)
    assert model.training and z.shape == (3, 10, 16) and z[2, 4:].abs().max() == 0
    assert torch.equal(z, model.encode(tokens, mask))
    assert torch.allclose(model.encode(tokens[2:, :4], mask[2:, :4]), z[2:, :4], atol=1e-5)
    loss, metrics = model.loss({"tokens": tokens, "mask": mask})
    # an untrained model is close to uniform over the 25 tokens
    assert metrics["perplexity"] == pytest.approx(math.exp(loss.item()))
    assert 15 < metrics["perplexity"] < 40
    assert set(model.validation_metrics({"tokens": tokens, "mask": mask})) == {"masked_acc", "masked_ce", "perplexity"}


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_same_size_as_the_autoencoder(preset):
    with torch.device("meta"):
        ae, mlm = Autoencoder(autoencoder_config(preset, "tn")), MLM(mlm_config(preset))
    assert mlm.config.n_layers == ae.config.n_enc_layers + ae.config.n_dec_layers
    assert count_parameters(mlm) == pytest.approx(count_parameters(ae), rel=0.01)


def test_mlm_learns_to_copy_context(tmp_path):
    """Each sequence repeats one residue: a masked residue is any unmasked neighbour's."""
    torch.manual_seed(0)
    tokens = torch.arange(FIRST_RESIDUE, FIRST_RESIDUE + 16)[:, None].repeat(1, 24)
    batch = {"tokens": tokens, "mask": torch.ones_like(tokens, dtype=torch.bool)}
    model = MLM(mlm_config("tiny"))
    cfg = TrainConfig(lr=3e-3, warmup_steps=5, max_steps=40, eval_every=0, ckpt_every=0, log_every=5,
                      progress=False, num_threads=1)
    last = Trainer(model, [batch], None, cfg, run_dir=tmp_path).fit()
    assert last["masked_acc"] > 0.95 and last["perplexity"] < 1.6
