"""Task registry, bring-your-own tasks and their errors, and the real tasks' split sizes."""

import os
from pathlib import Path

import numpy as np
import pytest

from lsdkit.data.splits import hash_split, split_value
from lsdkit.data.tasks import (DEFAULT_METRIC, LABEL_KINDS, TASKS, Record, TaskError, get_task,
                               infer_label_kind, load_custom_task, load_task, task_folds)

DATA = os.environ.get("LSDKIT_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="LSDKIT_DATA is not set (real task data)")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --- helpers and registry --------------------------------------------------------------------
def test_split_value_and_hash_split_are_fixed():
    assert split_value("P12345") == split_value("P12345")
    assert split_value("P12345") != split_value("P12345", salt="other")
    recs = [Record(f"r{i}", "AC", 0) for i in range(2000)]
    rest, carved = hash_split(recs, 0.1, "s")
    assert len(rest) + len(carved) == 2000 and 150 < len(carved) < 250
    assert [r.id for r in carved] == [r.id for r in hash_split(recs, 0.1, "s")[1]]


def test_registry_entries_are_consistent():
    for name, spec in TASKS.items():
        assert spec.name == name and spec.kind in LABEL_KINDS
        assert spec.metric in {"accuracy", "spearman", "fmax"} and spec.protocol and spec.description
    assert get_task("ppi_yeast").n_folds == 5 and task_folds("ppi_yeast") == [0, 1, 2, 3, 4]
    assert task_folds("deeploc10") == [None]
    with pytest.raises(TaskError, match="unknown task 'nope'.*deeploc10"):
        get_task("nope")


def test_fold_arguments_are_checked(tmp_path):
    with pytest.raises(TaskError, match="5-fold cross-validation: pass fold=0..4"):
        load_task("ppi_yeast", tmp_path)
    with pytest.raises(TaskError, match="fixed splits"):
        load_task("deeploc10", tmp_path, fold=1)


# --- bring your own task ---------------------------------------------------------------------
def test_custom_csv_multiclass_with_splits(tmp_path):
    p = write(tmp_path, "loc.csv", "id,sequence,label,split\na,MKV,nucleus,train\nb,mkl,cyto,train\n"
                                   "e,MKB,mito,train\nc,MKW,nucleus,valid\nd,MKA,cyto,test\n")
    t = load_custom_task(p)
    assert t.kind == "multiclass" and t.spec.metric == "accuracy" and t.classes == ("cyto", "mito", "nucleus")
    assert t.sizes() == {"train": 3, "valid": 1, "test": 1}
    assert [r.sequence for r in t.splits["train"]] == ["MKV", "MKL", "MKX"]   # validated and cleaned
    assert t.labels("train").tolist() == [2, 0, 1] and t.spec.protocol == "custom"
    b = load_custom_task(write(tmp_path, "b.csv", "id,sequence,label\n" + _many(60, lambda i: i % 2)))
    assert b.kind == "binary" and b.classes == ("0", "1") and b.spec.extra_metrics == ("auroc",)


@pytest.mark.parametrize("labels,kind", [
    (["0.5", "1.25", "3"], "regression"), (["1", "0", "1"], "binary"), (["a", "b", "c"], "multiclass"),
    (["GO:1;GO:2", "GO:2", "GO:3"], "multilabel"), ([str(i) for i in range(30)], "regression"),
    (["2", "3", "7"], "multiclass")])
def test_label_kind_inference(labels, kind):
    assert infer_label_kind(labels) == kind


def test_too_many_text_labels_is_an_error():
    with pytest.raises(TaskError, match="25 distinct text labels"):
        infer_label_kind([f"class{i}" for i in range(25)])


def _many(n: int, label) -> str:
    return "".join(f"r{i},MKV{'ACDEFGHIK'[i % 9]},{label(i)}\n" for i in range(n))


def test_custom_regression_and_multilabel_with_hash_split(tmp_path):
    p = write(tmp_path, "tm.tsv", "id\tsequence\tlabel\n" + _many(300, lambda i: f"{i / 7:.3f}").replace(",", "\t"))
    t = load_custom_task(p)
    assert t.kind == "regression" and t.spec.metric == "spearman" and t.classes is None
    assert sum(t.sizes().values()) == 300 and 15 < t.sizes()["test"] < 50
    assert t.spec.protocol.startswith("custom-hash-split")
    assert load_custom_task(p).sizes() == t.sizes()          # the hash split is stable
    q = write(tmp_path, "go.csv", "id,sequence,label\n" + _many(200, lambda i: "x;y" if i % 2 else "y"))
    m = load_custom_task(q)
    assert m.kind == "multilabel" and m.spec.metric == "fmax" and m.classes == ("x", "y")
    y = m.labels("train")
    assert y.dtype == bool and y.shape[1] == 2 and y[:, 1].all()


def test_custom_fasta_with_labels_file(tmp_path):
    fa = write(tmp_path, "s.fasta", ">a desc\nMKV\nLL\n>b\nMKW\n>c\nMKA\n")
    lab = write(tmp_path, "l.csv", "id,label,split\na,1.5,train\nb,2.5,valid\nc,0.1,test\n")
    t = load_custom_task(fa, labels=lab)
    assert t.kind == "regression" and t.splits["train"][0].sequence == "MKVLL"


def test_custom_pair_and_residue_tasks(tmp_path):
    p = write(tmp_path, "pairs.csv", "id,sequence_a,sequence_b,label,split\n"
                                     "p1,MKV,MKL,1,train\np2,MKV,AAA,0,train\np3,MKV,MKL,1,valid\np4,AA,MK,0,test\n")
    t = load_custom_task(p)
    assert t.kind == "pair_binary" and t.splits["train"][0].sequence == ("MKV", "MKL")
    r = write(tmp_path, "ss.csv", "id,sequence,label,split\na,MKVL,HHEC,train\nb,MKV,CCH,valid\nc,MK,EH,test\n")
    s = load_custom_task(r, kind="residue_multiclass")
    assert s.classes == ("C", "E", "H")
    assert s.labels("train").tolist() == [2, 2, 1, 0]


@pytest.mark.parametrize("text,kwargs,message", [
    ("id,seq,label\na,MKV,1\n", {}, r"bad\.csv: missing column\(s\) 'sequence' \(found: id, seq, label\)"),
    ("id,sequence,label\na,MKV,\n", {}, r"bad\.csv:2: empty label"),
    ("id,sequence,label\na,MKV,1\na,MKL,2\n", {}, r"bad\.csv:3: duplicate id 'a' \(first at line 2\)"),
    ("id,sequence,label\na,MKV,1\nb,MK1V,2\n", {}, r"bad\.csv:3: record 'b': position 3: invalid residue '1'"),
    ("id,sequence,label\na,MKV,1.5\nb,MKL,abc\n", {"kind": "regression"},
     r"bad\.csv:3: record 'b': label 'abc' is not a number \(kind=regression\)"),
    ("id,sequence,label,split\na,MKV,x,train\nb,MKL,y,dev\n", {}, r"bad\.csv:3: record 'b': split 'dev' is not one of"),
    ("id,sequence,label\na,MKV,x\nb,MKL,z\n", {"classes": ["x", "y"]}, r"bad\.csv:3: record 'b': unknown label 'z'"),
    ("id,sequence,label\na,MKV,x\nb,MKL,y\nc,MKL,z\n", {"kind": "binary"}, r"kind=binary needs exactly 2 classes, found 3"),
    ("id,sequence,label,split\na,MKV,x,train\nb,MKL,y,valid\nc,MKL,y,test\n", {},
     r"class 'y' has no records in the train split \(found in: valid, test\)"),
    ("id,sequence,label,split\na,MKV,x,train\nb,MKL,x,train\nc,MKL,x,test\n", {}, r"split 'valid' has no records"),
    ("id,sequence,label,split\na,MKVL,HH,train\n", {"kind": "residue_multiclass"},
     r"record 'a': per-residue label has 2 letters, the sequence 4"),
    ("id,sequence,label\na,MKV,1,extra\n", {}, r"bad\.csv:2: 4 fields, the header has 3"),
])
def test_custom_task_errors_name_file_line_and_problem(tmp_path, text, kwargs, message):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(TaskError, match=message):
        load_custom_task(p, **kwargs)


def test_custom_fasta_errors(tmp_path):
    fa = write(tmp_path, "s.fasta", ">a\nMKV\n>b\nMKW\n")
    with pytest.raises(TaskError, match="needs labels="):
        load_custom_task(fa)
    lab = write(tmp_path, "l.csv", "id,label\na,1\n")
    with pytest.raises(TaskError, match=r"s\.fasta:3: record 'b' has no label in l\.csv"):
        load_custom_task(fa, labels=lab)
    lab2 = write(tmp_path, "l2.csv", "id,label\na,1\nb,2\nzz,3\n")
    with pytest.raises(TaskError, match=r"l2\.csv:4: label for unknown record 'zz'"):
        load_custom_task(fa, labels=lab2)
    with pytest.raises(TaskError, match="no such file"):
        load_custom_task(tmp_path / "missing.csv")


# --- the real tasks --------------------------------------------------------------------------
EXPECTED_SIZES = {
    # DeepLoc-1 test 2,773 (all reconstructed); train 11,231 - 47 without sequence - 1,678 LA val
    "deeploc10": (9506, 1678, 2773),
    "deeploc_binary": (8921, 1009, 1728),
    "thermostability": (498, 141, 1336),
    "metal_ion_binding": (524, 138, 665),
    "ec_level1": (7020, 737, 392),
    "ec_level2": (7020, 737, 392),
    "go_mf": (1927, 505, 3350),
    "gb1_three_vs_rest": (2691, 299, 5743),
    "gb1_low_vs_high": (4580, 509, 3644),
    "gfp": (21366, 5442, 27217),
    "ss3": (9712, 1080, 364),
}


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_real_task_sizes_and_disjoint_splits(name):
    t = load_task(name, DATA)
    assert tuple(t.sizes().values()) == EXPECTED_SIZES[name]
    ids = [{r.id for r in t.splits[s]} for s in ("train", "valid", "test")]
    assert sum(map(len, ids)) == sum(EXPECTED_SIZES[name])        # ids unique
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert load_task(name, DATA) is t                               # cached per process
    y = t.labels("test")
    if t.kind == "multiclass":
        assert y.min() >= 0 and y.max() < len(t.classes)
    if t.kind == "regression":
        assert np.isfinite(y).all()


@needs_data
def test_real_task_details():
    assert load_task("deeploc10", DATA).classes[:3] == ("Cell.membrane", "Cytoplasm", "Endoplasmic.reticulum")
    ec = load_task("ec_level1", DATA)
    assert ec.classes == tuple("1234567")
    gfp = load_task("gfp", DATA)
    wt = next(r for r in gfp.splits["train"] + gfp.splits["valid"] if r.id == "wt")
    assert len(wt.sequence) == 238 and wt.label == pytest.approx(3.7192121319)
    ss = load_task("ss3", DATA)
    y = ss.labels("test")
    assert set(np.unique(y)) <= {-1, 0, 1, 2} and (y == -1).any()
    assert len(y) == sum(len(r.sequence) for r in ss.splits["test"])
    mf = load_task("go_mf", DATA)
    assert len(mf.classes) == 489 and mf.labels("test").shape == (3350, 489)


@needs_data
def test_real_ppi_folds_partition_the_pairs():
    folds = [load_task("ppi_yeast", DATA, fold=k) for k in range(5)]
    tests = [{r.id for r in f.splits["test"]} for f in folds]
    assert sum(map(len, tests)) == 11188 and len(set().union(*tests)) == 11188
    f0 = folds[0]
    assert not ({r.id for r in f0.splits["train"]} & tests[0])
    a, b = f0.splits["train"][0].sequence
    assert isinstance(a, str) and isinstance(b, str)


@needs_data
@pytest.mark.slow
def test_real_meltome_protocol_excludes_held_out_proteins():
    t = load_task("thermostability_meltome", DATA)
    held = {r.id.split("#")[0] for s in ("valid", "test") for r in t.splits[s]}
    held_seqs = {r.sequence for s in ("valid", "test") for r in t.splits[s]}
    train = t.splits["train"]
    assert 4500 < len(train) < 5300 and t.sizes()["test"] == 1336
    assert not ({r.id for r in train} & held) and not ({r.sequence for r in train} & held_seqs)
    assert 30 < np.mean([r.label for r in train]) < 70


def test_go_mf_sp14_runs_from_the_bundled_sample(monkeypatch):
    from lsdkit.data.task_loaders import kmer_homologues

    monkeypatch.delenv("LSDKIT_DATA", raising=False)
    t = load_task("go_mf_sp14")                       # no data directory: the bundled sample
    assert t.kind == "multilabel" and t.spec.metric == "fmax"
    assert t.sizes() == {"train": 1413, "valid": 242, "test": 500} and len(t.classes) == 72
    assert all(c.startswith("GO:") for c in t.classes)
    y = t.labels("train")
    assert y.shape == (1413, 72) and y.any(1).all() and (y.sum(0) >= 10).all()
    test = [r.sequence for r in t.splits["test"]]
    assert not kmer_homologues({r.id: r.sequence for r in t.splits["train"]}, test)


def test_kmer_homologue_filter():
    from lsdkit.data.task_loaders import kmer_homologues

    target = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    queries = {"same": target, "half": target[:16] + "W" * 20, "other": "ACDEFGHIKLMNPQRSTVWY" * 2, "short": "MKT"}
    assert kmer_homologues(queries, [target]) == {"same", "half"}
    # "half": 12 of its 17 distinct 5-mers are in the target (0.71)
    assert kmer_homologues(queries, [target], min_shared=0.75) == {"same"}
