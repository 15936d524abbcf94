"""The command line: every bad argument exits 2 with one line naming the flag, before any work."""

from __future__ import annotations

import re

import pytest
import torch

from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import save_model
from lsdkit.cli import main
from lsdkit.errors import LsdkitError
from lsdkit.models.autoencoder import Autoencoder
from lsdkit.models.diffusion import LatentDiffusion
from lsdkit.models.presets import autoencoder_config

from conftest import SWISSPROT64

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny (untrained) diffusion checkpoint: enough to parse and validate against."""
    torch.manual_seed(0)
    m = LatentDiffusion.from_encoder(Autoencoder(autoencoder_config("tiny", "tn")), preset="tiny")
    toks, mask = ALPHABET.batch_encode(["MKTAYIAKQRQISFVKSHFSRQ", "GGSGGSPLE"])
    m.estimate_latent_stats([{"tokens": torch.from_numpy(toks), "mask": torch.from_numpy(mask)}])
    return save_model(tmp_path_factory.mktemp("cli") / "diff", m)


TRAIN = ["train", "autoencoder", "--preset", "tiny", "--data", str(SWISSPROT64), "--out", "{tmp}/run"]
EMBED = ["embed", "--checkpoint", "{ckpt}", "--input", str(SWISSPROT64), "--out", "{tmp}/e.npz"]
SAMPLE = ["sample", "--checkpoint", "{ckpt}", "--length", "10", "--out", "{tmp}/s.fasta"]
SWEEP = ["sweep", "--checkpoint", "{ckpt}", "--tasks", "go_mf_sp14", "--out", "{tmp}/s.csv"]

# (argv, the flag the message must name)
BAD = [
    (TRAIN + ["--max-steps", "0"], "--max-steps"),
    (TRAIN + ["--max-steps", "-5"], "--max-steps"),
    (TRAIN + ["--lr", "-1"], "--lr"),
    (TRAIN + ["--lr", "0"], "--lr"),
    (TRAIN + ["--limit", "0"], "--limit"),
    (TRAIN + ["--threads", "0"], "--threads"),
    (TRAIN + ["--ckpt-every", "0"], "--ckpt-every"),
    (TRAIN + ["--batch-tokens", "10"], "--batch-tokens"),
    (TRAIN + ["--max-minutes", "0"], "--max-minutes"),
    (TRAIN + ["--warmup-steps", "-1"], "--warmup-steps"),
    (TRAIN + ["--device", "cuda"], "--device"),
    (TRAIN + ["--precision", "fp16"], "--precision"),
    (["train", "mlm", "--out", "{tmp}/m", "--lr", "nan-ish"], "--lr"),
    (["train", "diffusion", "--latents", "{ckpt}", "--out", "{tmp}/d", "--max-steps", "0"], "--max-steps"),
    (["train", "diffusion", "--latents", "{ckpt}", "--out", "{tmp}/d", "--latent-cache", "{tmp}/c",
      "--no-latent-cache"], "--latent-cache"),
    (TRAIN + ["--resume", "--overwrite"], "--overwrite"),
    (EMBED + ["--max-len", "100000"], "--max-len"),          # beyond the model's trained max_len (128)
    (SAMPLE[:4] + ["100000"] + SAMPLE[5:], "--length"),      # the same for sampling
    (EMBED + ["--max-len", "0"], "--max-len"),
    (EMBED + ["--max-len", "-5"], "--max-len"),
    (EMBED + ["--t", "1.5"], "--t"),
    (EMBED + ["--t", "a,b"], "--t"),
    (EMBED + ["--k", "0"], "--k"),
    (EMBED + ["--layer", "x"], "--layer"),
    (EMBED + ["--t", "0.5", "--layer", "99"], "--layer"),
    (EMBED + ["--device", "cuda"], "--device"),
    (SAMPLE + ["--n", "0"], "--n"),
    (SAMPLE + ["--steps", "0"], "--steps"),
    (SAMPLE + ["--device", "cuda:0"], "--device"),
    (SWEEP + ["--t", "1.5"], "--t"),
    (SWEEP + ["--t", "-0.1,0.5"], "--t"),
    (SWEEP + ["--layers", "99"], "--layers"),
    (SWEEP + ["--max-train", "0"], "--max-train"),
    (SWEEP + ["--precision", "fp16"], "--precision"),
    (["probe", "--features", "near", "--task", "deeploc10", "--floor-out", "{tmp}/f.csv"], "--floor-out"),
    (["probe", "--features", "composition,nope", "--task", "deeploc10"], "--features"),
    (["probe", "--features", "composition", "--task", "deeploc10", "--max-valid", "0"], "--max-valid"),
    (["reproduce", "--out", "{tmp}/r", "--pretrained", "nera"], "--pretrained"),
    (["sweep", "--checkpoint", "{ckpt}", "--tasks", "bogus", "--out", "{tmp}/s.csv"], "--tasks"),
    (["probe", "--features", "composition", "--task", "bogus"], "--task"),
    (["probe", "--features", "composition", "--task", "go_mf_sp14", "--max-train", "0"], "--max-train"),
    (["probe", "--features", "nope", "--task", "go_mf_sp14"], "--features"),
    (["reproduce", "--out", "{tmp}/r", "--tasks", "bogus"], "--tasks"),
    (["reproduce", "--out", "{tmp}/r", "--jobs", "0"], "--jobs"),
    (["reproduce", "--out", "{tmp}/r", "--encoder-steps", "0"], "--encoder-steps"),
    (["reproduce", "--out", "{tmp}/r", "--max-minutes", "-1"], "--max-minutes"),
    (["notebooks", "run", "--out", "{tmp}/n", "--cell-timeout", "0"], "--cell-timeout"),
    (["data", "make-sample", "--to", "{tmp}/x", "--n", "0"], "--n"),
]


def _ids(case):
    argv, flag = case
    return f"{argv[0]}{'-' + argv[1] if argv[1][0] != '-' else ''}:{flag}={argv[-1]}"


@pytest.mark.parametrize("argv,flag", BAD, ids=[_ids(c) for c in BAD])
def test_bad_argument_is_one_line_naming_the_flag(argv, flag, ckpt, tmp_path, capsys):
    if "cuda" in argv and not NO_CUDA:
        pytest.skip("this machine has CUDA")
    argv = [a.format(tmp=tmp_path, ckpt=ckpt) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lsdkit: error: ") and flag in lines[0], lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()      # no work was started


def test_user_errors_share_one_base_and_bugs_keep_their_traceback(monkeypatch, capsys):
    from lsdkit.alphabet import SequenceError
    from lsdkit.baselines import UniRepUnavailable
    from lsdkit.checkpoint import CheckpointError
    from lsdkit.data.fasta import FastaError
    from lsdkit.data.sources import DataError
    from lsdkit.data.tasks import TaskError
    from lsdkit.embed import InputError
    from lsdkit.notebooks import NotebookError
    from lsdkit.train import TrainingDiverged
    for cls in (SequenceError, CheckpointError, DataError, FastaError, TaskError, InputError, UniRepUnavailable,
                NotebookError, TrainingDiverged):
        assert issubclass(cls, LsdkitError), cls

    def boom(args):
        raise KeyError("a bug")
    import lsdkit.cli.train as train_cmd
    monkeypatch.setattr(train_cmd, "_presets", boom)
    with pytest.raises(KeyError):
        main(["presets"])


def test_a_library_error_from_inside_a_command_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">p1\nMKV\n>p2\nMK1V\n")
    torch.manual_seed(0)
    ae = save_model(tmp_path / "ae", Autoencoder(autoencoder_config("tiny", "tn")))
    assert main(["embed", "--checkpoint", str(ae), "--input", str(bad), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "p2" in err[0], err


def test_sweep_of_a_registered_task_with_caps_and_the_latent_against_the_chosen_key(ckpt, tmp_path, capsys,
                                                                                      monkeypatch):
    import pandas as pd
    monkeypatch.delenv("LSDKIT_DATA", raising=False)                    # the bundled go_mf_sp14 sample
    out = tmp_path / "s.csv"
    argv = ["sweep", "--checkpoint", str(ckpt), "--tasks", "go_mf_sp14", "--t", "0,0.5", "--layers", "-1",
            "--max-train", "60", "--max-valid", "30", "--precision", "bf16", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    df = pd.read_csv(out)
    row = next(line for line in printed.splitlines() if line.startswith("| go_mf_sp14 | fmax |"))
    latent, chosen, diff = [c.strip() for c in row.split("|")[3:6]]
    test = df[(df["split"] == "test") & df["selected"] & (df["metric"] == "fmax")].set_index("key")["value"]
    assert latent.startswith(f"{test['latent']:.3f} [") and re.search(r"\(t0(\.5)?_layer3\)$", chosen)
    key = chosen.rsplit("(", 1)[1][:-1]
    assert diff.startswith(f"{test[key] - test['latent']:+.3f} [")


def test_sweep_takes_a_task_file(ckpt, tmp_path, capsys):
    import pandas as pd
    rows = "".join(f"P{i},{'MKV' + 'ACDEFGHIKLMNPQRSTVWY'[i % 20] * (5 + i % 7) + ('KKKRRR' if i % 2 else 'DDDEEE')},"
                   f"{i % 2}\n" for i in range(80))
    (tmp_path / "mine.tsv").write_text(("accession,seq,target\n" + rows + "P0,MKV,1\n").replace(",", "\t"))
    argv = ["sweep", "--checkpoint", str(ckpt), "--tasks", f"{tmp_path / 'mine.tsv'}", "--t", "0,0.5",
            "--layers", "-1", "--out", str(tmp_path / "s.csv")]
    assert main(argv) == 2                                              # P0 twice: one line, nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mine.tsv:82: duplicate id 'P0' (first at line 2)" in err[0]
    assert not (tmp_path / "s.csv").exists()
    assert main(argv + ["--on-bad", "skip", "--kind", "binary"]) == 0
    err = capsys.readouterr().err
    assert "kind binary (given), 2 classes" in err and "dropped 1 bad record(s) (1 duplicate id)" in err
    df = pd.read_csv(tmp_path / "s.csv")
    assert set(df["task"]) == {"mine"} and set(df["key"]) == {"latent", "t0_layer3", "t0.5_layer3"}
    assert {"accuracy", "auroc", "mcc"} <= set(df.loc[df["split"] == "test", "metric"])
