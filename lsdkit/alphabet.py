"""Residue vocabulary: tokens, encoding/decoding and validation with clear errors.

Token layout (fixed; checkpoints record ``Alphabet.signature()`` so a model is never fed
another vocabulary):

    0 <pad>   1 <mask>   2 <bos>   3 <eos>   4..23 the 20 standard residues   24 X (unknown)

Rules
-----
* Lower case is accepted and upper-cased.
* The ambiguous / rare letters B, Z, J, U, O are mapped to X by default. The mapping is the
  ``AMBIGUOUS_TO_X`` table below and is configurable: pass ``ambiguous={"U": "C", ...}`` to map
  selenocysteine to cysteine, or ``ambiguous={}`` to make those letters errors.
* A single trailing ``*`` (stop codon, as in translated ORFs) is stripped; a ``*`` anywhere else
  is an error.
* Anything else - digits, spaces, punctuation, gap characters, an empty sequence, a sequence
  longer than ``max_len`` when one is given - raises :class:`SequenceError`, which names the
  record id, the 1-based position and the offending letter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lsdkit.errors import LsdkitError

STANDARD = "ACDEFGHIKLMNPQRSTVWY"
SPECIALS = ("<pad>", "<mask>", "<bos>", "<eos>")
PAD, MASK, BOS, EOS = 0, 1, 2, 3
FIRST_RESIDUE = len(SPECIALS)
UNK = FIRST_RESIDUE + len(STANDARD)  # index of X
AMBIGUOUS_TO_X: dict[str, str] = {"B": "X", "Z": "X", "J": "X", "U": "X", "O": "X"}


class SequenceError(LsdkitError, ValueError):
    """A sequence (or sequence file) is not acceptable; the message names record, position, letter."""

    def __init__(self, message: str, *, record: str | None = None, position: int | None = None,
                 letter: str | None = None):
        super().__init__(message)
        self.record, self.position, self.letter = record, position, letter


@dataclass(frozen=True)
class Alphabet:
    """The residue vocabulary. ``Alphabet()`` is the one every lsdkit model uses."""

    ambiguous: Mapping[str, str] = field(default_factory=lambda: dict(AMBIGUOUS_TO_X))

    def __post_init__(self):
        for k, v in self.ambiguous.items():
            if len(k) != 1 or not (k.isascii() and k.isalpha()) or k.upper() in STANDARD + "X":
                raise ValueError(f"ambiguous-letter rule {k!r}->{v!r}: key must be a non-standard letter")
            if len(v) != 1 or v.upper() not in STANDARD + "X":
                raise ValueError(f"ambiguous-letter rule {k!r}->{v!r}: target must be a standard residue or X")
        # byte -> token lookup table; -1 marks an illegal byte
        lut = np.full(256, -1, dtype=np.int64)
        for i, aa in enumerate(STANDARD):
            lut[ord(aa)] = lut[ord(aa.lower())] = FIRST_RESIDUE + i
        lut[ord("X")] = lut[ord("x")] = UNK
        for k, v in self.ambiguous.items():
            tok = UNK if v.upper() == "X" else FIRST_RESIDUE + STANDARD.index(v.upper())
            lut[ord(k.upper())] = lut[ord(k.lower())] = tok
        object.__setattr__(self, "_lut", lut)

    def __hash__(self) -> int:  # the rule table is a dict; hash by the vocabulary signature
        return hash(self.signature())

    # -- vocabulary -------------------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        return [*SPECIALS, *STANDARD, "X"]

    def __len__(self) -> int:
        return len(SPECIALS) + len(STANDARD) + 1

    @property
    def residue_ids(self) -> range:
        """Token ids of the 20 standard residues (4..23)."""
        return range(FIRST_RESIDUE, FIRST_RESIDUE + len(STANDARD))

    def signature(self) -> str:
        """A string identifying this vocabulary and its rules; stored in checkpoints."""
        rules = ",".join(f"{k}>{v}" for k, v in sorted(self.ambiguous.items()))
        return f"{'|'.join(self.tokens)};{rules}"

    # -- validation / encoding --------------------------------------------------------------
    def clean(self, seq: str, record: str = "<sequence>", max_len: int | None = None) -> str:
        """Validate ``seq`` and return it upper-cased with ambiguous letters mapped."""
        return self.decode(self.encode(seq, record=record, max_len=max_len))

    def encode(self, seq: str, record: str = "<sequence>", max_len: int | None = None) -> np.ndarray:
        """Residue string -> int64 token array (no BOS/EOS). Raises :class:`SequenceError`."""
        if not isinstance(seq, str):
            raise SequenceError(f"record {record!r}: sequence must be a string, got {type(seq).__name__}",
                                record=record)
        if seq.endswith("*"):
            seq = seq[:-1]
        if not seq:
            raise SequenceError(f"record {record!r}: empty sequence", record=record)
        if max_len is not None and len(seq) > max_len:
            raise SequenceError(f"record {record!r}: position {max_len + 1}: sequence has {len(seq)} "
                                f"residues, more than max_len={max_len}", record=record,
                                position=max_len + 1, letter=seq[max_len])
        try:
            raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:
            pos = next(i for i, c in enumerate(seq) if ord(c) > 127)
            raise self._bad(record, pos, seq[pos]) from None
        toks = self._lut[raw]
        bad = np.flatnonzero(toks < 0)
        if bad.size:
            pos = int(bad[0])
            raise self._bad(record, pos, seq[pos])
        return toks

    def _bad(self, record: str, pos: int, letter: str) -> SequenceError:
        what = {" ": "a space", "*": "a stop '*' inside the sequence", "-": "a gap '-'",
                "\t": "a tab"}.get(letter, repr(letter))
        hint = ""
        if letter.upper() in "BZJUO":
            hint = " (ambiguous letters are not mapped by this Alphabet's rule)"
        return SequenceError(f"record {record!r}: position {pos + 1}: invalid residue {what}{hint}",
                             record=record, position=pos + 1, letter=letter)

    def decode(self, tokens: Sequence[int] | np.ndarray, strip_special: bool = True) -> str:
        """Token ids -> residue string. Special tokens are dropped (or written as <name>)."""
        vocab = self.tokens
        out = []
        for t in np.asarray(tokens).tolist():
            if t < FIRST_RESIDUE:
                if not strip_special:
                    out.append(vocab[t])
            else:
                out.append(vocab[t])
        return "".join(out)

    def batch_encode(self, seqs: Sequence[str], ids: Sequence[str] | None = None,
                     max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encode and right-pad with PAD. Returns ``(tokens [B, L], mask [B, L] bool)``."""
        ids = ids if ids is not None else [f"#{i}" for i in range(len(seqs))]
        if len(seqs) == 0 or len(ids) != len(seqs):
            raise ValueError(f"batch_encode needs a non-empty list of sequences and one id per sequence "
                             f"(got {len(seqs)} sequences, {len(ids)} ids)")
        enc = [self.encode(s, record=r, max_len=max_len) for s, r in zip(seqs, ids)]
        L = max(len(e) for e in enc)
        tokens = np.full((len(enc), L), PAD, dtype=np.int64)
        for i, e in enumerate(enc):
            tokens[i, : len(e)] = e
        return tokens, tokens != PAD


ALPHABET = Alphabet()
