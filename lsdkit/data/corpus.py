"""The pre-training corpus: Swiss-Prot 2014 (or any FASTA) -> filtered, split, cropped batches.

Pipeline, in order (counts of each step are in ``Corpus.stats`` and ``Corpus.summary()``):

1. **read + encode** the FASTA (streaming; one uint8 token buffer plus offsets; letters the
   alphabet rejects raise with file, line and record id). Optionally cached as ``.npy`` files in
   ``cache_dir``, keyed by the file's path, size, mtime, ``limit`` and the alphabet signature.
2. **length filter**: sequences shorter than ``min_len`` are dropped.
3. **leakage filter**: records whose accession is in ``exclude_ids`` (files, one accession per
   line or FASTA headers) or in ``exclude=`` are dropped, *and so is every record with an
   identical sequence* - a duplicate under another accession would leak the same protein.
4. **dedupe**: of records with identical token sequences, the first (in file order) is kept.
5. **split**: an accession goes to ``"valid"`` iff ``u(salt, accession) < val_fraction``, with
   ``u`` = blake2b(salt, accession) read as a number in [0, 1) - the same in every run, process
   and record order, independent of ``PYTHONHASHSEED``.

``Corpus.split(name)`` returns a :class:`SequenceDataset` (random crops to ``max_len`` for
``"train"``, a fixed crop for ``"valid"``); batch it with :func:`make_loader`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsdkit.alphabet import ALPHABET, Alphabet, SequenceError
from lsdkit.data.batching import (EpochLoader, SequenceDataset, TokenBudgetBatchSampler, collate,
                                  make_loader, pack_batches, pack_sorted,
                                  padding_fraction_of)
from lsdkit.data.fasta import FastaError, FastaRecord, open_text, read_fasta
from lsdkit.data.bundle import FULL_FASTA, FULL_SOURCE
from lsdkit.data.sources import DataError, corpus_fasta
from lsdkit.data.splits import split_value
from lsdkit.io import atomic_directory

log = logging.getLogger(__name__)

DEFAULT_FASTA = f"{FULL_SOURCE}/{FULL_FASTA}"   # relative to the data directory
SWISSPROT_2014_RECORDS = 516_371
_CACHE_VERSION = 1
_CHUNK = 8192   # records encoded per vectorised step


class CorpusError(DataError):
    """The corpus leaves nothing to train on; the message names the filters and their counts."""


@dataclass
class CorpusConfig:
    """What the corpus holds. ``cache_dir`` only changes speed, never content."""

    fasta: str | None = None        # default: sources.corpus_fasta(data_dir)
    min_len: int = 30
    max_len: int = 512
    dedupe: bool = True
    val_fraction: float = 0.01
    split_salt: str = "lsdkit"
    exclude_ids: tuple[str, ...] = ()   # files of accessions to drop (leakage control)
    limit: int | None = None           # take only the first N records (tests, CI)
    cache_dir: str | None = None       # where the encoded corpus is kept as .npy between runs

    def __post_init__(self):
        if self.min_len < 1 or self.max_len < 1:
            raise ValueError(f"min_len and max_len must be >= 1 (got {self.min_len}, {self.max_len})")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {self.limit}")
        if isinstance(self.exclude_ids, (str, os.PathLike)):
            self.exclude_ids = (str(self.exclude_ids),)
        self.exclude_ids = tuple(str(p) for p in self.exclude_ids)


def accession(record_id: str) -> str:
    """The accession in a record id: ``sp|P12345|NAME_HUMAN`` -> ``P12345``; other ids unchanged."""
    parts = record_id.split("|")
    return parts[1] if len(parts) >= 3 and parts[0] in ("sp", "tr") else record_id


def read_accessions(path: str | os.PathLike) -> set[str]:
    """Accessions in a file: one per line (first token; ``#`` comments, blanks skipped), or, if
    the first such line starts with ``>``, the ids of a FASTA file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"exclude-ids file {str(path)!r} does not exist")
    out, fasta = set(), None
    with open_text(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fasta = line.startswith(">") if fasta is None else fasta
            if line.startswith(">") or not fasta:
                out.add(accession(line.lstrip(">").split()[0]))
    return out


def encode_records(records: Iterable[FastaRecord | tuple[str, str]], alphabet: Alphabet = ALPHABET,
                   limit: int | None = None, source: str | None = None):
    """Encode records into ``(tokens uint8 [N_res], offsets int64 [n+1], ids str [n])``.

    Vectorised per chunk through the alphabet's byte table; a bad letter is re-encoded by
    ``alphabet.encode`` for its message (record, position, letter) plus ``source``'s line.
    """
    lut = np.where(alphabet._lut < 0, 255, alphabet._lut).astype(np.uint8)
    parts, lengths, ids, chunk = [], [], [], []

    def flush():
        seqs = [s[:-1] if s.endswith("*") else s for _, s, _ in chunk]
        joined = "".join(seqs)
        toks = lut[np.frombuffer(joined.encode("ascii", "replace"), np.uint8)]
        lens = [len(s) for s in seqs]
        if (toks == 255).any() or not joined.isascii() or 0 in lens:   # find and name the culprit
            for rid, seq, line in chunk:
                try:
                    alphabet.encode(seq, record=rid)
                except SequenceError as e:
                    if source is None:
                        raise
                    raise FastaError(str(e), path=source, line=line, record=rid, position=e.position,
                                     letter=e.letter) from None
            raise AssertionError("byte table and Alphabet.encode disagree")  # unreachable
        parts.append(toks)
        lengths.extend(lens)
        ids.extend(rid for rid, _, _ in chunk)
        chunk.clear()

    for n, rec in enumerate(records):
        if limit is not None and n >= limit:
            break
        rid, seq = rec
        chunk.append((rid, seq, getattr(rec, "line", 0)))
        if len(chunk) >= _CHUNK:
            flush()
    if chunk:
        flush()
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return tokens, offsets, np.array(ids, dtype=str)


def load_encoded(fasta: str | os.PathLike, *, limit: int | None = None, cache_dir: str | None = None,
                 alphabet: Alphabet = ALPHABET):
    """Read and encode a FASTA file (see :func:`encode_records`), through the cache when given."""
    fasta = Path(fasta)
    if not fasta.is_file():
        raise DataError(f"corpus FASTA {str(fasta)!r} does not exist")
    if cache_dir is None:
        return encode_records(read_fasta(fasta), alphabet, limit, source=str(fasta))
    st = fasta.stat()
    key = json.dumps([_CACHE_VERSION, str(fasta.resolve()), st.st_size, st.st_mtime_ns, limit,
                      alphabet.signature()])
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    folder = Path(cache_dir) / f"corpus-{fasta.name}-{digest}"
    if (folder / "meta.json").is_file():
        log.info("corpus cache hit: %s", folder)
        return (np.load(folder / "tokens.npy", mmap_mode="r"), np.load(folder / "offsets.npy"),
                np.load(folder / "ids.npy"))
    arrays = encode_records(read_fasta(fasta), alphabet, limit, source=str(fasta))
    try:
        with atomic_directory(folder) as tmp:     # the folder appears complete or not at all
            for name, arr in zip(("tokens", "offsets", "ids"), arrays):
                np.save(tmp / f"{name}.npy", arr)
            (tmp / "meta.json").write_text(key + "\n")
    except OSError:
        if not (folder / "meta.json").is_file():   # a full disk; not a race another process won
            raise
    return arrays


def _representatives(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each record, the index of the first record with the identical token sequence."""
    n, off = len(offsets) - 1, offsets.tolist()
    buf = memoryview(np.ascontiguousarray(tokens))
    h = np.fromiter((int.from_bytes(hashlib.blake2b(buf[off[i]:off[i + 1]], digest_size=8).digest(),
                                    "little") for i in range(n)), dtype=np.uint64, count=n)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    rep = first[inverse.ravel()].astype(np.int64)
    for i in np.flatnonzero(rep != np.arange(n)):          # confirm each hash match byte for byte
        if buf[off[i]:off[i + 1]] != buf[off[rep[i]]:off[rep[i] + 1]]:
            rep[i] = i                                      # a 64-bit collision: not a duplicate
    return rep


class Corpus:
    """Encoded sequences plus the filter/split decisions of a :class:`CorpusConfig`."""

    def __init__(self, cfg: CorpusConfig, tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                 exclude: Iterable[str] = ()):
        self.cfg, self.tokens, self.offsets, self.ids = cfg, tokens, offsets, ids
        excluded = set(map(accession, exclude))
        for path in cfg.exclude_ids:
            excluded |= read_accessions(path)
        n = len(ids)
        accs = [accession(str(i)) for i in ids]
        keep = np.diff(offsets) >= cfg.min_len
        stats = {"records": n, "too_short": int(n - keep.sum()), "exclude_ids_given": len(excluded)}
        rep = _representatives(tokens, offsets) if (cfg.dedupe or excluded) else np.arange(n)
        hit = np.fromiter((a in excluded for a in accs), bool, count=n)
        same = np.isin(rep, rep[hit]) & ~hit
        stats["excluded"] = int((hit & keep).sum())
        stats["excluded_same_sequence"] = int((same & keep).sum())
        keep &= ~hit & ~same
        dup = rep != np.arange(n) if cfg.dedupe else np.zeros(n, bool)
        stats["duplicates"] = int((dup & keep).sum())
        keep &= ~dup
        self.index = np.flatnonzero(keep)
        u = np.fromiter((split_value(accs[i], cfg.split_salt) for i in self.index), float,
                        count=len(self.index))
        self.is_valid = u < cfg.val_fraction
        stats.update(kept=len(self.index), train=int((~self.is_valid).sum()), valid=int(self.is_valid.sum()),
                     cropped=int((np.diff(offsets)[self.index] > cfg.max_len).sum()))
        self.stats = stats
        log.info("%s", self.summary())

    @classmethod
    def load(cls, cfg: CorpusConfig | None = None, data_dir: str | os.PathLike | None = None, *,
             exclude: Iterable[str] = (), alphabet: Alphabet = ALPHABET) -> Corpus:
        """Read ``cfg.fasta`` and apply ``cfg``. Default FASTA: Swiss-Prot 2014 in the data
        directory, or the bundled 3,000-sequence sample when no data directory is configured
        (:func:`lsdkit.data.sources.corpus_fasta`).

        ``exclude`` adds accessions to drop beyond the files in ``cfg.exclude_ids``.
        """
        cfg = cfg or CorpusConfig()
        fasta = Path(cfg.fasta).expanduser() if cfg.fasta else corpus_fasta(data_dir)
        arrays = load_encoded(fasta, limit=cfg.limit, cache_dir=cfg.cache_dir, alphabet=alphabet)
        return cls(cfg, *arrays, exclude=exclude)

    @classmethod
    def from_records(cls, records: Iterable[FastaRecord | tuple[str, str]], cfg: CorpusConfig | None = None,
                     *, exclude: Iterable[str] = (), alphabet: Alphabet = ALPHABET) -> Corpus:
        """Build a corpus from in-memory ``(id, sequence)`` records (tests, small user sets)."""
        cfg = cfg or CorpusConfig()
        return cls(cfg, *encode_records(records, alphabet, cfg.limit), exclude=exclude)

    def __len__(self) -> int:
        return len(self.index)

    def split(self, name: str, *, seed: int = 0) -> SequenceDataset:
        """``"train"`` (random crop per (seed, epoch, index)) or ``"valid"`` (fixed crop per (seed, index))."""
        if name not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', got {name!r}")
        mask = self.is_valid if name == "valid" else ~self.is_valid
        return SequenceDataset(self.tokens, self.offsets, self.ids, index=self.index[mask],
                               max_len=self.cfg.max_len, crop="random" if name == "train" else "fixed",
                               seed=seed)

    def summary(self) -> str:
        """One line: how many records each step removed and what is left."""
        s = self.stats
        return (f"corpus: {s['records']:,} records read; dropped {s['too_short']:,} shorter than "
                f"min_len={self.cfg.min_len}, {s['excluded']:,} excluded ids (+{s['excluded_same_sequence']:,} "
                f"with an excluded sequence), {s['duplicates']:,} duplicates -> {s['kept']:,} kept "
                f"(train {s['train']:,}, valid {s['valid']:,}); {s.get('cropped', 0):,} longer than "
                f"max_len={self.cfg.max_len} are cropped to it")

    def require_training_data(self, source: str = "the corpus") -> None:
        """Raise :class:`CorpusError` (naming the filters and their counts) when the train split is empty."""
        s = self.stats
        if s["train"] > 0:
            return
        why = []
        if s["too_short"]:
            why.append(f"{s['too_short']:,} shorter than min_len={self.cfg.min_len}")
        if s["excluded"] or s["excluded_same_sequence"]:
            why.append(f"{s['excluded'] + s['excluded_same_sequence']:,} excluded (exclude_ids)")
        if s["duplicates"]:
            why.append(f"{s['duplicates']:,} duplicates")
        if s["valid"]:
            why.append(f"{s['valid']:,} went to the validation split (val_fraction={self.cfg.val_fraction})")
        raise CorpusError(f"{source}: no training sequences left: of {s['records']:,} records read, "
                          f"{'; '.join(why) or 'none were kept'} (use longer sequences, or a smaller min_len "
                          f"in CorpusConfig)")


__all__ = ["CorpusConfig", "CorpusError", "Corpus", "SequenceDataset", "TokenBudgetBatchSampler", "EpochLoader",
           "collate", "make_loader", "pack_batches", "pack_sorted", "padding_fraction_of", "accession",
           "read_accessions", "encode_records", "load_encoded", "DEFAULT_FASTA",
           "SWISSPROT_2014_RECORDS"]
