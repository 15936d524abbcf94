"""The one CSV/TSV reader (lsdkit.data.tables), FASTA from a handle, and the other one-home helpers."""

import dataclasses
import io
import lzma
import zipfile

import pytest
import torch

from lsdkit.data.fasta import read_fasta
from lsdkit.data.sources import DataError
from lsdkit.data.tables import read_table
from lsdkit.data.tasks import TaskError
from lsdkit.device import resolve_device
from lsdkit.errors import ArgumentError, LsdkitError


def test_delimiter_from_name_or_header_and_physical_line_numbers(tmp_path):
    (tmp_path / "a.csv").write_text("id,seq\nr1,MK\n\nr2,AC\n")
    t = read_table(tmp_path / "a.csv")
    assert t.header == ["id", "seq"] and t.rows == [(2, ["r1", "MK"]), (4, ["r2", "AC"])]
    assert t.records() == [{"id": "r1", "seq": "MK"}, {"id": "r2", "seq": "AC"}]
    (tmp_path / "b.txt").write_text("id\tseq\nr1\tMK\n")
    assert read_table(tmp_path / "b.txt").rows == [(2, ["r1", "MK"])]
    with lzma.open(tmp_path / "c.tsv.xz", "wt") as f:
        f.write("\ufeffid\tseq\nr1\t MK \n")
    t = read_table(tmp_path / "c.tsv.xz")
    assert t.header == ["id", "seq"] and t.rows == [(2, ["r1", " MK "])]      # cells as written
    (tmp_path / "d.csv").write_text("a\tb\n1\t2\n")                          # given delimiter wins
    assert read_table(tmp_path / "d.csv", "\t").records() == [{"a": "1", "b": "2"}]


def test_headerless_columns_and_open_handles(tmp_path):
    (tmp_path / "p.tsv").write_text("P1\tMKV\nP2\tAC\n")
    assert read_table(tmp_path / "p.tsv", columns=("protein", "sequence")).records() == [
        {"protein": "P1", "sequence": "MKV"}, {"protein": "P2", "sequence": "AC"}]
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("splits/x.csv", "id,seq\nr1,MK\n")
        zf.writestr("splits/x.fasta", ">r1 SET=test\nMK\nV\n")
    with zipfile.ZipFile(tmp_path / "z.zip") as zf:
        with io.TextIOWrapper(zf.open("splits/x.csv"), encoding="utf-8") as fh:
            assert read_table(fh).records() == [{"id": "r1", "seq": "MK"}]     # delimiter from the name
        with io.TextIOWrapper(zf.open("splits/x.fasta"), encoding="utf-8") as fh:
            (rec,) = read_fasta(fh)
    assert (rec.id, rec.sequence, rec.description) == ("r1", "MKV", "SET=test")


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("id,seq\nr1,MK,extra\n", ":2: 3 fields, the header has 2"),
])
def test_errors_name_the_file_and_use_the_callers_class(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as e:
        read_table(path)
    assert str(path) in str(e.value) and isinstance(e.value, LsdkitError)
    with pytest.raises(TaskError, match=message):
        read_table(path, error=TaskError)
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    path.write_bytes(b"id,seq\nr1,\xff\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_table(path)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="device 'cuda': CUDA is not available on this machine"):
            resolve_device("cuda")
    with pytest.raises(ArgumentError, match="'gpu'"):
        resolve_device("gpu")


def test_model_configs_share_transformer_size_and_stay_flat():
    from lsdkit.checkpoint import config_to_dict
    from lsdkit.models.autoencoder import AutoencoderConfig
    from lsdkit.models.blocks import TransformerSize
    from lsdkit.models.diffusion import DiffusionConfig
    from lsdkit.models.mlm import MLMConfig

    shared = {f.name for f in dataclasses.fields(TransformerSize)}
    assert shared == {"d_model", "n_heads", "ffn_mult", "dropout", "positions", "max_len"}
    for cls in (AutoencoderConfig, MLMConfig, DiffusionConfig):
        assert issubclass(cls, TransformerSize)
        assert shared <= set(config_to_dict(cls()))            # top-level keys, as in old checkpoints


def test_every_user_facing_error_is_an_lsdkit_error():
    from lsdkit.alphabet import SequenceError
    from lsdkit.baselines import UniRepUnavailable
    from lsdkit.checkpoint import CheckpointError
    from lsdkit.data.fasta import FastaError
    from lsdkit.embed import InputError
    from lsdkit.notebooks import NotebookError
    from lsdkit.train import TrainingDiverged

    for cls, second in ((SequenceError, ValueError), (CheckpointError, RuntimeError), (DataError, RuntimeError),
                        (FastaError, ValueError), (TaskError, RuntimeError), (InputError, ValueError),
                        (UniRepUnavailable, RuntimeError), (NotebookError, RuntimeError),
                        (TrainingDiverged, RuntimeError)):
        assert issubclass(cls, LsdkitError) and issubclass(cls, second), cls
