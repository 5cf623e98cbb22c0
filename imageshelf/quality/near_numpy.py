"""near.py's search in numpy: each chunk's keys sorted once, buckets as runs of the sorted
keys, candidates made and checked in bulk, in batches of at most BATCH candidates.

numpy is imported when a search runs (it is no dependency of the core), and needed at
2.0 or later (`bitwise_count`). The pairs are near.py's pure-Python ones exactly: both
keep a pair in the first chunk that finds it (chunks.found_before), both sort.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .chunks import Chunk, patterns

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]

BATCH = 1 << 20  # candidates made at once: about 100 MB of temporary arrays
DENSE_BITS = 22  # chunks this wide find a bucket by a table of 2^bits slots (16 MB at 22)


def available() -> bool:
    """numpy 2.0 or later is installed."""
    try:
        import numpy
    except ImportError:
        return False
    return hasattr(numpy, "bitwise_count")


def _array(hashes: Sequence[int]) -> Array:
    import numpy as np

    return np.fromiter(hashes, dtype=np.uint64, count=len(hashes))


def _keys(h: Array, chunk: Chunk) -> Array:
    import numpy as np

    return (h >> np.uint64(chunk.shift)) & np.uint64(chunk.mask)


def _kept(x: Array, t: int, earlier: tuple[Chunk, ...]) -> tuple[Array, Array]:
    """Which XORs are within t, and not found by an earlier chunk; their distances."""
    import numpy as np

    d = np.bitwise_count(x)
    ok = d <= t
    for chunk in earlier:
        ok &= np.bitwise_count(_keys(x, chunk)) > chunk.radius
    return ok, d


def _expand(a0: Array, la: Array, b0: Array, lb: Array) -> tuple[Array, Array]:
    """Every (a, b) position of units a0[u] + (0..la[u]) by b0[u] + (0..lb[u])."""
    import numpy as np

    count = la * lb
    single = count == 1  # one hash in each bucket: most units, at scale
    if single.all():
        return a0, b0
    many = np.flatnonzero(~single)
    a0m, lbm, count = a0[many], lb[many], count[many]
    unit = np.repeat(np.arange(len(count)), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    a = np.concatenate([a0[single], a0m[unit] + offset // lbm[unit]])
    return a, np.concatenate([b0[single], b0[many][unit] + offset % lbm[unit]])


def _split_large(a0: Array, la: Array, b0: Array, lb: Array, batch: int) -> tuple[Array, ...]:
    """Units of more than `batch` candidates cut into blocks of a's rows (one row at
    least: a unit is never more than `batch` or one bucket's candidates)."""
    import numpy as np

    large = la * lb > batch
    if not large.any():
        return a0, la, b0, lb
    pieces: list[tuple[int, int, int, int]] = []
    for start, rows, other, width in zip(
        *(v[large].tolist() for v in (a0, la, b0, lb)), strict=True
    ):
        step = max(1, batch // width)
        pieces += [(start + r, min(step, rows - r), other, width) for r in range(0, rows, step)]
    added = np.array(pieces, dtype=np.int64).T
    keep = ~large
    return tuple(
        np.concatenate([v[keep], extra]) for v, extra in zip((a0, la, b0, lb), added, strict=True)
    )


def _batches(units: tuple[Array, Array, Array, Array], batch: int) -> Iterator[tuple[Array, Array]]:
    """The candidates of the units (a0, la, b0, lb), `batch` or so at a time."""
    import numpy as np

    if len(units[0]) == 0:
        return
    a0, la, b0, lb = _split_large(*units, batch)
    ends = np.cumsum(la * lb)
    begin, done = 0, 0
    while begin < len(a0):
        end = max(begin + 1, int(np.searchsorted(ends, done + batch, "right")))
        yield _expand(a0[begin:end], la[begin:end], b0[begin:end], lb[begin:end])
        done, begin = int(ends[end - 1]), end


def _buckets(keys: Array) -> tuple[Array, Array, Array, Array]:
    """The sorted order of the keys and their buckets: each distinct key (ascending),
    where its run starts in that order, and how long the run is."""
    import numpy as np

    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, len(ordered)))
    return order, ordered[starts], starts, counts


def _finder(values: Array, width: int) -> tuple[Array, Any]:
    """The bucket keys to XOR probes with, and a function from keys to their index in
    `values` (sorted, distinct), -1 where absent: a table of 2^width slots for narrow
    chunks (int32: 16 MB at 22 bits), a binary search for wide ones."""
    import numpy as np

    if width <= DENSE_BITS:
        narrow = values.astype(np.int64)
        table = np.full(1 << width, -1, dtype=np.int32)
        table[narrow] = np.arange(len(values), dtype=np.int32)
        return narrow, lambda keys: table[keys]

    def search(keys: Array) -> Array:
        at = np.minimum(np.searchsorted(values, keys), len(values) - 1)
        return np.where(values[at] == keys, at, -1)

    return values, search


def _bucket_pairs(
    chunk: Chunk, values: Array, starts: Array, counts: Array
) -> Iterator[tuple[int, tuple[Array, Array, Array, Array]]]:
    """Each probe pattern and the bucket pairs it makes, as units (a0, la, b0, lb): each
    bucket with itself (probe 0), else with the bucket `probe` away where that one's
    key is the higher, i.e. where the probe's highest bit is clear in this bucket's key
    (so each pair of buckets once)."""
    import numpy as np

    both = counts > 1
    yield 0, (starts[both], counts[both], starts[both], counts[both])
    keys, find = _finder(values, chunk.width)
    kind = keys.dtype.type
    by_top: dict[int, list[int]] = {}
    for probe in patterns(chunk.width, chunk.radius)[1:]:
        by_top.setdefault(probe.bit_length() - 1, []).append(probe)
    for top, probes in by_top.items():
        lower = np.flatnonzero(((keys >> kind(top)) & kind(1)) == 0)
        base = keys[lower]
        for probe in probes:
            at = find(base ^ kind(probe))
            hit = np.flatnonzero(at >= 0)
            mine, theirs = lower[hit], at[hit]
            yield probe, (starts[mine], counts[mine], starts[theirs], counts[theirs])


def numpy_pairs(
    hashes: Sequence[int], t: int, chunks: tuple[Chunk, ...], batch: int = BATCH
) -> list[tuple[int, int, int]]:
    """near.near_pairs, in numpy, making at most about `batch` candidates at once."""
    import numpy as np

    h = _array(hashes)
    found: list[tuple[Array, Array, Array]] = []
    for n, chunk in enumerate(chunks):
        order, values, starts, counts = _buckets(_keys(h, chunk))
        ordered = h[order]  # a bucket's hashes side by side: candidates read nearby memory
        for probe, units in _bucket_pairs(chunk, values, starts, counts):
            for pa, pb in _batches(units, batch):
                if probe == 0:  # within a bucket: each pair once
                    pa, pb = pa[pa < pb], pb[pa < pb]
                ok, d = _kept(ordered[pa] ^ ordered[pb], t, chunks[:n])
                i, j = order[pa[ok]], order[pb[ok]]
                found.append((np.minimum(i, j), np.maximum(i, j), d[ok]))
    return _sorted(found)


def numpy_pairs_against(
    new: Sequence[int], old: Sequence[int], t: int, chunks: tuple[Chunk, ...], batch: int = BATCH
) -> list[tuple[int, int, int]]:
    """near.near_pairs_against, in numpy: per chunk, the stored keys sorted once, each
    new key's probes looked up by binary search, a block of queries at a time."""
    import numpy as np

    q, h = _array(new), _array(old)
    found: list[tuple[Array, Array, Array]] = []
    for n, chunk in enumerate(chunks):
        keys = _keys(h, chunk)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        query = _keys(q, chunk)
        probes = np.array(patterns(chunk.width, chunk.radius), dtype=np.uint64)
        block = max(1, batch // len(probes))
        for first in range(0, len(q), block):
            asked = (query[first : first + block, None] ^ probes[None, :]).ravel()
            low = np.searchsorted(ordered, asked, "left")
            length = np.searchsorted(ordered, asked, "right") - low
            hit = np.flatnonzero(length)
            who = first + hit // len(probes)
            for i, pb in _batches((who, np.ones_like(who), low[hit], length[hit]), batch):
                j = order[pb]
                ok, d = _kept(q[i] ^ h[j], t, chunks[:n])
                found.append((i[ok], j[ok], d[ok]))
    return _sorted(found)


def _sorted(found: list[tuple[Array, Array, Array]]) -> list[tuple[int, int, int]]:
    import numpy as np

    if not found:
        return []
    i, j, d = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort((j, i))
    return list(
        zip(i[order].tolist(), j[order].tolist(), d[order].astype(np.int64).tolist(), strict=True)
    )
