"""Checkpoints: round trip, no pickle, atomic step directories, refusing bad checkpoints."""

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from lsdkit.checkpoint import (CheckpointError, config_differences, flatten_state, latest_checkpoint,
                               load_model, load_trainer_state, load_weights, read_config, register_kind,
                               save_checkpoint, save_model, unflatten_state)
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.mlm import MLM
from lsdkit.models.presets import autoencoder_config, mlm_config

torch.set_num_threads(1)


def _ae(**kw):
    torch.manual_seed(0)
    return Autoencoder(autoencoder_config("tiny", "tn", **kw)).eval()


def _batch():
    torch.manual_seed(1)
    tokens = torch.randint(4, 24, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    return tokens.masked_fill(~mask, 0), mask


def test_model_round_trip_and_files(tmp_path):
    model = _ae()
    model.bottleneck.running_mean.normal_()          # buffers travel too
    path = save_model(tmp_path / "ae", model)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    meta = read_config(path)
    assert meta["kind"] == "autoencoder" and meta["config"]["d_z"] == 16 and meta["format"] == 1
    loaded = load_model(path, expect_kind="autoencoder", expect_config=model.config)
    tokens, mask = _batch()
    assert torch.equal(model.encode(tokens, mask), loaded.encode(tokens, mask))
    assert not loaded.training
    # no leftover temporary directories
    assert [p.name for p in tmp_path.iterdir()] == ["ae"]


def test_refuses_other_kind_and_other_config(tmp_path):
    path = save_model(tmp_path / "ae", _ae())
    with pytest.raises(CheckpointError, match="holds a 'autoencoder' model, not 'mlm'"):
        load_model(path, expect_kind="mlm")
    with pytest.raises(CheckpointError, match="checkpoint has d_z=16 but the model asked for d_z=32"):
        load_model(path, expect_config=autoencoder_config("tiny", "tn", d_z=32))
    with pytest.raises(CheckpointError, match="bottleneck=tn but the model asked for bottleneck=nm"):
        load_model(path, expect_config={"bottleneck": "nm"})
    with pytest.raises(CheckpointError, match="d_z=16 but the model asked for d_z=8"):
        load_weights(Autoencoder(autoencoder_config("tiny", "tn", d_z=8)), path)
    with pytest.raises(CheckpointError, match="holds a 'autoencoder' model, not 'mlm'"):
        load_weights(MLM(mlm_config("tiny")), path)


def test_refuses_corrupted_files(tmp_path):
    path = save_model(tmp_path / "ae", _ae())
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF                                 # one flipped byte in the tensor data
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: corrupted \\(sha256"):
        load_model(path)
    # a truncated file with the checksum removed: the safetensors reader still refuses it
    weights.write_bytes(bytes(data[:100]))
    meta = json.loads((path / "config.json").read_text())
    del meta["sha256"]["model.safetensors"]
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="corrupted or unreadable safetensors"):
        load_model(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: corrupted JSON"):
        load_model(path)
    with pytest.raises(CheckpointError, match="neither a checkpoint directory"):
        load_model(tmp_path / "nothing")


def test_save_pretrained_from_pretrained_round_trip(tmp_path):
    from lsdkit.models.diffusion import LatentDiffusion

    tokens, mask = _batch()
    ae = _ae()
    ae.bottleneck.running_mean.normal_()
    torch.manual_seed(2)
    mlm = MLM(mlm_config("tiny")).eval()
    torch.manual_seed(3)
    diff = LatentDiffusion.from_encoder(ae, preset="tiny").eval()
    diff.estimate_latent_stats([{"tokens": tokens, "mask": mask}])
    for model in (ae, mlm, diff):
        path = model.save_pretrained(tmp_path / model.kind)
        assert read_config(path)["kind"] == model.kind            # the one checkpoint format
        loaded = type(model).from_pretrained(path)
        assert type(loaded) is type(model) and not loaded.training and loaded.config == model.config
        if model is diff:
            z_t, t = torch.randn(2, 10, diff.config.d_z), torch.tensor([0.3, 0.7])
            want, got = model.predict(z_t, t, mask), loaded.predict(z_t, t, mask)
            assert all(torch.equal(a, b) for a, b in zip(want, got))
            assert torch.equal(model.clean_latents(tokens, mask), loaded.clean_latents(tokens, mask))
        else:
            assert torch.equal(model.encode(tokens, mask), loaded.encode(tokens, mask))
    assert torch.equal(load_model(tmp_path / "mlm").encode(tokens, mask), mlm.encode(tokens, mask))


def test_from_pretrained_refuses_another_kind(tmp_path):
    from lsdkit.models.diffusion import LatentDiffusion

    path = MLM(mlm_config("tiny")).save_pretrained(tmp_path / "mlm")
    with pytest.raises(CheckpointError, match="checkpoint holds a 'mlm' model, not 'autoencoder'"):
        Autoencoder.from_pretrained(path)
    with pytest.raises(CheckpointError, match="holds a 'mlm' model, not 'diffusion'"):
        LatentDiffusion.from_pretrained(path)
    assert type(MLM.from_pretrained(path)) is MLM


def test_refuses_unknown_kind_and_unknown_field(tmp_path):
    path = save_model(tmp_path / "ae", _ae())
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["flux_capacitor"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown field\\(s\\) \\['flux_capacitor'\\]"):
        load_model(path)
    meta["kind"] = "teleporter"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown model kind 'teleporter'"):
        load_model(path)


def test_register_a_new_kind(tmp_path):
    @dataclass
    class ToyConfig:
        width: int = 3
        scales: tuple[float, float] = (1.0, 2.0)

    class Toy(nn.Module):
        kind = "toy"

        def __init__(self, config):
            super().__init__()
            self.config = config
            self.lin = nn.Linear(config.width, 1)

    register_kind("toy", ToyConfig, Toy)
    model = Toy(ToyConfig(width=5, scales=(0.5, 4.0)))
    loaded = load_model(save_model(tmp_path / "toy", model), expect_kind="toy")
    assert loaded.config == model.config              # tuples come back as tuples
    assert torch.equal(loaded.lin.weight, model.lin.weight)


def test_flatten_optimizer_state_round_trip():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    tensors, structure = flatten_state(opt.state_dict())
    json.dumps(structure)                             # pure JSON
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    opt2 = torch.optim.AdamW(nn.Linear(4, 3).parameters())
    opt2.load_state_dict(unflatten_state(json.loads(json.dumps(structure)), tensors))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["betas"] == (0.8, 0.9)
    for k in s1["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(s1["state"][k][name], s2["state"][k][name])
    with pytest.raises(CheckpointError, match="without pickle"):
        flatten_state({"f": object()})


def test_training_checkpoints_latest_pointer_and_keep(tmp_path):
    model = _ae()
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, model, {"step": step, "x": torch.arange(3), "t": (1, 2)}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000020", "step_000030"]
    assert (tmp_path / "latest").read_text().strip() == "step_000030"
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000030"
    state = load_trainer_state(tmp_path)
    assert state["step"] == 30 and torch.equal(state["x"], torch.arange(3)) and state["t"] == (1, 2)
    # no pickle anywhere: only JSON, safetensors and the text pointer
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors", ""}
    assert not any(p.read_bytes()[:1] == b"\x80" for p in files)
    # a run directory resolves through `latest` for load_model too
    assert isinstance(load_model(tmp_path, expect_kind="autoencoder"), Autoencoder)
    # a corrupted trainer state is refused
    ts = tmp_path / "step_000030" / "trainer_state.safetensors"
    ts.write_bytes(ts.read_bytes()[:-3] + b"abc")
    with pytest.raises(CheckpointError, match="trainer_state.safetensors: corrupted"):
        load_trainer_state(tmp_path)


def test_config_differences_message():
    assert config_differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}}) == [
        "checkpoint has b.c=2 but the model asked for b.c=3"]
