"""Probe tasks: a registry of benchmark tasks over the data directory, and bring-your-own tasks.

A task is a frozen :class:`TaskSpec` (name, source folder, label kind, metric, split protocol);
``load_task(name)`` reads its files lazily into a :class:`TaskData` with the splits ``train`` /
``valid`` / ``test``, each a list of :class:`Record` (id, sequence(s), label). Every sequence is
validated through :data:`lsdkit.alphabet.ALPHABET` (errors name the record) and stored cleaned
(upper case, ambiguous letters mapped to ``X``). Parsed tasks are cached per process.

Label kinds and how a record's ``label`` is encoded:

==================== ================================== =========================
kind                 ``Record.label``                   default metric
==================== ================================== =========================
multiclass / binary  int index into ``TaskData.classes`` accuracy
regression           float                              Spearman
multilabel           tuple of class indices             Fmax (protein-centric)
residue_multiclass   int8 array per residue, -1 ignored accuracy over residues
pair_binary          int 0/1; ``sequence`` is (a, b)    accuracy
==================== ================================== =========================

The split protocols (which file feeds which split, what is carved from what, which caveats
apply) are each task's ``description``; ``lsdkit probe`` prints the protocol id beside every
number. Nothing here looks at a test split to make a choice: validation parts are carved from
training data (or from an official validation set) with a stable hash of the record id.

Bring your own task: :func:`load_custom_task` reads a CSV/TSV (``id, sequence, label[, split]``)
or a FASTA plus a labels file; see its docstring.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsdkit.alphabet import ALPHABET
from lsdkit.data.sources import BUNDLED_DIR, DataError, configured_data_dir, default_data_dir
from lsdkit.data.splits import cv_fold, split_value
from lsdkit.data.tables import ID_COLUMNS, SEQ_COLUMNS, read_table

LABEL_KINDS = ("multiclass", "binary", "regression", "multilabel", "residue_multiclass", "pair_binary")
DEFAULT_METRIC = {"multiclass": "accuracy", "binary": "accuracy", "regression": "spearman",
                  "multilabel": "fmax", "residue_multiclass": "accuracy", "pair_binary": "accuracy"}
SPLITS = ("train", "valid", "test")
# custom tasks: reported beside the primary metric (residue tasks with two classes add auroc, auprc)
_CLASSIFICATION = ("macro_f1", "balanced_accuracy", "mcc")
EXTRA_METRICS = {"binary": ("auroc", "auprc", *_CLASSIFICATION), "pair_binary": ("auroc", "auprc", *_CLASSIFICATION),
                 "multiclass": _CLASSIFICATION, "residue_multiclass": _CLASSIFICATION}
_CLEAN = re.compile(r"[^ACDEFGHIKLMNPQRSTVWYX]")


class TaskError(DataError):
    """A task file or label is malformed; the message names the file, line/record and problem."""


@dataclass(frozen=True, eq=False)
class Record:
    """One example: ``sequence`` is a residue string, or a pair of them for ``pair_binary``."""

    id: str
    sequence: str | tuple[str, str]
    label: Any


@dataclass(frozen=True)
class TaskSpec:
    """A registered task. ``loader`` names a function in :mod:`lsdkit.data.task_loaders` that is
    called as ``loader(root, **dict(options))`` and returns ``(splits, classes, notes)``."""

    name: str
    source: str                     # folder under the data directory
    kind: str
    metric: str
    protocol: str                   # short id of the split protocol, shown next to every number
    description: str
    loader: str = ""
    options: tuple = ()             # loader keyword arguments as (key, value) pairs
    extra_metrics: tuple[str, ...] = ()
    n_folds: int = 0                # > 0: k-fold cross-validation, load with fold=0..k-1
    sequence_length: int | None = None   # all sequences have this length (fixed-length one-hot)
    max_train_rows: int | None = None    # documented subsample cap used by probes (rows = residues
    max_valid_rows: int | None = None    # for per-residue tasks); the test split is never capped

    def __post_init__(self):
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"task {self.name!r}: unknown label kind {self.kind!r} (one of {LABEL_KINDS})")


@dataclass(frozen=True, eq=False)
class TaskData:
    """A loaded task: ``splits[name]`` is a list of :class:`Record` for train / valid / test."""

    spec: TaskSpec
    splits: dict[str, list[Record]]
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    fold: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    def sizes(self) -> dict[str, int]:
        return {s: len(self.splits[s]) for s in SPLITS}

    def sequences(self, split: str) -> list:
        return [r.sequence for r in self.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split as an array (see :func:`label_array`)."""
        return label_array(self.splits[split], self.kind, len(self.classes or ()))


def label_array(records: list[Record], kind: str, n_classes: int = 0) -> np.ndarray:
    """Labels as an array: int [N] (classes, pairs), float [N] (regression), bool [N, C]
    (multilabel) or int [total residues] with -1 = ignored (per-residue)."""
    if kind == "regression":
        return np.array([r.label for r in records], dtype=np.float64)
    if kind == "multilabel":
        y = np.zeros((len(records), n_classes), dtype=bool)
        for i, r in enumerate(records):
            y[i, list(r.label)] = True
        return y
    if kind == "residue_multiclass":
        if not records:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.asarray(r.label, dtype=np.int64) for r in records])
    return np.array([r.label for r in records], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# helpers shared by the loaders
def finite_label(value, where: str) -> float:
    """A regression label as a finite float; NaN, inf or text raise :class:`TaskError` naming ``where``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TaskError(f"{where}: label {value!r} is not a number") from None
    if not math.isfinite(x):
        raise TaskError(f"{where}: label {value!r} is not a finite number (a missing value? drop the record "
                        "or give its value)")
    return x


def clean_sequence(seq: str, record: str) -> str:
    """Validate through ALPHABET (raises SequenceError naming the record); return it cleaned."""
    tokens = ALPHABET.encode(seq, record=record)
    return ALPHABET.decode(tokens) if _CLEAN.search(seq) else seq


def unique_ids(ids: list[str]) -> list[str]:
    """Make ids unique by suffixing repeats with ``#2``, ``#3``, ... (first keeps its id)."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


# ---------------------------------------------------------------------------------------------
# the registry
_SAPROT = "saprot_tasks_valid_test_sesadapter"
_SAPROT_VALID = ("Official SaProt/SES-Adapter valid and test sets (the train set is not obtainable): "
                 "the probe trains on 80 % of the official valid set and picks hyper-parameters on "
                 "the other 20 % (stable hash of the record id); test = official test set.")


def _task(name, source, kind, protocol, description, loader, metric=None, **kw) -> TaskSpec:
    options = tuple(sorted(kw.pop("options", {}).items()))
    return TaskSpec(name=name, source=source, kind=kind, metric=metric or DEFAULT_METRIC[kind],
                    protocol=protocol, description=description, loader=loader, options=options, **kw)


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _task("deeploc10", "deeploc1", "multiclass", "deeploc1-la-val",
          "DeepLoc 1.0 10-class subcellular localisation. Standard DeepLoc-1 train/test split "
          "(deeploc1_reconstructed.csv); validation = LightAttention's published carve-out of the "
          "train set (la_split == 'val', 1,678); train records without a reconstructed sequence "
          "(47) are dropped. Labels: the bio_embeddings annotation column.",
          "deeploc10"),
    _task("deeploc_binary", "deeploc1", "binary", "deeploc1-la-val",
          "DeepLoc 1.0 membrane (M, class 0) vs soluble (S, class 1). valid/test = the official "
          "SaProt DeepLocBinary valid (1,009 = LA val, M/S) and test (1,728) sets with exact "
          "DeepLoc-1 labels. Train = DeepLoc-1 train records of LA's train part labelled by "
          "DeepLoc 2.0's membrane flag (an approximation: DeepLoc-1 'U' proteins become soluble).",
          "deeploc_binary", extra_metrics=("auroc",)),
    _task("thermostability", _SAPROT, "regression", "saprot-valid",
          "Thermostability (FLIP meltome human_cell, SaProt split; Tm in C). " + _SAPROT_VALID,
          "saprot_json", options={"task": "Thermostability"}),
    _task("thermostability_meltome", "meltome_atlas_deepstabp", "regression", "meltome",
          "Thermostability, protocol 'meltome': train = Meltome-atlas human-cell Tm (Jurkat + K562 "
          "cells, mean per accession) joined to Swiss-Prot 2014 sequences by accession, minus any "
          "accession or exact sequence of the official valid/test sets and minus k-mer homologues "
          "(a training sequence sharing >= 10 % of its distinct 5-mers with one valid/test "
          "sequence; a simple filter, not an alignment). valid/test = official SaProt sets.",
          "meltome"),
    _task("metal_ion_binding", _SAPROT, "binary", "saprot-valid",
          "Metal-ion binding (SaProt). " + _SAPROT_VALID, "saprot_json",
          options={"task": "MetalIonBinding"}, extra_metrics=("auroc",)),
    _task("ec_level1", "clean_ec", "multiclass", "clean-split10-new392",
          "EC top-level class (7 classes). Train = CLEAN split10 (7,757 Swiss-Prot enzymes) with a "
          "10 % stable-hash validation carve-out; test = New-392. Proteins with several EC numbers "
          "take the first listed (affects <= 1 % of test proteins).",
          "clean_ec", options={"level": 1}),
    _task("ec_level2", "clean_ec", "multiclass", "clean-split10-new392",
          "EC second-level class (e.g. 2.7). Same protocol as ec_level1.",
          "clean_ec", options={"level": 2}),
    _task("go_mf", _SAPROT, "multilabel", "saprot-valid",
          "GO molecular function (DeepFRI PDB chains, 489 term ids as shipped; no id->GO vocabulary). "
          + _SAPROT_VALID, "saprot_json", options={"task": "MF"}),
    _task("ppi_yeast", "ppi_guo_yeast_pipr", "pair_binary", "guo-cv5",
          "Yeast PPI (Guo et al. 2008, PIPR packaging; stand-in for HumanPPI): 11,188 balanced pairs, "
          "5-fold cross-validation by a stable hash of the pair id (the standard random-pair CV: "
          "proteins are shared across folds); within each fold 10 % of the training pairs are carved "
          "out for hyper-parameters. Report mean over folds.",
          "ppi_guo", n_folds=5),
    _task("gb1_three_vs_rest", "flip", "regression", "flip-gb1-three_vs_rest",
          "FLIP GB1 three_vs_rest: train = <= 3 mutations (validation = FLIP's VALIDATION flag), "
          "test = 4-mutants.", "flip_gb1", options={"split": "three_vs_rest"}, sequence_length=265),
    _task("gb1_low_vs_high", "flip", "regression", "flip-gb1-low_vs_high",
          "FLIP GB1 low_vs_high: train = fitness below wild type, test = above.", "flip_gb1",
          options={"split": "low_vs_high"}, sequence_length=265),
    _task("gfp", "gfp_sarkisyan2016", "regression", "tape-fluorescence",
          "avGFP fluorescence (Sarkisyan 2016) with the TAPE rule: genotypes with <= 3 mutations -> "
          "train/valid (80/20 stable hash; TAPE: 21,446/5,362), >= 4 mutations -> test (27,217). "
          "Target = log10 median brightness.", "gfp", sequence_length=238),
    _task("ss3", "flip", "residue_multiclass", "flip-ss-sampled",
          "3-state secondary structure (FLIP 'sampled', NetSurfP-derived H/E/C); residues with "
          "mask 0 are ignored. train/valid by FLIP's SET/VALIDATION flags, test = SET=test (364). "
          "Probes subsample training proteins to <= 100,000 residues and validation proteins to "
          "<= 50,000 residues (seeded); the test split is scored in full.",
          "flip_ss", max_train_rows=100_000, max_valid_rows=50_000),
    _task("go_mf_sp14", "swissprot2014_sample", "multilabel", "sp14-sample-homology-split",
          "GO molecular function on the 3,000-protein Swiss-Prot 2014 sample that ships with lsdkit "
          "(used when the data directory lacks it), terms as annotated (not propagated). Split 70/10/20 "
          "by a stable hash of the accession, then train/valid proteins sharing >= 10 % of their "
          "distinct 5-mers with a test protein (and train proteins with a valid protein) are removed. "
          "Vocabulary: terms with >= 10 training proteins. The test proteins are in the Swiss-Prot "
          "pre-training corpus unless it excludes them (CorpusConfig.exclude_ids).",
          "swissprot_go", options={"aspect": "mf"}),
]}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; registered tasks: {', '.join(TASKS)}") from None


def task_folds(name: str) -> list[int | None]:
    """The folds to run for a task: ``[None]``, or ``[0, ..., k-1]`` for a k-fold CV task."""
    spec = get_task(name)
    return list(range(spec.n_folds)) if spec.n_folds else [None]


def load_task(name: str, data: str | os.PathLike | None = None, fold: int | None = None) -> TaskData:
    """Load a registered task from the data directory (``data``, else ``$LSDKIT_DATA``, else the
    bundled one; a source the directory lacks but lsdkit ships is read from lsdkit). Cached."""
    spec = get_task(name)
    if spec.n_folds and fold is None:
        raise TaskError(f"task {name!r} is {spec.n_folds}-fold cross-validation: pass fold=0..{spec.n_folds - 1}")
    if not spec.n_folds and fold is not None:
        raise TaskError(f"task {name!r} has fixed splits; fold={fold} is not meaningful")
    if fold is not None and not 0 <= fold < spec.n_folds:
        raise TaskError(f"task {name!r}: fold {fold} out of range 0..{spec.n_folds - 1}")
    root = configured_data_dir(data) or default_data_dir()
    return _load_cached(name, str(root.resolve()), fold)


@functools.lru_cache(maxsize=None)
def _parse_cached(name: str, root: str):
    from lsdkit.data import task_loaders

    spec = TASKS[name]
    folder = Path(root) / spec.source
    if not folder.is_dir() and (BUNDLED_DIR / spec.source).is_dir():
        folder = BUNDLED_DIR / spec.source          # a source that ships with lsdkit
    if not folder.is_dir():
        raise DataError(f"task {name!r} needs the folder {str(folder)!r} (see data/README.md)")
    try:
        return getattr(task_loaders, spec.loader)(folder, **dict(spec.options))
    except task_loaders.READ_ERRORS as e:      # a file the loader reads without naming it
        raise TaskError(f"task {name!r}: cannot read a file in {folder}: truncated or corrupt? "
                        f"({type(e).__name__}: {e})") from None


@functools.lru_cache(maxsize=None)
def _load_cached(name: str, root: str, fold: int | None) -> TaskData:
    spec = TASKS[name]
    splits, classes, notes = _parse_cached(name, root)
    if spec.n_folds:
        splits, extra = cv_fold(splits["all"], spec.n_folds, fold, salt=name)
        notes = (*notes, extra)
    return TaskData(spec=spec, splits=splits, classes=classes, notes=tuple(notes), fold=fold)



# ---------------------------------------------------------------------------------------------
# bring your own task
_FASTA_SUFFIXES = {".fasta", ".fa", ".faa", ".fas"}


def is_fasta_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a FASTA file (``.fasta``/``.fa``/``.faa``/``.fas``, optionally compressed)."""
    return bool(_suffixes(Path(path))[-1:]) and _suffixes(Path(path))[-1] in _FASTA_SUFFIXES


def _suffixes(path: Path) -> list[str]:
    s = [x.lower() for x in path.suffixes]
    return s[:-1] if s and s[-1] in {".gz", ".xz", ".bz2"} else s


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower-cased) and ``(line number, row)`` pairs (cells stripped) of a CSV/TSV
    (:func:`lsdkit.data.tables.read_table`)."""
    table = read_table(path, error=TaskError)
    header = [h.strip().lower() for h in table.header]
    return header, [(n, {h: c.strip() for h, c in zip(header, cells)}) for n, cells in table.rows]


# the columns of a custom task: role -> names accepted, in order (the first present is used)
COLUMN_ALIASES = {"id": ID_COLUMNS, "sequence": SEQ_COLUMNS, "label": ("label", "target"), "split": ("split",)}
ON_BAD = ("error", "skip")
DUPLICATES = ("keep", "group")
SHOWN_BAD = 5           # bad records named in a message (all are counted)


def _columns(path: Path, header: list[str], columns: dict[str, str | None], roles: tuple[str, ...],
             required: tuple[str, ...]) -> dict[str, str | None]:
    """Role -> column name: the one given (``--id-col`` ...; must exist), else the first alias present."""
    out = {}
    for role in roles:
        given = columns.get(role)
        if given:
            if given.strip().lower() not in header:
                raise TaskError(f"{path}: --{role.replace('sequence', 'seq')}-col {given!r} is not a column "
                                f"(found: {', '.join(header) or 'none'})")
            out[role] = given.strip().lower()
        else:
            out[role] = next((c for c in COLUMN_ALIASES.get(role, (role,)) if c in header), None)
    missing = [r for r in required if out[r] is None]
    if missing:
        accepted = "; ".join(f"{r!r} (or {', '.join(COLUMN_ALIASES[r][1:])})" if len(COLUMN_ALIASES.get(r, ())) > 1
                             else repr(r) for r in missing)
        raise TaskError(f"{path}: missing column(s) {accepted} (found: {', '.join(header) or 'none'}); "
                        "name them with --id-col / --seq-col / --label-col")
    return out


@dataclass
class _Row:
    """One record of a custom task file while it is read: where it came from, its cells."""
    src: Path
    line: int
    id: str
    label: str
    seq: Any = None             # str, or (a, b) for pairs
    split: str | None = None
    problems: list = field(default_factory=list)      # (category, message)

    @property
    def where(self) -> str:
        return f"{self.src}:{self.line}"

    def bad(self, category: str, message: str) -> None:
        self.problems.append((category, f"{self.where}: {message}"))


def _custom_rows(path: Path, labels, kind: str | None, columns: dict[str, str | None]) -> tuple[list[_Row], list]:
    """The rows of a custom task (every one, with its problems attached) and the file-level problems of
    a FASTA + labels task (labels for unknown records, records without a label)."""
    extra: list[tuple[str, str]] = []
    if is_fasta_path(path):
        if labels is None:
            raise TaskError(f"{path}: a FASTA task needs labels= a CSV/TSV with columns id, label[, split] "
                            "(--labels FILE)")
        from lsdkit.data.fasta import read_fasta

        seqs = {rec.id: (rec.sequence, rec.line) for rec in read_fasta(path)}
        lpath = Path(labels)
        header, table = _read_table(lpath)
        cols = _columns(lpath, header, columns, ("id", "label", "split"), ("id", "label"))
        rows = []
        for n, cells in table:
            row = _Row(lpath, n, cells[cols["id"]], cells[cols["label"]],
                       split=cells[cols["split"]] if cols["split"] else None)
            if row.id in seqs:
                row.seq = seqs[row.id][0]
            elif row.id:
                row.bad("unknown record", f"label for unknown record {row.id!r} (not in {path.name})")
            rows.append(row)
        labelled = {row.id for row in rows}
        for rid, (_, line) in seqs.items():
            if rid not in labelled:
                extra.append(("no label", f"{path}:{line}: record {rid!r} has no label in {lpath.name}"))
    else:
        header, table = _read_table(path)
        pair = kind == "pair_binary" or ("sequence_a" in header and not _columns(
            path, header, columns, ("sequence",), ())["sequence"])
        roles = ("id", "sequence_a", "sequence_b", "label", "split") if pair else ("id", "sequence", "label", "split")
        cols = _columns(path, header, columns, roles, tuple(r for r in roles if r not in ("id", "split")))
        rows = []
        for n, cells in table:
            rid = cells[cols["id"]] if cols["id"] else f"row{len(rows) + 1}"
            seq = (cells[cols["sequence_a"]], cells[cols["sequence_b"]]) if pair else cells[cols["sequence"]]
            rows.append(_Row(path, n, rid, cells[cols["label"]], seq=seq,
                             split=cells[cols["split"]] if cols["split"] else None))
    if not rows:
        raise TaskError(f"{path}: no records")
    seen: dict[str, int] = {}
    for row in rows:
        for what in ("id", "label"):
            if not getattr(row, what):
                row.bad(f"empty {what}", f"empty {what}")
        if row.id and row.id in seen:
            row.bad("duplicate id", f"duplicate id {row.id!r} (first at line {seen[row.id]})")
        seen.setdefault(row.id, row.line)
        if row.label and _is_float(row.label) and not math.isfinite(float(row.label)):
            row.bad("non-finite label", f"record {row.id!r}: label {row.label!r} is not a finite number "
                                        "(a missing value? drop the record or give its value)")
    return rows, extra


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def explain_label_kind(labels: list[str], max_classes: int = 20, sep: str = ";") -> tuple[str, str]:
    """:func:`infer_label_kind` and the reason for its answer (one phrase)."""
    distinct = set(labels)
    if any(sep in x for x in labels):
        return "multilabel", f"labels hold the multilabel separator {sep!r}"
    if all(_is_float(x) for x in distinct):
        if not all(float(x).is_integer() for x in distinct):
            return "regression", "numeric labels with fractional values"
        if len(distinct) > max_classes:
            return "regression", f"{len(distinct)} distinct integer labels, more than max_classes={max_classes}"
    elif len(distinct) > max_classes:
        raise TaskError(f"{len(distinct)} distinct text labels, more than max_classes={max_classes}: "
                        "pass kind='multiclass' (--kind multiclass) if that is intended")
    what = "integer" if all(_is_float(x) for x in distinct) else "text"
    if len(distinct) == 2:
        return "binary", f"2 distinct {what} labels"
    return "multiclass", f"{len(distinct)} distinct {what} labels (at most max_classes={max_classes})"


def infer_label_kind(labels: list[str], max_classes: int = 20, sep: str = ";") -> str:
    """Label kind from raw label strings: ``sep``-lists -> multilabel; numbers with a fraction, or
    more than ``max_classes`` distinct integers -> regression; otherwise 2 distinct values ->
    binary, up to ``max_classes`` -> multiclass. Raises if text labels have too many values."""
    return explain_label_kind(labels, max_classes, sep)[0]


def _vocabulary(path: Path, kind: str, raw: list[str], classes, sep: str) -> tuple[str, ...] | None:
    if kind == "regression":
        return None
    if classes:
        return tuple(classes)
    if kind == "multilabel":
        return tuple(sorted({t.strip() for x in raw for t in x.split(sep) if t.strip()}))
    if kind == "residue_multiclass":
        return tuple(sorted(set("".join(raw))))
    numeric = all(_is_float(v) for v in raw)
    found = tuple(sorted(set(raw), key=lambda x: (float(x), x) if numeric else (0, x)))
    if kind in ("binary", "pair_binary") and len(found) != 2:
        raise TaskError(f"{path}: kind={kind} needs exactly 2 classes, found {len(found)}: {', '.join(found[:10])}")
    return found


def _parse_label(kind: str, lab: str, seq, index: dict[str, int], sep: str):
    """The label value, or raise ``ValueError((category, message))``."""
    if kind == "regression":
        if not _is_float(lab):
            raise ValueError("unparseable label", f"label {lab!r} is not a number (kind=regression)")
        return float(lab)
    if kind == "multilabel":
        terms = [t.strip() for t in lab.split(sep) if t.strip()]
        bad = [t for t in terms if t not in index]
        if bad:
            raise ValueError("unknown label", f"unknown label(s) {', '.join(map(repr, bad))}")
        return tuple(sorted({index[t] for t in terms}))
    if kind == "residue_multiclass":
        if len(lab) != len(seq):
            raise ValueError("label length", f"per-residue label has {len(lab)} letters, the sequence {len(seq)}")
        bad = sorted(set(lab) - set(index))
        if bad:
            raise ValueError("unknown label", f"unknown per-residue label(s) {', '.join(map(repr, bad))}")
        return np.array([index[c] for c in lab], dtype=np.int8)
    if lab not in index:
        raise ValueError("unknown label", f"unknown label {lab!r} (classes: {', '.join(index)})")
    return index[lab]


def _bad_summary(problems: list[tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for category, _ in problems:
        counts[category] = counts.get(category, 0) + 1
    return ", ".join(f"{n} {c}" for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def _raise_bad(path: Path, problems: list[tuple[str, str]]):
    shown = "; ".join(m for _, m in problems[:SHOWN_BAD])
    more = f"; ... and {len(problems) - SHOWN_BAD} more" if len(problems) > SHOWN_BAD else ""
    raise TaskError(f"{path}: {len(problems)} bad record(s) ({_bad_summary(problems)}): {shown}{more} "
                    "(--on-bad skip drops them)")


def load_custom_task(path: str | os.PathLike, kind: str | None = None, *, labels: str | os.PathLike | None = None,
                     name: str | None = None, classes: list[str] | None = None, max_classes: int = 20,
                     valid_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = "lsdkit",
                     id_col: str | None = None, seq_col: str | None = None, label_col: str | None = None,
                     split_col: str | None = None, sep: str = ";", on_bad: str = "error",
                     duplicates: str = "keep") -> TaskData:
    """Load your own task.

    * a CSV/TSV with an id, a sequence and a label column and optionally a split column
      (train/valid/test); ``pair_binary`` tasks give ``sequence_a, sequence_b`` instead of a
      sequence; or
    * a FASTA file (``path``) plus ``labels=`` a CSV/TSV with id, label[, split]; every FASTA
      record needs a label and every label an existing record.

    Columns are found by name, case-insensitively: id = ``id``/``name``/``accession``/``entry`` (else
    ``row1``, ``row2``, ...), sequence = ``sequence``/``seq``, label = ``label``/``target``, split =
    ``split``; ``id_col``, ``seq_col``, ``label_col``, ``split_col`` name them instead.

    ``kind`` is inferred when not given (:func:`explain_label_kind`; the reason is the first of
    ``notes``); ``residue_multiclass`` must be given: the label is a string as long as the
    sequence, one class letter per residue. ``sep`` separates the terms of a multilabel label.
    ``classes`` fixes the class list (labels outside it are errors). Without a split column
    records are split by a stable hash of the id (``valid_fraction``, ``test_fraction``).
    ``duplicates="group"`` puts every record whose sequence occurred before into the split of its
    first occurrence (no exact duplicate across splits); ``"keep"`` leaves splits as they are
    (:func:`duplicate_report` counts what crosses).

    Bad records (empty id or label, duplicate id, invalid residue letters, NaN/inf or unparseable
    label, unknown class, bad split value, ...) are all collected: ``on_bad="error"`` raises one
    :class:`TaskError` with their count, kinds and the first few (file:line); ``on_bad="skip"`` drops
    them and says how many and why in ``notes``. File-level problems (missing columns, an empty
    split, a class without training records) always raise.
    """
    if on_bad not in ON_BAD:
        raise TaskError(f"on_bad must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
    if duplicates not in DUPLICATES:
        raise TaskError(f"duplicates must be one of {', '.join(DUPLICATES)}, got {duplicates!r}")
    if not sep:
        raise TaskError("the multilabel separator must not be empty")
    path = Path(path)
    columns = {"id": id_col, "sequence": seq_col, "label": label_col, "split": split_col}
    rows, problems = _custom_rows(path, labels, kind, columns)
    pair = isinstance(rows[0].seq, tuple) or kind == "pair_binary"

    # residues, split values: checks that need no label kind
    for row in rows:
        if row.seq is not None:
            try:
                row.seq = (tuple(clean_sequence(x, row.id) for x in row.seq) if isinstance(row.seq, tuple)
                           else clean_sequence(row.seq, row.id))
            except ValueError as e:
                row.bad("invalid sequence", str(e))
        if row.split is not None and row.split not in SPLITS:
            row.bad("bad split", f"record {row.id!r}: split {row.split!r} is not one of {', '.join(SPLITS)}")

    good = [r for r in rows if not r.problems]
    if not good:
        _raise_bad(path, problems + [p for r in rows for p in r.problems])
    if kind is not None:
        reason = "given"
    elif pair:
        kind, reason = "pair_binary", "two sequence columns (sequence_a, sequence_b)"
    else:
        kind, reason = explain_label_kind([r.label for r in good] or ["?"], max_classes, sep)
        reason = f"inferred: {reason}"
    if kind not in LABEL_KINDS:
        raise TaskError(f"{path}: unknown label kind {kind!r} (one of {', '.join(LABEL_KINDS)})")
    cls = _vocabulary(path, kind, [r.label for r in good], classes, sep)
    index = {c: i for i, c in enumerate(cls or ())}
    values = {}
    for row in good:
        try:
            values[id(row)] = _parse_label(kind, row.label, row.seq, index, sep)
        except ValueError as e:
            category, message = e.args
            row.bad(category, f"record {row.id!r}: {message}")

    problems = problems + [p for r in rows for p in r.problems]
    notes = [f"kind {kind} ({reason})" + (f", {len(cls)} classes" if cls is not None else "")]
    if problems:
        if on_bad == "error":
            _raise_bad(path, problems)
        notes.append(f"dropped {len(problems)} bad record(s) ({_bad_summary(problems)}); first: {problems[0][1]}")
    rows = [r for r in rows if not r.problems]

    has_split = any(r.split is not None for r in rows)
    first_split: dict[Any, str] = {}
    moved = 0
    records: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for row in rows:
        split = row.split
        if not split:
            u = split_value(row.id, salt)
            split = "test" if u < test_fraction else ("valid" if u < test_fraction + valid_fraction else "train")
        if duplicates == "group":
            first = first_split.setdefault(row.seq, split)
            moved += first != split
            split = first
        records[split].append(Record(row.id, row.seq, values[id(row)]))
    if duplicates == "group":
        notes.append(f"duplicates grouped: {moved} record(s) moved to the split of the first record with "
                     "the same sequence")

    for s in SPLITS:
        if not records[s]:
            raise TaskError(f"{path}: split {s!r} has no records")
    if cls is not None:
        present = {s: set(np.concatenate([np.atleast_1d(np.asarray(r.label, np.int64)) for r in records[s]]))
                   for s in SPLITS}
        for i, c in enumerate(cls):
            if i not in present["train"]:
                found = [s for s in SPLITS if i in present[s]]
                raise TaskError(f"{path}: class {c!r} has no records in the train split "
                                f"(found in: {', '.join(found) or 'no split'}); add examples or set splits")
    spec = TaskSpec(name=name or path.name.split(".")[0], source=str(path), kind=kind, metric=DEFAULT_METRIC[kind],
                    protocol="custom" if has_split else f"custom-hash-split-{salt}",
                    description=f"custom task from {path}",
                    extra_metrics=EXTRA_METRICS.get(kind, ()) + (("auroc", "auprc") if kind == "residue_multiclass"
                                                                 and len(cls) == 2 else ()))
    return TaskData(spec=spec, splits=records, classes=cls, notes=tuple(notes))


def cv_task(task: TaskData, n_folds: int, salt: str = "lsdkit") -> list[TaskData]:
    """``n_folds``-fold cross-validation of a task file without a fixed split: every record pooled,
    fold i tests on the i-th part (a stable hash of the id, :func:`lsdkit.data.splits.cv_fold`) and
    carves 10 % of the rest as valid. A task whose file has a split column, or a registered one, is
    refused: its split is the protocol."""
    from dataclasses import replace

    from lsdkit.data.splits import cv_fold
    if not task.spec.protocol.startswith("custom-hash-split"):
        raise TaskError(f"--folds: task {task.name} has a fixed split ({task.spec.protocol}); cross-validation is "
                        "for task files without a split column")
    if n_folds < 2:
        raise TaskError(f"--folds: need at least 2 folds, got {n_folds}")
    records = [r for s in SPLITS for r in task.splits[s]]
    spec = replace(task.spec, protocol=f"custom-cv{n_folds}-{salt}")
    out = []
    for fold in range(n_folds):
        splits, note = cv_fold(records, n_folds, fold, salt)
        empty = [s for s in SPLITS if not splits[s]]
        if empty:
            raise TaskError(f"--folds {n_folds}: fold {fold} of {task.name} has no {empty[0]} records "
                            f"({len(records)} records in all); use fewer folds")
        out.append(TaskData(spec=spec, splits=splits, classes=task.classes, notes=task.notes + (note,), fold=fold))
    return out


def duplicate_report(task: TaskData) -> dict[str, int]:
    """Exact duplicate sequences (pairs for pair tasks) across splits: for each pair of splits, how
    many records of the later split have a sequence that also occurs in the earlier one
    (``train/valid``, ``train/test``, ``valid/test``), plus ``within_<split>``: records repeating an
    earlier sequence of the same split."""
    seqs = {s: [r.sequence for r in task.splits[s]] for s in SPLITS}
    sets = {s: set(v) for s, v in seqs.items()}
    out = {f"{a}/{b}": sum(x in sets[a] for x in seqs[b])
           for a, b in (("train", "valid"), ("train", "test"), ("valid", "test"))}
    out.update({f"within_{s}": len(seqs[s]) - len(sets[s]) for s in SPLITS})
    return out


def describe_duplicates(task: TaskData) -> str:
    """One line: the cross-split exact duplicates of :func:`duplicate_report`."""
    rep = duplicate_report(task)
    cross = {k: v for k, v in rep.items() if "/" in k}
    if not any(cross.values()):
        return f"task {task.name}: no exact duplicate sequences across train/valid/test"
    parts = ", ".join(f"{v} {b} record(s) with a {a} sequence" for k, v in cross.items() if v
                      for a, b in [k.split("/")])
    return (f"task {task.name}: exact duplicate sequences across splits (leakage): {parts}"
            + ("; --duplicates group keeps them in one split" if task.spec.protocol.startswith("custom") else ""))
