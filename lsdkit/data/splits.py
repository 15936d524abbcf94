"""Splits by a stable hash: the one hash behind every split in the kit, and k-fold assignment.

:func:`split_value` maps ``(salt, key)`` to a number in [0, 1) that depends on nothing else (not on
the other records, their order or the process), so a record lands in the same split whatever file
or subset it comes in. The corpus's train/validation split (by accession), the tasks' carved-out
validation sets and the cross-validation folds are all built on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

R = TypeVar("R")   # anything with an ``id`` attribute (a task Record)


def split_value(key: str, salt: str = "lsdkit") -> float:
    """A number in [0, 1) fixed by ``(salt, key)``: the basis of every hash split here."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def hash_split(records: Sequence[R], fraction: float, salt: str) -> tuple[list[R], list[R]]:
    """Split records into (rest, carved) with ``carved`` ≈ ``fraction`` of them, stably by id."""
    inside = [split_value(r.id, salt) < fraction for r in records]
    return ([r for r, c in zip(records, inside) if not c], [r for r, c in zip(records, inside) if c])


def cv_fold(records: Sequence[R], n_folds: int, fold: int, salt: str,
            valid_fraction: float = 0.1) -> tuple[dict[str, list[R]], str]:
    """Fold ``fold`` of a k-fold CV by a stable hash of the id; ``valid_fraction`` of the rest is
    carved as valid. Returns ``({"train", "valid", "test"}, note)``."""
    which = [int(split_value(r.id, f"{salt}/fold") * n_folds) for r in records]
    test = [r for r, f in zip(records, which) if f == fold]
    rest = [r for r, f in zip(records, which) if f != fold]
    train, valid = hash_split(rest, valid_fraction, f"{salt}/fold{fold}/valid")
    note = f"fold {fold}/{n_folds}: {len(train)} train, {len(valid)} valid, {len(test)} test"
    return {"train": train, "valid": valid, "test": test}, note


__all__ = ["split_value", "hash_split", "cv_fold"]
