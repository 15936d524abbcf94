"""DDP: `torchrun --nproc_per_node 2` (gloo, CPU) gives the same training as one process.

Each global batch has 8 equal-length sequences; rank r trains on rows 4r..4r+3. With equal token
counts per rank, DDP's gradient average equals the single-process gradient of the global batch, so
the loss curves and final weights must agree to float tolerance. The model is deterministic
(no sampling, no noise mask, no TokenNorm batch statistics) so RNG streams play no role.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from lsdkit.checkpoint import load_model
from lsdkit.train import Trainer

torch.set_num_threads(1)

WORKER = textwrap.dedent('''
    import os, sys, torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import global_batches, make_model, train_config
    from lsdkit.train import Trainer, distributed_context
    torch.set_num_threads(1)
    rank, world = distributed_context()
    shard = [{k: v[4 * rank: 4 * rank + 4] for k, v in b.items()} for b in global_batches()]
    Trainer(make_model(), shard, None, train_config(), run_dir=sys.argv[1]).fit()
''')

COMMON = textwrap.dedent('''
    import torch
    from lsdkit.models.autoencoder import Autoencoder
    from lsdkit.models.presets import autoencoder_config
    from lsdkit.train import TrainConfig, seed_everything

    def global_batches():
        g = torch.Generator().manual_seed(0)
        return [{"tokens": torch.randint(4, 24, (8, 24), generator=g),
                 "mask": torch.ones(8, 24, dtype=torch.bool)} for _ in range(3)]

    def make_model():
        seed_everything(0)
        return Autoencoder(autoencoder_config("tiny", "none", variational=False))

    def train_config():
        # fp32: in bf16 the 4-row and 8-row matmuls round differently (curves agree to ~1e-4, not 1e-5)
        return TrainConfig(lr=3e-3, warmup_steps=2, max_steps=6, eval_every=0, ckpt_every=0,
                           log_every=1, progress=False, num_threads=1, precision="fp32")
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    (tmp_path / "common.py").write_text(COMMON)
    (tmp_path / "worker.py").write_text(WORKER)
    sys.path.insert(0, str(tmp_path))
    try:
        from common import global_batches, make_model, train_config
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("common", None)

    single = tmp_path / "single"
    Trainer(make_model(), global_batches(), None, train_config(), run_dir=single).fit()

    ddp = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(tmp_path / "worker.py"), str(ddp)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = _losses(single), _losses(ddp)
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-5)
    assert a[-1] < a[0]                                 # it actually trained
    m1, m2 = load_model(single), load_model(ddp)
    for (k, p1), p2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(p1, p2, atol=1e-5), k
    state = json.loads((ddp / "step_000006" / "trainer_state.json").read_text())
    assert len(state["state"]["__dict__"]["rng"]) == 2   # one RNG state per rank

