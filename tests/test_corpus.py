"""The corpus: filters, stable split, leakage control, cropping, token-budget batches and loaders."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from lsdkit.alphabet import ALPHABET, PAD
from lsdkit.data.corpus import (Corpus, CorpusConfig, DataError, SequenceDataset, TokenBudgetBatchSampler,
                                collate, make_loader, pack_batches, pack_sorted, padding_fraction_of)
from lsdkit.data.fasta import FastaError, read_fasta, write_fasta
from lsdkit.data.splits import split_value

RES = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def synthetic(n, lo=30, hi=400, seed=0):
    """``n`` random records ``("ACC%05d", sequence)`` with lengths in [lo, hi)."""
    rng = np.random.default_rng(seed)
    return [(f"ACC{i:05d}", "".join(rng.choice(RES, rng.integers(lo, hi)))) for i in range(n)]


def split_of(corpus):
    valid = set(corpus.split("valid").record_ids)
    return {str(i): str(i) in valid for i in corpus.ids[corpus.index]}


# -- split ---------------------------------------------------------------------------------------
def test_split_value_is_pinned():
    assert split_value("P12345") == pytest.approx(0.7460135120443158, abs=1e-15)
    assert split_value("A0A183", "other") == pytest.approx(0.7601713841337797, abs=1e-15)


def test_split_stable_across_loads_and_record_order(fixture_fasta):
    cfg = CorpusConfig(fasta=str(fixture_fasta), val_fraction=0.3)
    a, b = Corpus.load(cfg), Corpus.load(cfg)
    recs = list(read_fasta(fixture_fasta))
    np.random.default_rng(1).shuffle(recs)
    c = Corpus.from_records(recs, cfg)
    assert split_of(a) == split_of(b) == split_of(c)
    assert 0 < a.stats["valid"] < 64 and a.stats["train"] + a.stats["valid"] == 64


def test_split_independent_of_hash_seed(fixture_fasta):
    code = ("from lsdkit.data.corpus import *; c = Corpus.load(CorpusConfig(fasta=%r, val_fraction=0.3));"
            "print(sorted(map(str, c.split('valid').record_ids)))" % str(fixture_fasta))
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout   # this process: random
    local = Corpus.load(CorpusConfig(fasta=str(fixture_fasta), val_fraction=0.3))
    assert other.strip() == str(sorted(map(str, local.split("valid").record_ids)))


def test_val_fraction_within_tolerance():
    corpus = Corpus.from_records(synthetic(1000, 30, 40), CorpusConfig(val_fraction=0.2))
    assert abs(corpus.stats["valid"] - 200) < 50                     # binomial sd = 12.6
    assert corpus.stats["valid"] == 211                              # pinned: blake2b("lsdkit\0ACC.....")
    assert Corpus.from_records(synthetic(50), CorpusConfig(val_fraction=0.0)).stats["valid"] == 0


# -- filters -------------------------------------------------------------------------------------
def test_min_len_filter_and_limit():
    recs = [("a", "M" * 29), ("b", "M" * 30), ("c", "K" * 31)]
    c = Corpus.from_records(recs, CorpusConfig(val_fraction=0.0))
    assert c.stats["too_short"] == 1 and list(c.ids[c.index]) == ["b", "c"]
    c = Corpus.from_records(recs, CorpusConfig(min_len=1, limit=2, val_fraction=0.0))
    assert list(c.ids[c.index]) == ["a", "b"] and c.stats["records"] == 2


def test_dedupe_keeps_first_accession():
    s, t = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVA"
    recs = [("x1", s), ("x2", t), ("x3", s.lower()), ("x4", s + "*")]
    c = Corpus.from_records(recs, CorpusConfig(val_fraction=0.0))
    assert list(c.ids[c.index]) == ["x1", "x2"] and c.stats["duplicates"] == 2
    c = Corpus.from_records(recs, CorpusConfig(val_fraction=0.0, dedupe=False))
    assert len(c) == 4 and c.stats["duplicates"] == 0


def test_exclude_ids_drop_accessions_and_their_sequences(tmp_path):
    recs = synthetic(20)
    recs.append(("COPY", recs[3][1]))                      # same protein as ACC00003, other name
    ids_file = tmp_path / "test_ids.txt"
    ids_file.write_text("# test set\nACC00003\n\nACC00007 extra columns\nNOT_IN_CORPUS\n")
    fasta_file = tmp_path / "test.fasta"
    write_fasta(fasta_file, [("sp|ACC00011|X_HUMAN", "MKT")])
    cfg = CorpusConfig(val_fraction=0.0, exclude_ids=(str(ids_file), str(fasta_file)))
    c = Corpus.from_records(recs, cfg, exclude=["ACC00012"])
    kept = set(c.ids[c.index])
    assert not kept & {"ACC00003", "ACC00007", "ACC00011", "ACC00012", "COPY"}
    assert len(kept) == 16
    assert (c.stats["excluded"], c.stats["excluded_same_sequence"], c.stats["exclude_ids_given"]) == (4, 1, 5)
    assert "4 excluded ids (+1 with an excluded sequence)" in c.summary()
    with pytest.raises(DataError, match="missing.txt"):
        Corpus.from_records(recs, CorpusConfig(exclude_ids=(str(tmp_path / "missing.txt"),)))


def test_invalid_letter_names_file_line_and_record(tmp_path):
    p = tmp_path / "c.fasta"
    write_fasta(p, synthetic(3) + [("BAD1", "MKT" * 12 + "1")], line_width=None)
    with pytest.raises(FastaError, match=r"c.fasta:7: record 'BAD1': position 37: invalid residue '1'"):
        Corpus.load(CorpusConfig(fasta=str(p)))


def test_missing_fasta_and_bad_config(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Corpus.load(CorpusConfig(fasta=str(tmp_path / "none.fasta")))
    with pytest.raises(ValueError, match="val_fraction"):
        CorpusConfig(val_fraction=1.0)


def test_cache_round_trip(fixture_fasta, tmp_path):
    cfg = CorpusConfig(fasta=str(fixture_fasta), cache_dir=str(tmp_path / "cache"), min_len=1)
    first = Corpus.load(cfg)
    (folder,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["ids.npy", "meta.json", "offsets.npy", "tokens.npy"]
    second = Corpus.load(cfg)
    assert np.array_equal(first.tokens, second.tokens) and list(first.ids) == list(second.ids)
    assert second.stats == first.stats and second.stats["records"] == 64
    os.utime(fixture_fasta, ns=(1, 1))                      # a changed file gets a new cache entry
    Corpus.load(cfg)
    assert len(list((tmp_path / "cache").iterdir())) == 2


# -- cropping ------------------------------------------------------------------------------------
def test_crops_deterministic_per_seed_epoch_and_contiguous():
    seq = "".join(np.random.default_rng(3).choice(RES, 300))
    ds = SequenceDataset.from_sequences(["long", "short"], [seq, "MKT"], max_len=50, seed=7)
    full = ALPHABET.encode(seq)
    assert ds.lengths.tolist() == [50, 3] and ds[1][0] == "short" and ds[1][1].tolist() == [14, 12, 20]
    crops = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        rid, toks = ds[0]
        start = ds.crop_start(0)
        assert rid == "long" and toks.dtype == np.int64 and np.array_equal(toks, full[start:start + 50])
        assert np.array_equal(toks, ds[0][1])                # same (seed, epoch, index) -> same crop
        crops.append(start)
    assert len(set(crops)) > 1                               # crops move between epochs
    again = SequenceDataset.from_sequences(["long", "short"], [seq, "MKT"], max_len=50, seed=7)
    again.set_epoch(2)
    assert again.crop_start(0) == crops[2]
    fixed = SequenceDataset.from_sequences(["long"], [seq], max_len=50, crop="fixed")
    starts = set()
    for epoch in range(3):
        fixed.set_epoch(epoch)
        starts.add(fixed.crop_start(0))
    assert len(starts) == 1
    first = SequenceDataset.from_sequences(["long"], [seq], max_len=50, crop="first")
    assert np.array_equal(first[0][1], full[:50])


def test_corpus_split_crops(fixture_fasta):
    c = Corpus.load(CorpusConfig(fasta=str(fixture_fasta), max_len=64, val_fraction=0.3))
    train, valid = c.split("train"), c.split("valid")
    assert (train.crop, valid.crop) == ("random", "fixed") and train.lengths.max() == 64
    assert len(train) + len(valid) == 64
    with pytest.raises(ValueError, match="split must be"):
        c.split("test")


# -- batching ------------------------------------------------------------------------------------
def lengths_like_swissprot(n=3000, seed=0):
    return np.minimum(np.random.default_rng(seed).lognormal(5.7, 0.6, n).astype(int) + 30, 512)


def test_sampler_budget_and_exact_cover():
    lengths = lengths_like_swissprot()
    s = TokenBudgetBatchSampler(lengths, max_tokens=4096, seed=3)
    orders = []
    for epoch in range(2):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        assert all(len(b) * lengths[b].max() <= 4096 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        orders.append(batches)
    assert orders[0] != orders[1]
    s2 = TokenBudgetBatchSampler(lengths, max_tokens=4096, seed=3)
    s2.set_epoch(1)
    assert list(s2) == orders[1]                              # deterministic given (seed, epoch)
    assert s.padding_fraction() < 0.05
    with pytest.raises(ValueError, match="max_tokens=100 is smaller than sequence"):
        TokenBudgetBatchSampler(lengths, max_tokens=100)


def test_pack_sorted_matches_greedy_packing():
    lengths = lengths_like_swissprot(800, seed=5)
    order = np.argsort(-lengths, kind="stable")
    fast, slow = pack_sorted(order, lengths, 3000), pack_batches(order, lengths, 3000)
    assert [b.tolist() for b in fast] == [b.tolist() for b in slow]
    assert padding_fraction_of([np.array([0, 1])], np.array([4, 2])) == 0.25    # 2 of 8 slots


def test_sampler_no_shuffle_and_skip():
    lengths = lengths_like_swissprot(500)
    s = TokenBudgetBatchSampler(lengths, 2048, shuffle=False)
    batches = list(s)
    assert [lengths[b].max() for b in batches] == sorted((lengths[b].max() for b in batches), reverse=True)
    s.set_epoch(5, skip=3)
    assert list(s) == batches[3:]


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_shards(drop_last):
    lengths = lengths_like_swissprot(1000)
    full = TokenBudgetBatchSampler(lengths, 2048, seed=1)
    n = len(full)
    R = next(r for r in (3, 4, 5, 7) if n % r)                # a case that needs padding or dropping
    shards = [list(TokenBudgetBatchSampler(lengths, 2048, seed=1, num_replicas=R, rank=r,
                                           drop_last=drop_last)) for r in range(R)]
    assert len({len(sh) for sh in shards}) == 1               # every rank gets the same count
    seen = [i for sh in shards for b in sh for i in b]
    if drop_last:
        assert len(seen) == len(set(seen)) and len(shards[0]) == n // R       # disjoint
        assert len(seen) == sum(len(b) for b in list(full)[: n - n % R])
    else:
        assert set(seen) == set(range(1000)) and len(shards[0]) == n // R + 1  # covers all
        repeats = sum(len(b) for b in list(full)[: R - n % R])
        assert len(seen) == 1000 + repeats                     # only the padding batches repeat


def test_collate_format():
    batch = collate([("a", np.array([14, 12, 20])), ("b", np.array([4]))])
    assert batch["tokens"].dtype == torch.long and batch["mask"].dtype == torch.bool
    assert batch["tokens"].tolist() == [[14, 12, 20], [4, PAD, PAD]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["ids"] == ["a", "b"]


def test_dataloader_workers_match_single_process(fixture_fasta):
    train = Corpus.load(CorpusConfig(fasta=str(fixture_fasta), max_len=64, val_fraction=0.0)).split("train")
    assert pickle.loads(pickle.dumps(train))[5][1].tolist() == train[5][1].tolist()
    runs = []
    for workers in (0, 2):
        loader = make_loader(train, max_tokens=512, shuffle=True, seed=4, num_workers=workers)
        loader.set_epoch(1)
        runs.append([(b["ids"], b["tokens"]) for b in loader])
    (ids0, tok0), (ids2, tok2) = zip(*runs[0]), zip(*runs[1])
    assert ids0 == ids2 and all(torch.equal(x, y) for x, y in zip(tok0, tok2))
    assert sum(len(i) for i in ids0) == 64


@pytest.mark.slow
def test_padding_on_real_swissprot(data_dir):
    """Length bucketing keeps padding under 10 % on Swiss-Prot at max_tokens=8192, max_len=512."""
    corpus = Corpus.load(CorpusConfig(max_len=512), data_dir)
    assert corpus.stats["records"] == 516_371
    sampler = TokenBudgetBatchSampler(corpus.split("train").lengths, max_tokens=8192, seed=0)
    assert sampler.padding_fraction() < 0.10
