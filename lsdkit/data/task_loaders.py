"""Readers for the registered tasks (see :data:`lsdkit.data.tasks.TASKS` for each protocol).

Each loader takes the task's source folder plus the spec's ``options`` and returns
``(splits, classes, notes)``: ``splits`` maps ``train``/``valid``/``test`` (or ``all`` for a
cross-validation task) to lists of :class:`~lsdkit.data.tasks.Record`; ``classes`` names the
class indices (``None`` for regression); ``notes`` are short sentences on what was dropped or
approximated. Files are read as shipped (xz / zip), never extracted.
"""

from __future__ import annotations

import io
import json
import lzma
import zipfile
import zlib
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lsdkit.data.fasta import read_fasta
from lsdkit.data.sources import DataError
from lsdkit.data.splits import hash_split
from lsdkit.data.tables import read_table
from lsdkit.data.tasks import Record, TaskError, clean_sequence, finite_label, unique_ids

SWISSPROT_FASTA = Path("swissprot2014_go_metastudent") / "swissprot2014_sequences.fasta.xz"
SAPROT = "saprot_tasks_valid_test_sesadapter"
HUMAN_CELL_EXPERIMENTS = ("Homo sapiens Jurkat cells", "Homo sapiens K562 cells")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"missing task file {str(path)!r} (see the folder's PROVENANCE.md)")
    return path


def _csv_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    return read_table(_need(path), delimiter).records()


# what a truncated or corrupt compressed file raises while it is read
READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, UnicodeDecodeError)


@contextmanager
def _reading(path: Path):
    """Turn a read failure of a (compressed) task file into a :class:`TaskError` naming the file."""
    try:
        yield
    except READ_ERRORS as e:
        raise TaskError(f"{path}: cannot read: truncated or corrupt file? ({type(e).__name__}: {e})") from None


def _member(zf: zipfile.ZipFile, name: str) -> io.TextIOWrapper:
    """A zip member as a UTF-8 text handle."""
    return io.TextIOWrapper(zf.open(name), encoding="utf-8")


def _fasta_member(zf: zipfile.ZipFile, name: str) -> dict[str, tuple[str, str]]:
    """``{id: (description, sequence)}`` of a FASTA zip member."""
    with _member(zf, name) as fh:
        return {r.id: (r.description, r.sequence) for r in read_fasta(fh)}


def _class_index(labels: list[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    classes = tuple(sorted(set(labels)))
    return classes, {c: i for i, c in enumerate(classes)}


# ---------------------------------------------------------------------------------------------
# DeepLoc 1.0
def _deeploc_rows(folder: Path) -> list[dict[str, str]]:
    return _csv_rows(folder / "deeploc1_reconstructed.csv.xz")


def deeploc10(folder: Path):
    rows = [r for r in _deeploc_rows(folder) if r["sequence"]]
    classes, index = _class_index([r["label"] for r in rows])
    split_of = {"train": "train", "val": "valid", "test": "test"}
    splits = {s: [] for s in ("train", "valid", "test")}
    for r in rows:
        acc = r["accession"]
        splits[split_of[r["la_split"]]].append(
            Record(acc, clean_sequence(r["sequence"], acc), index[r["label"]]))
    return splits, classes, ("47 DeepLoc-1 train proteins without a reconstructed sequence dropped",)


def _saprot_records(folder: Path, task: str, split: str) -> list[dict]:
    path = _need(folder / f"{task}_{split}.json.xz")
    out = []
    with _reading(path), lzma.open(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise TaskError(f"{path}:{n}: not a JSON record ({e.msg}); truncated or corrupt file?") from None
    return out


def deeploc_binary(folder: Path):
    saprot = folder.parent / SAPROT
    classes = ("membrane", "soluble")      # SaProt: 0 = M, 1 = S
    splits = {}
    for split in ("valid", "test"):
        recs = _saprot_records(saprot, "DeepLocBinary", split)
        splits[split] = [Record(r["name"], clean_sequence(r["aa_seq"], r["name"]), int(r["label"]))
                         for r in recs]
    held_out = {r.id for s in splits.values() for r in s}
    train, skipped = [], 0
    for r in _deeploc_rows(folder):
        if r["la_split"] != "train" or not r["sequence"] or r["accession"] in held_out:
            continue
        if r["membrane_deeploc2"] == "":
            skipped += 1
            continue
        label = 0 if float(r["membrane_deeploc2"]) == 1.0 else 1
        train.append(Record(r["accession"], clean_sequence(r["sequence"], r["accession"]), label))
    return {"train": train, **splits}, classes, (
        f"train labels from DeepLoc 2.0's membrane flag (approximate); {skipped} train proteins "
        "without that flag dropped",)


# ---------------------------------------------------------------------------------------------
# SaProt valid/test sets: the probe trains on 80 % of the official valid set
def saprot_json(folder: Path, task: str):
    valid = _saprot_records(folder, task, "valid")
    test = _saprot_records(folder, task, "test")
    where = {id(r): f"{folder / f'{task}_{split}.json.xz'}" for split, recs in (("valid", valid), ("test", test))
             for r in recs}
    config = json.loads(_need(folder / f"{task}_ESMFold_config.json").read_text())
    multilabel = config["problem_type"] == "multi_label_classification"
    regression = config["problem_type"] == "regression"

    def build(recs: list[dict]) -> list[Record]:
        ids = unique_ids([r.get("name") or f"{task}_{i}" for i, r in enumerate(recs)])
        out = []
        for rid, r in zip(ids, recs):
            lab = r["label"]
            if multilabel:
                lab = tuple(sorted(int(x) for x in lab))
            elif regression:
                lab = finite_label(lab, f"{where[id(r)]}: record {rid!r}")
            else:
                if float(lab) != int(lab):
                    raise DataError(f"{task}: record {rid!r}: class label {lab!r} is not an integer")
                lab = int(lab)
            out.append(Record(rid, clean_sequence(r["aa_seq"], rid), lab))
        return out

    train, carved = hash_split(build(valid), 0.2, salt=f"{task}/valid")
    n = int(config["num_labels"])
    classes = None if regression else tuple(f"{task}:{i}" for i in range(n))
    return {"train": train, "valid": carved, "test": build(test)}, classes, (
        "trained on 80 % of the official valid set; hyper-parameters on the other 20 %",)


# ---------------------------------------------------------------------------------------------
# Thermostability, protocol "meltome"
def swissprot_sequences(root: Path, accessions: set[str]) -> dict[str, str]:
    """Sequences of the given accessions from the Swiss-Prot 2014 FASTA (streamed)."""
    return {r.id: r.sequence for r in read_fasta(_need(root / SWISSPROT_FASTA)) if r.id in accessions}


def kmer_codes(seq: str, k: int = 5) -> np.ndarray:
    """The distinct k-mers of a sequence as int64 codes (base 32 over the byte values)."""
    b = np.frombuffer(seq.encode(), dtype=np.uint8).astype(np.int64) & 31
    if len(b) < k:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(len(b) - k + 1, dtype=np.int64)
    for i in range(k):
        codes = codes * 32 + b[i:len(b) - k + 1 + i]
    return np.unique(codes)


def kmer_homologues(queries: dict[str, str], targets: list[str], k: int = 5,
                    min_shared: float = 0.10) -> set[str]:
    """Ids of ``queries`` sharing >= ``min_shared`` of their distinct k-mers with any one target."""
    def pool(seqs):
        per = [kmer_codes(s, k) for s in seqs]
        return (np.concatenate(per or [np.zeros(0, np.int64)]),
                np.repeat(np.arange(len(per)), [len(c) for c in per]), np.array([len(c) for c in per]))

    qids = list(queries)
    qcodes, qowner, qsize = pool([queries[i] for i in qids])
    tcodes, towner, _ = pool(targets)
    order = np.argsort(tcodes, kind="stable")
    tcodes, towner = tcodes[order], towner[order]
    lo, hi = np.searchsorted(tcodes, qcodes, "left"), np.searchsorted(tcodes, qcodes, "right")
    n = hi - lo                                    # targets holding each query k-mer
    q = np.repeat(qowner, n)                       # one row per (query k-mer, target holding it)
    start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    t = towner[start + np.arange(n.sum())]
    pair, shared = np.unique(q * len(targets) + t, return_counts=True)
    best = np.zeros(len(qids))
    np.maximum.at(best, pair // max(len(targets), 1), shared)
    return {qids[i] for i in np.flatnonzero((qsize > 0) & (best >= min_shared * qsize))}


def meltome(folder: Path):
    saprot = folder.parent / SAPROT
    valid = _saprot_thermo(saprot, "valid")
    test = _saprot_thermo(saprot, "test")
    tm: dict[str, list[float]] = defaultdict(list)
    for r in _csv_rows(folder / "meltome_tm_by_experiment.csv.xz"):
        if r["experiment"] in HUMAN_CELL_EXPERIMENTS:
            tm[r["Protein"].split("_")[0]].append(
                finite_label(r["Tm"], f"{folder / 'meltome_tm_by_experiment.csv.xz'}: record {r['Protein']!r}"))
    held_ids = {r.id.split("#")[0] for r in valid + test}
    held_seqs = [r.sequence for r in valid + test]
    held = set(held_seqs)
    pool = {a for a in tm if a not in held_ids}
    seqs = swissprot_sequences(folder.parent, pool)
    cleaned = {a: clean_sequence(s, a) for a, s in seqs.items()}
    exact = {a for a, s in cleaned.items() if s in held}
    cand = {a: s for a, s in cleaned.items() if a not in exact}
    homologues = kmer_homologues(cand, held_seqs)
    train = [Record(a, s, float(np.mean(tm[a]))) for a, s in sorted(cand.items()) if a not in homologues]
    return {"train": train, "valid": valid, "test": test}, None, (
        f"meltome pool {len(tm)} accessions: {len(tm) - len(pool)} in official valid/test, "
        f"{len(pool) - len(seqs)} not in Swiss-Prot 2014, {len(exact)} exact valid/test sequences, "
        f"{len(homologues)} 5-mer homologues removed -> {len(train)} train",)


def _saprot_thermo(saprot: Path, split: str) -> list[Record]:
    recs = _saprot_records(saprot, "Thermostability", split)
    ids = unique_ids([r["name"] for r in recs])
    where = saprot / f"Thermostability_{split}.json.xz"
    return [Record(i, clean_sequence(r["aa_seq"], i), finite_label(r["label"], f"{where}: record {i!r}"))
            for i, r in zip(ids, recs)]


# ---------------------------------------------------------------------------------------------
# EC (CLEAN)
def clean_ec(folder: Path, level: int):
    def read(name: str) -> list[tuple[str, str, str]]:
        rows = _csv_rows(folder / name, delimiter="\t")
        out = []
        for r in rows:
            first = r["EC number"].split(";")[0].strip()
            parts = first.split(".")
            if len(parts) < level or not all(p.strip() for p in parts[:level]):
                raise DataError(f"{folder / name}: record {r['Entry']!r}: EC {first!r} has no level {level}")
            out.append((r["Entry"], r["Sequence"], ".".join(parts[:level])))
        return out

    train_rows, test_rows = read("split10.csv.xz"), read("new392.csv")
    classes, index = _class_index([c for _, _, c in train_rows + test_rows])
    mk = lambda rows: [Record(i, clean_sequence(s, i), index[c]) for i, s, c in rows]  # noqa: E731
    train, valid = hash_split(mk(train_rows), 0.1, salt="clean_ec/valid")
    return {"train": train, "valid": valid, "test": mk(test_rows)}, classes, (
        "multi-EC proteins labelled by their first EC number",)


# ---------------------------------------------------------------------------------------------
# PPI (Guo yeast): one pool, folds made by lsdkit.data.splits.cv_fold
def ppi_guo(folder: Path):
    proteins = read_table(_need(folder / "protein.dictionary.tsv.xz"), "\t", columns=("protein", "sequence"))
    seqs = {a: clean_sequence(s.strip(), a) for _, (a, s) in proteins.rows}
    actions = read_table(_need(folder / "protein.actions.tsv.xz"), "\t", columns=("a", "b", "label"))
    pairs = [cells for _, cells in actions.rows]
    ids = unique_ids([f"{a}_{b}" for a, b, _ in pairs])
    recs = []
    for rid, (a, b, y) in zip(ids, pairs):
        for p in (a, b):
            if p not in seqs:
                raise DataError(f"{folder}: pair {rid!r}: protein {p!r} has no sequence")
        recs.append(Record(rid, (seqs[a], seqs[b]), int(y)))
    return {"all": recs}, ("no interaction", "interaction"), ()


# ---------------------------------------------------------------------------------------------
# fitness: FLIP GB1, avGFP (TAPE rule)
def flip_gb1(folder: Path, split: str):
    path = _need(folder / "gb1_splits.zip")
    with _reading(path), zipfile.ZipFile(path) as zf:
        with _member(zf, f"splits/{split}.csv") as fh:
            rows = read_table(fh, ",", error=TaskError).records()
    splits = {"train": [], "valid": [], "test": []}
    for i, r in enumerate(rows):
        rid = f"gb1_{split}_{i}"
        which = "test" if r["set"] == "test" else ("valid" if r["validation"] == "True" else "train")
        target = finite_label(r["target"], f"{path}:splits/{split}.csv: record {rid!r}")
        splits[which].append(Record(rid, clean_sequence(r["sequence"], rid), target))
    return splits, None, ()


def gfp(folder: Path):
    wt = "".join(rec.sequence for rec in read_fasta(_need(folder / "avGFP_wildtype.fasta")))
    trainval, test, truncated = [], [], 0
    for r in _csv_rows(folder / "amino_acid_genotypes_to_brightness.tsv.xz", delimiter="\t"):
        rid, muts = r["aaMutations"], ([] if r["aaMutations"] == "wt" else r["aaMutations"].split(":"))
        seq = list(wt)
        for m in muts:      # "SA108D": prefix S, wild-type A, 0-based position 108 in the Met-less protein
            aa, pos, new = m[1], int(m[2:-1]) + 1, m[-1]
            if seq[pos] != aa:
                raise DataError(f"gfp: record {rid!r}: mutation {m!r} expects {aa} at {pos + 1}, wild type has {seq[pos]}")
            seq[pos] = new
        seq = "".join(seq)
        if "*" in seq:      # a nonsense mutation: the translated protein ends before the stop
            seq, truncated = seq[:seq.index("*")], truncated + 1
        label = finite_label(r["medianBrightness"], f"{folder / 'amino_acid_genotypes_to_brightness.tsv.xz'}: "
                                                     f"record {rid!r}")
        rec = Record(rid, clean_sequence(seq, rid), label)
        (trainval if len(muts) <= 3 else test).append(rec)
    train, valid = hash_split(trainval, 0.2, salt="gfp/valid")
    return {"train": train, "valid": valid, "test": test}, None, (
        f"{truncated} genotypes with a stop mutation ('*') truncated before the stop",)


# ---------------------------------------------------------------------------------------------
# per-residue 3-state secondary structure (FLIP sampled)
SS3 = ("H", "E", "C")


def flip_ss(folder: Path):
    path = _need(folder / "secondary_structure_splits.zip")
    with _reading(path), zipfile.ZipFile(path) as zf:
        labels = _fasta_member(zf, "splits/sampled.fasta")
        seqs = _fasta_member(zf, "splits/sequences.fasta")
        masks = _fasta_member(zf, "splits/mask.fasta")
    code = np.full(128, -2, dtype=np.int8)
    for i, c in enumerate(SS3):
        code[ord(c)] = i
    splits = {"train": [], "valid": [], "test": []}
    for rid, (desc, lab) in labels.items():
        seq, mask = seqs[rid][1], masks[rid][1]
        if not len(seq) == len(lab) == len(mask):
            raise DataError(f"ss3: record {rid!r}: sequence/label/mask lengths {len(seq)}/{len(lab)}/{len(mask)} differ")
        y = code[np.frombuffer(lab.encode(), dtype=np.uint8)]
        if (y == -2).any():
            raise DataError(f"ss3: record {rid!r}: label letter outside H/E/C")
        y[np.frombuffer(mask.encode(), dtype=np.uint8) == ord("0")] = -1
        flags = dict(f.split("=") for f in desc.split())
        which = "test" if flags["SET"] == "test" else ("valid" if flags["VALIDATION"] == "True" else "train")
        splits[which].append(Record(rid, clean_sequence(seq, rid), y))
    return splits, SS3, ("residues with mask 0 carry label -1 and are ignored",)


# ---------------------------------------------------------------------------------------------
# GO terms of the bundled Swiss-Prot 2014 sample, with a homology-reduced split
def swissprot_go(folder: Path, aspect: str = "mf", min_count: int = 10):
    from lsdkit.data.bundle import SAMPLE_FASTA, SAMPLE_GO

    seqs = {rec.id: rec.sequence for rec in read_fasta(_need(folder / SAMPLE_FASTA))}
    terms = {r["accession"]: [t for t in r[f"go_{aspect}"].split(";") if t]
             for r in _csv_rows(folder / SAMPLE_GO, delimiter="\t") if r[f"go_{aspect}"]}
    recs = [Record(a, clean_sequence(seqs[a], a), tuple(terms[a])) for a in sorted(terms)]
    rest, test = hash_split(recs, 0.2, salt=f"sp14_{aspect}/test")
    train, valid = hash_split(rest, 0.125, salt=f"sp14_{aspect}/valid")     # 70 / 10 / 20
    near_test = kmer_homologues({r.id: r.sequence for r in train + valid}, [r.sequence for r in test])
    valid = [r for r in valid if r.id not in near_test]
    near_valid = kmer_homologues({r.id: r.sequence for r in train}, [r.sequence for r in valid])
    train = [r for r in train if r.id not in near_test | near_valid]
    counts: dict[str, int] = defaultdict(int)
    for r in train:
        for t in set(r.label):
            counts[t] += 1
    classes = tuple(sorted(t for t, n in counts.items() if n >= min_count))
    index = {t: i for i, t in enumerate(classes)}

    def keep(split: list[Record]) -> list[Record]:
        out = [Record(r.id, r.sequence, tuple(sorted({index[t] for t in r.label if t in index}))) for r in split]
        return [r for r in out if r.label]

    splits = {"train": keep(train), "valid": keep(valid), "test": keep(test)}
    return splits, classes, (
        f"{len(recs)} proteins with {aspect.upper()} terms; {len(near_test)} train/valid homologues of test and "
        f"{len(near_valid - near_test)} train homologues of valid removed (5-mer filter); {len(classes)} terms "
        f"with >= {min_count} training proteins; proteins without such a term dropped",)
