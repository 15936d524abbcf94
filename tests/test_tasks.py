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
    assert b.kind == "binary" and b.classes == ("0", "1") and b.spec.extra_metrics == ("auroc", "auprc", "macro_f1", "balanced_accuracy", "mcc")


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
    ("id,residues,label\na,MKV,1\n", {}, r"bad\.csv: missing column\(s\) 'sequence' \(or seq\) "
                                          r"\(found: id, residues, label\)"),
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


# --- faults: non-finite labels, corrupt compressed files, every bad record at once -----------------
@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "Infinity"])
@pytest.mark.parametrize("kind", [None, "regression"])
def test_non_finite_label_names_file_and_record(tmp_path, bad, kind):
    p = write(tmp_path, "tm.csv", "id,sequence,label\n" + _many(30, lambda i: f"{i / 3:.2f}")
              + f"broken,MKVL,{bad}\n")
    with pytest.raises(TaskError, match=rf"tm\.csv:32: record 'broken': label '{bad}' is not a finite number"):
        load_custom_task(p, kind)


def test_non_finite_label_in_a_registered_loader_names_the_file(tmp_path):
    import json
    import lzma

    from lsdkit.data.task_loaders import saprot_json
    (tmp_path / "Thermostability_ESMFold_config.json").write_text(
        json.dumps({"problem_type": "regression", "num_labels": 1}))
    for split, label in (("valid", 40.5), ("test", float("nan"))):
        with lzma.open(tmp_path / f"Thermostability_{split}.json.xz", "wt") as fh:
            fh.write(json.dumps({"name": "P1", "aa_seq": "MKV", "label": 41.0}) + "\n")
            fh.write(json.dumps({"name": "P2", "aa_seq": "MKL", "label": label}) + "\n")
    with pytest.raises(TaskError, match=r"Thermostability_test\.json\.xz: record 'P2': label nan is not a finite"):
        saprot_json(tmp_path, "Thermostability")


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.xz", ".csv.bz2", ".fasta.gz"])
def test_truncated_compressed_task_file_names_the_file(tmp_path, suffix):
    import bz2
    import gzip
    import lzma
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}[Path(suffix).suffix]
    p = tmp_path / f"task{suffix}"
    body = ("".join(f">r{i}\nMKV{'ACDEFGHIK' * 40}\n" for i in range(400)) if "fasta" in suffix
            else "id,sequence,label\n" + _many(4000, lambda i: i % 2))
    with opener(p, "wt") as fh:
        fh.write(body)
    _truncate(p)
    labels = write(tmp_path, "l.csv", "id,label\n" + "".join(f"r{i},{i % 2}\n" for i in range(400)))
    with pytest.raises(TaskError if "csv" in suffix else Exception,
                       match=rf"task{suffix.replace('.', r'.')}.*cannot read") as info:
        load_custom_task(p, labels=labels if "fasta" in suffix else None)
    from lsdkit.errors import LsdkitError
    assert isinstance(info.value, LsdkitError)


def test_truncated_registered_task_file_names_the_file(tmp_path):
    import json
    import lzma

    from lsdkit.data.task_loaders import saprot_json
    (tmp_path / "MetalIonBinding_ESMFold_config.json").write_text(
        json.dumps({"problem_type": "single_label_classification", "num_labels": 2}))
    for split in ("valid", "test"):
        with lzma.open(tmp_path / f"MetalIonBinding_{split}.json.xz", "wt") as fh:
            for i in range(3000):
                fh.write(json.dumps({"name": f"P{i}", "aa_seq": "MKVLAAGG" * 20, "label": i % 2}) + "\n")
    _truncate(tmp_path / "MetalIonBinding_test.json.xz")
    with pytest.raises(TaskError, match=r"MetalIonBinding_test\.json\.xz: (cannot read|\d+: not a JSON)"):
        saprot_json(tmp_path, "MetalIonBinding")


def test_every_bad_record_is_reported_at_once_or_skipped(tmp_path):
    p = write(tmp_path, "many.csv", "id,sequence,label\n" + _many(40, lambda i: "x" if i % 2 else "y")
              + "b1,MK1V,x\nb2,MKV,\nr3,MKV,y\nb4,MKV,nan\nb5,MK*V*Z9,y\nb6,MK#,x\nb7,MK2,y\n")
    with pytest.raises(TaskError) as info:
        load_custom_task(p)
    msg = str(info.value)
    assert "7 bad record(s) (4 invalid sequence, 1 duplicate id, 1 empty label, 1 non-finite label)" in msg
    assert "many.csv:42: record 'b1'" in msg and "many.csv:43: empty label" in msg
    assert "many.csv:44: duplicate id 'r3' (first at line 5)" in msg and "... and 2 more" in msg
    assert "--on-bad skip" in msg
    t = load_custom_task(p, on_bad="skip")
    assert sum(t.sizes().values()) == 40 and t.kind == "binary"
    assert any(n.startswith("dropped 7 bad record(s) (") and "invalid sequence" in n for n in t.notes)
    assert t.notes[0] == "kind binary (inferred: 2 distinct text labels), 2 classes"


def test_column_mapping_aliases_and_separator(tmp_path):
    p = write(tmp_path, "mine.tsv", "Entry\tSeq\tGO terms\tfold\n"
              + "".join(f"P{i}\tMKV{'ACDEFGHIK'[i % 9]}L\t{'a|b' if i % 3 else 'b'}\t"
                        f"{['train', 'train', 'valid', 'test'][i % 4]}\n" for i in range(40)))
    with pytest.raises(TaskError, match=r"missing column\(s\) 'label' \(or target\)"):
        load_custom_task(p)
    with pytest.raises(TaskError, match=r"--label-col 'terms' is not a column \(found: entry, seq, go terms, fold\)"):
        load_custom_task(p, label_col="terms")
    t = load_custom_task(p, label_col="GO terms", split_col="fold", sep="|")
    assert t.kind == "multilabel" and t.classes == ("a", "b") and t.spec.protocol == "custom"
    assert t.splits["train"][0].id == "P0" and t.sizes() == {"train": 20, "valid": 10, "test": 10}
    assert "multilabel separator '|'" in t.notes[0]


def test_duplicates_are_reported_and_can_be_grouped(tmp_path):
    from lsdkit.data.tasks import describe_duplicates, duplicate_report
    rows = "".join(f"r{i},MKVL{'ACDEFGHIK'[i % 9]},{i % 2},{['train', 'valid', 'test', 'train'][i % 4]}\n"
                   for i in range(36))
    p = write(tmp_path, "dup.csv", "id,sequence,label,split\n" + rows)
    t = load_custom_task(p)
    rep = duplicate_report(t)
    # 9 distinct sequences over 36 records; sequence i%9 lands in the splits of i%4 for i ≡ i%9 (mod 9)
    seqs = {s: [r.sequence for r in t.splits[s]] for s in ("train", "valid", "test")}
    assert rep["train/test"] == sum(x in set(seqs["train"]) for x in seqs["test"]) > 0
    assert rep["within_train"] == len(seqs["train"]) - len(set(seqs["train"]))
    assert "exact duplicate sequences across splits" in describe_duplicates(t)
    g = load_custom_task(p, duplicates="group")
    assert not any(v for k, v in duplicate_report(g).items() if "/" in k)
    assert sum(g.sizes().values()) == 36 and any(n.startswith("duplicates grouped: ") for n in g.notes)


def test_cross_validation_folds_of_a_task_file(tmp_path, capsys):
    """--folds K: every record is tested exactly once, folds never share a record between splits; a
    task with a fixed split is refused; the CLI reports mean ± sd over the folds."""
    from lsdkit import cli
    from lsdkit.data.tasks import TaskError, cv_task
    path = write(tmp_path, "b.csv", "id,sequence,label\n" + _many(120, lambda i: i % 2))
    task = load_custom_task(path)
    folds = cv_task(task, 4)
    assert [f.fold for f in folds] == [0, 1, 2, 3] and {f.spec.protocol for f in folds} == {"custom-cv4-lsdkit"}
    tested = [r.id for f in folds for r in f.splits["test"]]
    assert sorted(tested) == sorted(r.id for s in task.splits.values() for r in s)      # each record once
    for f in folds:
        ids = {s: {r.id for r in f.splits[s]} for s in ("train", "valid", "test")}
        assert not (ids["train"] & ids["test"]) and not (ids["valid"] & ids["test"]) and not (ids["train"] & ids["valid"])
    fixed = load_custom_task(write(tmp_path, "s.csv", "id,sequence,label,split\n" + "".join(
        f"r{i},{'MKVL' * 10},{i % 2},{('train', 'valid', 'test')[i % 3]}\n" for i in range(30))))
    with pytest.raises(TaskError, match="fixed split"):
        cv_task(fixed, 3)
    assert cli.main(["probe", "--features", "composition", "--task", str(path), "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "custom-cv3-lsdkit" in out and " ± " in out
