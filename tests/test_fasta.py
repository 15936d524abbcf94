"""FASTA reading/writing: compression round trips, multi-line records, and one error per malformation."""

import inspect
import os
import pickle
import stat

import pytest

from lsdkit.alphabet import ALPHABET, SequenceError
from lsdkit.data.fasta import FastaError, FastaRecord, read_fasta, write_fasta

MAGIC = {".gz": b"\x1f\x8b", ".xz": b"\xfd7zXZ", ".bz2": b"BZh"}


def _write(path, text):
    path.write_text(text)
    return path


def test_fixture_has_64_real_sequences(fixture_fasta):
    recs = list(read_fasta(fixture_fasta, validate=ALPHABET))
    assert len(recs) == 64 and all(50 <= len(r.sequence) <= 300 for r in recs)
    assert recs[0] == FastaRecord("A0A183", recs[0].sequence)
    assert recs[0].sequence.startswith("MSQQKQQSWKPPNVPKCSPP")
    assert sum("U" in r.sequence for r in recs) == 1


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".bz2"])
@pytest.mark.parametrize("line_width", [60, None, 7])
def test_round_trip_each_compression(tmp_path, fixture_fasta, suffix, line_width):
    recs = list(read_fasta(fixture_fasta))
    recs[1] = FastaRecord(recs[1].id, recs[1].sequence, "some description words")
    out = tmp_path / f"copy.fasta{suffix}"
    assert write_fasta(out, recs, line_width=line_width) == 64
    if suffix:
        assert out.read_bytes().startswith(MAGIC[suffix])
    back = list(read_fasta(out))
    assert back == recs and back[1].description == "some description words"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp left
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_line_width_layout(tmp_path):
    out = tmp_path / "w.fa"
    write_fasta(out, [("a", "ACDEFGHIK"), ("b", "MK", "desc here")], line_width=4)
    assert out.read_text() == ">a\nACDE\nFGHI\nK\n>b desc here\nMK\n"
    write_fasta(out, [("a", "ACDEFGHIK")], line_width=None)
    assert out.read_text() == ">a\nACDEFGHIK\n"


def test_multiline_records_descriptions_crlf_and_blank_lines(tmp_path):
    p = tmp_path / "m.fasta"
    p.write_bytes(b">sp|P1|X_HUMAN  first protein\r\nMKT\r\nAYI\r\n\r\n>P2\nmk\n\n")
    recs = list(read_fasta(p))
    assert recs == [FastaRecord("sp|P1|X_HUMAN", "MKTAYI", "first protein"), FastaRecord("P2", "mk")]
    rid, seq = recs[0]                                   # unpacks as (id, sequence)
    assert (rid, seq, recs[0].line, recs[1].line) == ("sp|P1|X_HUMAN", "MKTAYI", 1, 5)


def test_reading_is_lazy_and_records_pickle(fixture_fasta):
    it = read_fasta(fixture_fasta)
    assert inspect.isgenerator(it)
    first = next(it)
    assert first.id == "A0A183" and pickle.loads(pickle.dumps(first)) == first


@pytest.mark.parametrize("text, line, message", [
    ("MKT\n>a\nMKT\n", 1, "sequence line before the first '>' header"),
    (">a\nMKT\n>\nMKT\n", 3, "empty header"),
    (">a\n>b\nMKT\n", 1, "record 'a' has no sequence"),
    (">a\nMKT\n>b\n\n", 3, "record 'b' has no sequence"),
    (">a\nMKT\n>b\nAA\n>a desc\nMK\n", 5, "duplicate id 'a' (first seen on line 1)"),
    ("", None, "no FASTA records"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, line, message):
    p = _write(tmp_path / "bad.fasta", text)
    with pytest.raises(FastaError) as e:
        list(read_fasta(p))
    assert message in str(e.value)
    assert e.value.line == line and str(p) in str(e.value)
    if line is not None:
        assert f"bad.fasta:{line}:" in str(e.value)
    assert isinstance(e.value, SequenceError) and isinstance(e.value, ValueError)


def test_duplicates_allowed_when_not_unique(tmp_path):
    p = _write(tmp_path / "d.fasta", ">a\nMK\n>a\nMT\n")
    assert [r.sequence for r in read_fasta(p, unique_ids=False)] == ["MK", "MT"]


def test_validate_names_record_line_position_letter(tmp_path):
    p = _write(tmp_path / "v.fasta", ">ok\nMKT\n>bad one\nMKTA\nYI7AK\n")
    assert len(list(read_fasta(p))) == 2                  # no validation: the text is returned as is
    with pytest.raises(FastaError) as e:
        list(read_fasta(p, validate=ALPHABET))
    err = e.value
    assert (err.line, err.record, err.position, err.letter) == (5, "bad", 7, "7")
    assert "v.fasta:5: record 'bad': position 7: invalid residue '7'" in str(err)


def test_max_len(tmp_path):
    p = _write(tmp_path / "l.fasta", ">a\nMKT*\n>b\nMKTA\n")
    with pytest.raises(FastaError, match=r"l.fasta:3: record 'b': sequence has 4 residues, more than max_len=3"):
        list(read_fasta(p, max_len=3))


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(FastaError, match="no such FASTA file"):
        list(read_fasta(tmp_path / "absent.fasta"))
    p = tmp_path / "bin.fasta"
    p.write_bytes(b">a\nMK\n\xff\xfe\n")
    with pytest.raises(FastaError, match="not a UTF-8 text file"):
        list(read_fasta(p))


@pytest.mark.parametrize("records, message", [
    ([("a b", "MK")], "id 'a b' is empty or contains whitespace"),
    ([("", "MK")], "is empty or contains whitespace"),
    ([("a", "")], "record 'a': sequence is empty"),
])
def test_write_rejects_bad_records_and_keeps_old_file(tmp_path, records, message):
    out = _write(tmp_path / "keep.fasta", ">old\nMK\n")
    with pytest.raises(FastaError, match=message):
        write_fasta(out, [("fine", "MKT"), *records])
    assert out.read_text() == ">old\nMK\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.fasta"]


@pytest.mark.slow
def test_stream_full_swissprot(data_dir):
    """All 516,371 Swiss-Prot 2014 records stream (line by line) and pass the alphabet."""
    path = data_dir / "swissprot2014_go_metastudent" / "swissprot2014_sequences.fasta.xz"
    n = residues = 0
    for rec in read_fasta(path, validate=ALPHABET):
        n += 1
        residues += len(rec.sequence)
    assert (n, residues) == (516_371, 186_717_374)
