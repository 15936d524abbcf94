"""Data directory, source registry, `lsdkit data check|list|fetch` and the bundled sample."""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from lsdkit.data import manage, sources
from lsdkit.data.bundle import (GO_HEADER, SAMPLE_FASTA, SAMPLE_GO, SAMPLE_SOURCE, SampleConfig,
                                make_sample, select, selection_key)
from lsdkit.data.fasta import read_fasta
from lsdkit.data.sources import ENV_VAR, SOURCES, DataError

# ``data_dir`` (tests/conftest.py): the real data directory from LSDKIT_DATA, else the test is skipped


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def lsdkit_data(*argv: str) -> int:
    """Run ``lsdkit data ARGV...``."""
    from lsdkit.cli import main
    return main(["data", *argv])


def mirror(src_root: Path, dst_root: Path, names: list[str]) -> None:
    """A data directory of symlinks to ``src_root``'s files for the sources ``names``."""
    for name in names:
        s = SOURCES[name]
        (dst_root / s.folder).mkdir(parents=True)
        for f in s.files:
            (dst_root / s.folder / f).symlink_to(src_root / s.folder / f)


# -- data directory ---------------------------------------------------------------------------

def test_data_dir_explicit_env_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DataError, match=ENV_VAR):
        sources.data_dir()
    assert sources.configured_data_dir() is None
    assert sources.data_dir(tmp_path) == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert sources.data_dir() == tmp_path
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        sources.data_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        sources.data_dir(tmp_path / "file")


# -- registry -----------------------------------------------------------------------------------

def test_registry_entries_are_complete():
    assert len(SOURCES) == 13 and sum(s.bundled for s in SOURCES.values()) == 1
    for s in SOURCES.values():
        assert s.files and set(s.sizes) == set(s.files), s.name
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in s.files.values()), s.name
        assert all(n > 0 for n in s.sizes.values()), s.name
        assert s.licence and s.citation and s.obtain and s.description, s.name
        assert set(s.urls) <= set(s.files)
    assert SOURCES["swissprot2014_go_metastudent"].total_size == 55_994_560
    assert "apt-get download metastudent-data" in SOURCES["swissprot2014_go_metastudent"].obtain
    with pytest.raises(DataError, match="known: swissprot2014_go_metastudent"):
        sources.get_source("uniref50")
    with pytest.raises(ValueError, match="same files"):
        replace(SOURCES["flip"], sizes={})


def test_registry_covers_every_shared_file(data_dir):
    folders = {p.name for p in data_dir.iterdir() if p.is_dir()}
    assert folders == {s.folder for s in SOURCES.values() if not s.bundled}
    for s in SOURCES.values():
        if not s.bundled:
            on_disk = {p.name for p in (data_dir / s.folder).iterdir()} - {"PROVENANCE.md"}
            assert on_disk == set(s.files), s.name


def test_path_finds_files_and_names_what_is_missing(tmp_path, no_env):
    (tmp_path / "deeploc1").mkdir()
    with pytest.raises(DataError) as e:
        sources.path("deeploc1", "setHARD.fasta.xz", tmp_path)
    assert all(w in str(e.value) for w in ("'deeploc1'", "'setHARD.fasta.xz'", str(tmp_path), "fetch"))
    (tmp_path / "deeploc1" / "setHARD.fasta.xz").write_bytes(b"")      # path() checks presence only
    assert sources.path("deeploc1", "setHARD.fasta.xz", tmp_path) == tmp_path / "deeploc1" / "setHARD.fasta.xz"
    with pytest.raises(DataError, match="no file 'train.fasta'"):
        sources.path("deeploc1", "train.fasta", tmp_path)
    with pytest.raises(DataError, match=f"'deeploc1'.*{ENV_VAR}"):
        sources.path("deeploc1", "setHARD.fasta.xz")
    with pytest.raises(DataError, match="'deeploc1'.*does not exist"):
        sources.path(SOURCES["deeploc1"], "setHARD.fasta.xz", tmp_path / "nope")
    # the bundled source is found without any data directory, or when the given one lacks it
    assert sources.path(SAMPLE_SOURCE, SAMPLE_FASTA).parent.parent == sources.default_data_dir()
    assert sources.path(SAMPLE_SOURCE, SAMPLE_GO, tmp_path).is_file()


# -- check ---------------------------------------------------------------------------------------

def test_check_reports_every_shared_source_ok(data_dir, capsys):
    reports = manage.check(data_dir)
    assert [r.source.name for r in reports] == [s.name for s in SOURCES.values() if not s.bundled]
    assert all(r.ok for r in reports), [r.line() for r in reports if not r.ok]
    assert lsdkit_data("check", "--data", str(data_dir)) == 0
    out = capsys.readouterr().out
    assert "12 of 12 sources OK" in out and "flip" in out and "CORRUPT" not in out


def test_check_names_a_truncated_file_and_exits_1(tmp_path, data_dir, capsys):
    mirror(data_dir, tmp_path, ["flip", "deeploc1"])
    bad = tmp_path / "flip" / "gb1_splits.zip"
    bad.unlink()
    shutil.copyfile(data_dir / "flip" / "gb1_splits.zip", bad)
    with open(bad, "r+b") as fh:
        fh.truncate(1000)
    assert lsdkit_data("check", "--data", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "CORRUPT gb1_splits.zip (sha256 mismatch; size 1000 vs expected 1241473)" in out
    assert re.search(r"deeploc1\s+OK \(5 files", out) and "1 of 2 sources OK; failed: flip" in out
    assert lsdkit_data("check", "--data", str(tmp_path), "--quick") == 1
    assert "CORRUPT gb1_splits.zip (size 1000 vs expected 1241473)" in capsys.readouterr().out


def test_quick_check_misses_same_size_corruption_full_check_finds_it(tmp_path, data_dir):
    mirror(data_dir, tmp_path, ["flip"])
    f = tmp_path / "flip" / "gb1_5LDE_1.fasta"
    data = bytearray((data_dir / "flip" / f.name).read_bytes())
    data[-2] ^= 1                                     # flip one bit, keep the size
    f.unlink()
    f.write_bytes(bytes(data))
    assert manage.check(tmp_path, quick=True)[0].ok
    (problem,) = manage.check(tmp_path)[0].problems
    assert problem.sha256_mismatch and problem.size == problem.expected_size == 374


def test_check_names_a_missing_file_and_missing_sources(tmp_path, data_dir, capsys):
    mirror(data_dir, tmp_path, ["deeploc1"])
    (tmp_path / "deeploc1" / "deeploc_test_set.fasta.xz").unlink()
    assert lsdkit_data("check", "--data", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert re.search(r"deeploc1\s+MISSING deeploc_test_set.fasta.xz", out)
    assert "absent (not required): swissprot2014_go_metastudent" in out
    assert lsdkit_data("check", "--data", str(tmp_path), "--source", "deeploc2") == 1
    assert re.search(rf"deeploc2\s+MISSING folder {re.escape(str(tmp_path / 'deeploc2'))}", capsys.readouterr().out)
    assert lsdkit_data("check", "--data", str(tmp_path), "--all", "--quick") == 1
    out = capsys.readouterr().out
    assert "0 of 12 sources OK" in out and SAMPLE_SOURCE not in out


def test_check_usage_errors(tmp_path, no_env, capsys):
    assert lsdkit_data("check", "--data", str(tmp_path / "nope")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert lsdkit_data("check", "--data", str(tmp_path), "--source", "uniref50") == 2
    assert lsdkit_data("check", "--data", str(tmp_path)) == 1          # no known source there
    assert "no known source" in capsys.readouterr().out


# -- the bundled sample -----------------------------------------------------------------------

def test_bundled_directory_checks_ok_and_holds_the_documented_sample(no_env, capsys):
    root = sources.default_data_dir()
    assert lsdkit_data("check") == 0
    assert "checking the bundled one" in capsys.readouterr().out
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 2 * 2**20
    records = list(read_fasta(root / SAMPLE_SOURCE / SAMPLE_FASTA))
    ids = [r.id for r in records]
    assert len(records) == 3000 and ids == sorted(ids)
    assert sum(len(r.sequence) for r in records) == 784_177
    assert min(len(r.sequence) for r in records) >= 30 and max(len(r.sequence) for r in records) <= 512
    with lzma.open(root / SAMPLE_SOURCE / SAMPLE_GO, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == GO_HEADER and [l.split("\t")[0] for l in lines[1:]] == ids
    assert all(len(l.split("\t")) == 4 for l in lines[1:])


def test_select_is_the_documented_rule():
    recs = [(f"P{i:05d}", "M" + "A" * (i % 40)) for i in range(200)] + [("Q00001", "MAXA" * 10)]
    cfg = SampleConfig(n=20, min_len=30, max_len=35)
    chosen = select(recs, cfg)
    eligible = [a for a, s in recs if 30 <= len(s) <= 35 and "X" not in s]
    expected = sorted(sorted(eligible, key=lambda a: selection_key(a, cfg.salt))[:20])
    assert list(chosen) == expected and "Q00001" not in chosen
    assert select(reversed(recs), cfg) == chosen                       # input order does not matter
    assert selection_key("P12345", "s") == hashlib.sha256(b"s:P12345").hexdigest()
    with pytest.raises(ValueError, match="fewer than n=500"):
        select(recs, replace(cfg, n=500))


def test_make_sample_on_a_small_source(tmp_path):
    full = tmp_path / "full" / "swissprot2014_go_metastudent"
    full.mkdir(parents=True)
    seqs = {f"A{i:04d}": "ACDEFGHIKLMNPQRSTVWY"[i % 20] * (25 + i % 20) for i in range(60)}
    with lzma.open(full / "swissprot2014_sequences.fasta.xz", "wt") as fh:
        fh.writelines(f">{a}\n{s}\n" for a, s in seqs.items())
    with lzma.open(full / "swissprot2014_go_annotations.tsv.xz", "wt") as fh:
        fh.write(GO_HEADER + "\n" + "".join(f"{a}\tGO:{i:07d}\t\t\n" for i, a in enumerate(seqs)))
    out = make_sample(tmp_path / "full", tmp_path / "out", SampleConfig(n=10))
    again = make_sample(tmp_path / "full", tmp_path / "again", SampleConfig(n=10))
    assert all(out[f].read_bytes() == again[f].read_bytes() for f in out)   # byte-reproducible
    got = list(read_fasta(out[SAMPLE_FASTA]))
    assert len(got) == 10 and all(len(s) >= 30 and seqs[a] == s for a, s in got)
    assert (out[SAMPLE_FASTA].stat().st_mode & 0o777) == 0o644


@pytest.mark.slow
def test_bundled_sample_rebuilds_byte_identically(tmp_path, data_dir):
    written = make_sample(data_dir, tmp_path)
    bundled = sources.default_data_dir() / SAMPLE_SOURCE
    for name, p in written.items():
        assert p.read_bytes() == (bundled / name).read_bytes(), name


def test_corpus_fasta_prefers_the_full_corpus(tmp_path, no_env, monkeypatch):
    sample = sources.default_data_dir() / SAMPLE_SOURCE / SAMPLE_FASTA
    assert sources.corpus_fasta() == sample                            # fresh machine: no warning
    with pytest.warns(UserWarning, match="bundled sample"):
        assert sources.corpus_fasta(tmp_path) == sample
    full = tmp_path / "swissprot2014_go_metastudent" / "swissprot2014_sequences.fasta.xz"
    full.parent.mkdir()
    full.write_bytes(b"")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert sources.corpus_fasta() == full


# -- list and fetch ---------------------------------------------------------------------------

def test_list_prints_every_source_through_the_lsdkit_command(capsys):
    from lsdkit.cli import main

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SOURCES) and "CC BY-NC-ND 4.0" in out and "56.0 MB" in out


def test_fetch_downloads_verifies_and_writes_atomically(tmp_path, capsys):
    assert lsdkit_data("fetch", SAMPLE_SOURCE, "--to", str(tmp_path)) == 0   # file:// URLs
    assert manage.check(tmp_path)[0].ok
    logs: list[str] = []
    assert manage.fetch(SOURCES[SAMPLE_SOURCE], tmp_path, log=logs.append) == []
    assert len(logs) == 2 and all("already present (sha256 OK)" in line for line in logs)
    # a download that does not match the registry leaves nothing behind
    src = SOURCES[SAMPLE_SOURCE]
    wrong = replace(src, name="x", folder="x", urls={SAMPLE_FASTA: src.urls[SAMPLE_GO]},
                    files={SAMPLE_FASTA: src.files[SAMPLE_FASTA]}, sizes={SAMPLE_FASTA: 1})
    with pytest.raises(DataError, match="sha256 mismatch; size 37896 vs expected 1"):
        manage.fetch(wrong, tmp_path, log=lambda *_: None)
    assert not any((tmp_path / "x").iterdir())


def test_fetch_without_url_prints_the_recipe_and_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    assert lsdkit_data("fetch", "swissprot2014_go_metastudent", "--to", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "no direct download for 4 file(s)" in out and "apt-get download metastudent-data" in out
    assert not (tmp_path / "swissprot2014_go_metastudent").exists()
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)        # reach 127.0.0.1 directly (nothing listens on port 9)
    flip = SOURCES["flip"]
    unreachable = replace(flip, urls={f: "http://127.0.0.1:9/" + f for f in flip.files})
    monkeypatch.setitem(SOURCES, "flip", unreachable)
    assert lsdkit_data("fetch", "flip", "--to", str(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert "could not download http://127.0.0.1:9/bind_splits.zip" in err and "offline" in err
    assert "how to obtain flip by hand" in out
    assert not list((tmp_path / "flip").iterdir())
