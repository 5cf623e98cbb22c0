"""Pairs of 64-bit hashes within a Hamming distance t, without looking at all pairs:
multi-index hashing (Manku, Jain and Das Sarma, 2007; Norouzi, Punjani and Fleet, 2012).

Each chunk of the hashes (chunks.py) is an index of buckets; a pair within t shares a
bucket, or buckets a few bits apart, in at least one chunk; only those candidates are
checked on all 64 bits. `near_pairs` finds every pair among a set of hashes,
`near_pairs_against` the pairs of new hashes with stored ones (an add: the stored ones
were searched among themselves before).

Two engines, giving the same pairs: pure Python (a dict per chunk, one chunk at a time)
always, and numpy (near_numpy.py: sorted chunk keys, candidates in bounded batches) when
it is installed and there are NUMPY_FROM hashes or more. Beyond the hashes, memory is
one chunk's index and one batch of candidates, whatever the number of pairs checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .chunks import BITS, Chunk, found_before, patterns, plan

Pair = tuple[int, int, int]  # (index, index, distance)
Engine = Literal["auto", "python", "numpy"]

NUMPY_FROM = 50_000  # hashes (new and stored) from which numpy's engine is used if installed
LIMIT = 1 << 64


def _checked(hashes: Sequence[int], t: int) -> None:
    if not 0 <= t <= BITS // 2:
        raise ValueError(f"the near threshold is 0 to {BITS // 2} bits (got {t})")
    for value in hashes:
        if not (type(value) is int and 0 <= value < LIMIT):
            raise ValueError(f"a hash is a whole number of 64 bits (got {value!r})")


def _numpy_wanted(engine: Engine, count: int) -> bool:
    if engine == "python":
        return False
    from . import near_numpy  # numpy itself is imported there, if it can be

    if engine == "numpy":
        if not near_numpy.available():
            raise RuntimeError("numpy (2.0 or later) is not installed")
        return True
    return count >= NUMPY_FROM and near_numpy.available()


def near_pairs(
    hashes: Sequence[int],
    t: int,
    engine: Engine = "auto",
    chunks: tuple[Chunk, ...] | None = None,
) -> list[Pair]:
    """Every pair (i, j, distance), i < j, of `hashes` (64-bit whole numbers) at most t
    bits apart, sorted. `chunks`: chunks.plan's unless given (any chunks whose radii
    add up as chunks.split's do find the same pairs)."""
    _checked(hashes, t)
    if len(hashes) < 2:
        return []
    bulk = _numpy_wanted(engine, len(hashes))
    chunks = chunks or plan(t, len(hashes), None, "numpy" if bulk else "python")
    if bulk:
        from .near_numpy import numpy_pairs

        return numpy_pairs(hashes, t, chunks)
    found: list[Pair] = []
    for n, chunk in enumerate(chunks):
        found += _python_chunk(hashes, t, chunk, chunks[:n])
    return sorted(found)


def near_pairs_against(
    new: Sequence[int],
    old: Sequence[int],
    t: int,
    engine: Engine = "auto",
    chunks: tuple[Chunk, ...] | None = None,
) -> list[Pair]:
    """Every pair (i, j, distance) of new[i] and old[j] at most t bits apart, sorted.
    The pairs among the new hashes themselves are `near_pairs(new, t)`'s."""
    _checked(new, t)
    _checked(old, t)
    if not new or not old:
        return []
    bulk = _numpy_wanted(engine, len(new) + len(old))
    chunks = chunks or plan(t, len(old), len(new), "numpy" if bulk else "python")
    if bulk:
        from .near_numpy import numpy_pairs_against

        return numpy_pairs_against(new, old, t, chunks)
    found: list[Pair] = []
    for n, chunk in enumerate(chunks):
        found += _python_against(new, old, t, chunk, chunks[:n])
    return sorted(found)


def _buckets(hashes: Sequence[int], chunk: Chunk) -> dict[int, list[int]]:
    shift, mask = chunk.shift, chunk.mask
    buckets: dict[int, list[int]] = {}
    for i, value in enumerate(hashes):
        buckets.setdefault((value >> shift) & mask, []).append(i)
    return buckets


def _python_chunk(
    hashes: Sequence[int], t: int, chunk: Chunk, earlier: tuple[Chunk, ...]
) -> list[Pair]:
    """The pairs this chunk finds first: within a bucket, and between buckets `radius`
    bits apart (each pair of buckets once: the lower key probes the higher)."""
    found: list[Pair] = []
    buckets = _buckets(hashes, chunk)
    probes = patterns(chunk.width, chunk.radius)[1:]
    for key, ids in buckets.items():
        for x, i in enumerate(ids):
            hi = hashes[i]
            for j in ids[x + 1 :]:
                d = (hi ^ hashes[j]).bit_count()
                if d <= t and not found_before(hi ^ hashes[j], earlier):
                    found.append((i, j, d))
        for probe in probes:
            other_key = key ^ probe
            if other_key < key:
                continue
            other = buckets.get(other_key)
            if other is None:
                continue
            for i in ids:
                hi = hashes[i]
                for j in other:
                    x = hi ^ hashes[j]
                    d = x.bit_count()
                    if d <= t and not found_before(x, earlier):
                        found.append((i, j, d) if i < j else (j, i, d))
    return found


def _python_against(
    new: Sequence[int], old: Sequence[int], t: int, chunk: Chunk, earlier: tuple[Chunk, ...]
) -> list[Pair]:
    found: list[Pair] = []
    buckets = _buckets(old, chunk)
    probes = patterns(chunk.width, chunk.radius)
    shift, mask = chunk.shift, chunk.mask
    for i, value in enumerate(new):
        key = (value >> shift) & mask
        for probe in probes:
            for j in buckets.get(key ^ probe, ()):
                x = value ^ old[j]
                d = x.bit_count()
                if d <= t and not found_before(x, earlier):
                    found.append((i, j, d))
    return found
