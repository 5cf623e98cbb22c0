"""Stable train/val/test splits: a function of an image's key, never of what else arrived.

Each key is hashed (SHA-256) to a number in [0, 1) and falls into one split by the
cumulative ratios in params.yaml (pack.split), taken in the order they are written.
Adding images never moves an existing image to another split: its key, and so its
number, does not change. Changing the ratios does move images, as asked.
An image whose own metadata names a split (a `split` column in labels.csv, a field in
metadata.jsonl or a sidecar) keeps that one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..store import Record

SPLIT_FIELD = "split"


def check_ratios(ratios: object) -> str | None:
    """Why `ratios` is not a usable split table, or None if it is."""
    if not isinstance(ratios, Mapping):
        return "must be a mapping of split names to ratios, like {train: 0.8, val: 0.2}"
    for name, ratio in ratios.items():
        if not isinstance(name, str) or not name:
            return f"split names must be non-empty strings (got {name!r})"
        # `not 0 <= ratio <= 1` is also true of NaN, and keeps a 400-digit integer out
        # of the float sum below
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            return f"the ratio of {name!r} must be a number from 0 to 1 (got {ratio!r:.60})"
    if ratios and abs(sum(ratios.values()) - 1.0) > 1e-6:
        return f"ratios must add up to 1 (they add up to {sum(ratios.values()):g})"
    return None


def key_fraction(key: str) -> float:
    """Where a key falls in [0, 1): the first 8 bytes of its SHA-256, as a fraction."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(key: str, ratios: Mapping[str, float]) -> str | None:
    """The split a key falls in under `ratios`; None when no splits are configured."""
    if not ratios:
        return None
    point = key_fraction(key)
    edge = 0.0
    last = None
    for name, ratio in ratios.items():
        if ratio <= 0:
            continue
        edge += ratio
        last = name
        if point < edge:
            return name
    return last  # rounding at the top edge


def with_split(record: Record, ratios: Mapping[str, float]) -> Record:
    """The record with its effective split: its metadata's own, or the key's."""
    given = record.metadata.get(SPLIT_FIELD)
    split = given if isinstance(given, str) and given else assign_split(record.key, ratios)
    return record if split == record.split else record.replace(split=split)
