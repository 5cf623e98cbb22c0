"""How multi-index hashing splits 64-bit hashes for a threshold t: the chunks, how far
each chunk's buckets are probed, and the probes themselves.

Split 64 bits into k chunks and give chunk i a radius r_i with sum(r_i + 1) > t. If two
hashes differ in at most t bits, some chunk differs in at most its r_i bits: were every
chunk r_i + 1 bits or more apart, the whole would be sum(r_i + 1) > t apart (the
pigeonhole principle). So probing each chunk's buckets within r_i bits finds every pair,
and each candidate is then checked on all 64 bits.

Which k: the one the cost below says is cheapest for the number of hashes and the
engine. Each probe pattern costs a pass over the buckets (or the queries), each
candidate a check, each chunk an index of every hash; wide chunks have few candidates a
bucket but many patterns. For t = 8 and 1,000,000 hashes that is 3 chunks of 22, 21 and
21 bits probed within 2 bits (718 patterns in all, about 140 million candidates); 4
chunks of 16 bits would check about 30 times as many. Among 20,000, 4 or 5 chunks of 16
or 13 bits are 2 to 4 times faster than 3.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from math import comb
from typing import NamedTuple

BITS = 64
# What a candidate checked and a hash put into a chunk's index (a sort, a dict) cost, in
# bucket probes, per engine: fitted to self-joins of 20,000 and 100,000 random hashes at
# t = 4, 8 and 12 with 2 to 8 chunks (numpy: 6 ns a probe, 19 a candidate, 126 a hash
# indexed; pure Python: 50, 44 and 230 ns; Python's candidate weight lowered to 0.5,
# which ranked its measured plans better). The plan picked was the fastest measured in
# 10 of the 12 cases; 1.33x the fastest in one (pure Python, 100,000 hashes, t = 4), and
# 0.06 s against 0.01 s in the other.
COSTS = {"numpy": (3.0, 20.0), "python": (0.5, 5.0)}


class Chunk(NamedTuple):
    """Bits shift .. shift + width - 1 of the hash, probed within `radius` bits."""

    shift: int
    width: int
    radius: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def key(self, value: int) -> int:
        return (value >> self.shift) & self.mask


def split(t: int, k: int) -> tuple[Chunk, ...]:
    """k chunks covering 64 bits, as even as possible, the wider first, with radii adding
    up to t + 1 - k (each at least 0; the wider chunks take the larger radii), so that
    sum(radius + 1) > t."""
    widths = [BITS // k + (1 if i < BITS % k else 0) for i in range(k)]
    spare = max(0, t + 1 - k)
    radii = [spare // k + (1 if i < spare % k else 0) for i in range(k)]
    shifts = [sum(widths[:i]) for i in range(k)]
    return tuple(Chunk(s, w, r) for s, w, r in zip(shifts, widths, radii, strict=True))


def probes(width: int, radius: int) -> int:
    """How many patterns probe a chunk of `width` bits within `radius` bits."""
    return sum(comb(width, i) for i in range(radius + 1))


def cost(
    chunks: tuple[Chunk, ...], stored: int, queries: int | None = None, engine: str = "numpy"
) -> float:
    """The work of a search, in probes: a self-join of `stored` hashes (queries None),
    or `queries` new hashes against `stored` ones."""
    candidate_cost, index_cost = COSTS[engine]
    total = index_cost * stored * len(chunks)
    for chunk in chunks:
        buckets = 2.0**chunk.width
        if queries is None:  # each pattern pairs every bucket with one other
            passes, candidates = min(stored, buckets), stored * stored / (2 * buckets)
        else:  # each pattern is one lookup per query
            passes, candidates = queries, queries * stored / buckets
        total += probes(chunk.width, chunk.radius) * (passes + candidate_cost * candidates)
    return total


@lru_cache(maxsize=256)
def plan(
    t: int, stored: int, queries: int | None = None, engine: str = "numpy"
) -> tuple[Chunk, ...]:
    """The cheapest chunks for threshold t (0..64) in `engine` (numpy, python): a
    self-join of `stored` hashes, or `queries` new ones against `stored`. More than
    t + 1 chunks never helps (each has radius 0 already, and narrower chunks only hold
    more candidates)."""
    if not 0 <= t <= BITS:
        raise ValueError(f"a Hamming threshold is 0 to {BITS} bits (got {t})")
    options = [split(t, k) for k in range(1, min(t + 1, BITS) + 1)]
    return min(options, key=lambda c: (cost(c, stored, queries, engine), len(c)))


@lru_cache(maxsize=64)
def patterns(width: int, radius: int) -> tuple[int, ...]:
    """Every value of `width` bits with at most `radius` ones, 0 first: a bucket's key
    XOR a pattern is a bucket within `radius` bits of it."""
    out = [0]
    for ones in range(1, radius + 1):
        for bits in combinations(range(width), ones):
            out.append(sum(1 << b for b in bits))
    return tuple(out)


def found_before(x: int, earlier: tuple[Chunk, ...]) -> bool:
    """Whether a pair whose hashes XOR to x is found in a chunk before this one (within
    that chunk's radius there): each pair is kept in the first chunk that finds it
    only, so no pair is listed twice and no set of pairs seen is needed."""
    return any(((x >> c.shift) & c.mask).bit_count() <= c.radius for c in earlier)
