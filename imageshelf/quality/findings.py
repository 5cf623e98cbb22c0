"""What a store's records say about its images, with no image decoded: exact duplicates
(the same SHA-256), near duplicates (pHashes within params' `near_threshold` bits,
chained into groups), leaks (an exact or near pair across two splits) and the issue
types, each from an image's width, height and `props` (images/properties.py computes
them once, from the bytes, when pack stores the image).

The issue types and their order (the thresholds are params.yaml's `quality:`, chosen
on planted corpora: odd_size and low_information separate 8x8 and flat images from every
photograph, the others match or beat cleanvision's recall and precision there):

- `odd_size`: sqrt(width x height) below `odd_size` px; `odd_aspect`: short side / long
  side below `odd_aspect`. From the record's size alone, so they hold for any image.
- `unreadable`: props that say why the pixels could not be decoded (`error`): nothing
  else is measured. Images whose props are missing or incomplete (a store packed before
  properties, or by another version) are counted as `no_properties`, never flagged.
- `grayscale`: the file's mode is a gray one (L, I;16...): a fact of the file, flagged
  whatever else is.
- An odd_size image is measured no further: an 8x8 image's luma and blur mean nothing.
- `low_information`: luma std / min(mean, 1 - mean) (floor 0.02) below
  `low_information`: a flat image, which is then nothing else (not dark, light, grayscale
  or blurry: a blank image is all of those, and none is worth saying).
- `dark`: the 99th percentile of luma below `dark`; `light`: the 5th above `light`. A
  dark or light image is not also called grayscale or blurry by its pixels.
- `grayscale` (by its pixels): no pixel's channels more than `grayscale` apart.
- `blurry`: Laplacian std / luma std below `blurry_sharpness` and the std of edges below
  `blurry_edges` (either alone flags sharp low-contrast photographs); not for an
  odd_aspect image (a 10:1 strip reduced to 64 px measures as blurred).

Near duplicates are searched among distinct contents (SHA-256), one pHash each, leaving
out odd_size, low_information, odd_aspect and unreadable images (a blank image's pHash is
noise: every blank image is near every other; a strip's, a line of text, is squashed
until different lines look alike). Exact copies are exact duplicates, never a near
pair; a near group lists every key of its contents, exact copies included.

The search is the only part that grows faster than the store: `find(rows, params,
previous)` searches only the contents not in `previous` (the NearState the last run
returned) against the others, and keeps its pairs among the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ShelfError
from ..project.params import QualityParams
from .near import near_pairs, near_pairs_against

if TYPE_CHECKING:
    from ..store import ImageStore
    from ..store.values import Record

ISSUES = (
    "odd_size",
    "odd_aspect",
    "low_information",
    "dark",
    "light",
    "grayscale",
    "blurry",
    "unreadable",
)
GROUPS = ("exact_duplicates", "near_duplicates", "leaks")
KINDS = ISSUES + GROUPS  # what keys_of (and --where) names
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
MEASURES = ("mean", "p05", "p99", "contrast", "sharpness", "edges", "chroma")

REVIEWED_PARTS = ("applied", "stale", "unmatched")  # Reviewed's lists of decisions

ShaPair = tuple[str, str, int]  # two SHA-256s (the lower first) and their pHash distance


class UnknownFinding(ShelfError):
    """A finding's name that is none of KINDS."""


class Row(NamedTuple):
    """What the findings read of one image: its record's key, SHA-256, split (None: no
    split), width, height and props (None: not computed)."""

    key: str
    sha256: str
    split: str | None
    width: int
    height: int
    props: Mapping[str, Any] | None


def rows_from_records(records: Iterable[Record]) -> Iterator[Row]:
    """A Row per record; a record without `props` gives props None."""
    for record in records:
        info = record.info
        split = record.effective_split
        yield Row(record.key, info.sha256, split, info.width, info.height, record.props)


def rows_from_store(store: ImageStore) -> Iterator[Row]:
    """A Row per image of the store, in key order, read from its records only."""
    return rows_from_records(store.records())


class Assessment(NamedTuple):
    issues: frozenset[str]
    phash: int | None  # the pHash to search for near duplicates; None: left out
    measured: bool  # False: no props (or incomplete ones): counted as no_properties
    dhash: int | None = None  # the second opinion on a near pair (None: none asked)


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _phash(value: Any) -> int | None:
    if isinstance(value, str) and len(value) == 16:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _by_pixels(props: Mapping[str, Any], params: QualityParams, strip: bool) -> list[str]:
    """The issue types the luma and blur measures give, in their order of precedence."""
    mean, p05, p99, contrast, sharpness, edges, chroma = (props[m] for m in MEASURES)
    if contrast / max(min(mean, 1 - mean), 0.02) < params.low_information:
        return ["low_information"]
    found = []
    if p99 < params.dark:
        found.append("dark")
    if p05 > params.light:
        found.append("light")
    if found:
        return found
    if chroma <= params.grayscale:
        found.append("grayscale")
    if not strip and sharpness < params.blurry_sharpness and edges < params.blurry_edges:
        found.append("blurry")
    return found


def assess(row: Row, params: QualityParams) -> Assessment:
    """One image's issue types (the module's docstring: their order) and the pHash it is
    searched with."""
    width, height = row.width, row.height
    found = []
    if width * height < params.odd_size**2:
        found.append("odd_size")
    if min(width, height) < params.odd_aspect * max(width, height):
        found.append("odd_aspect")
    props = row.props
    if not isinstance(props, Mapping):
        return Assessment(frozenset(found), None, False)
    if "error" in props:
        return Assessment(frozenset([*found, "unreadable"]), None, True)
    if not all(_number(props.get(m)) for m in MEASURES):
        return Assessment(frozenset(found), None, False)
    if props.get("mode") in GRAY_MODES:
        found.append("grayscale")
    if "odd_size" in found:
        return Assessment(frozenset(found), None, True)
    found += _by_pixels(props, params, strip="odd_aspect" in found)
    # A flat image's pHash is noise, and a strip's (a text line: 120x32) is squashed to
    # 32x32 until different lines of text look alike (the demo's eight words: pHash and
    # dHash 0 to 6 bits apart): neither is searched, only matched exactly.
    unsearched = "low_information" in found or "odd_aspect" in found
    searched = None if unsearched else _phash(props.get("phash"))
    second = None if searched is None else _phash(props.get("dhash"))
    return Assessment(frozenset(found), searched, True, second)


class Assessed(NamedTuple):
    """One image as the findings count it: its key, content, split and assessment. The
    unit parts.py keeps per store part, so an unchanged part is never read again."""

    key: str
    sha256: str
    split: str | None
    issues: frozenset[str]
    phash: int | None
    measured: bool
    dhash: int | None = None


def assessed(rows: Iterable[Row], params: QualityParams) -> Iterator[Assessed]:
    """Each row, assessed with `params`."""
    for row in rows:
        issues, phash, measured, dhash = assess(row, params)
        yield Assessed(row.key, row.sha256, row.split, issues, phash, measured, dhash)


@dataclass(frozen=True)
class NearState:
    """What the next run needs to search only what is new: the pHash of every content
    searched (by SHA-256) and the near pairs among them, at `threshold`."""

    threshold: int
    hashes: Mapping[str, int]
    pairs: tuple[ShaPair, ...]

    VERSION = 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready object, the same for the same state."""
        return {
            "version": self.VERSION,
            "threshold": self.threshold,
            "hashes": {sha: f"{self.hashes[sha]:016x}" for sha in sorted(self.hashes)},
            "pairs": [list(pair) for pair in self.pairs],
        }

    @classmethod
    def from_json(cls, obj: Any) -> NearState | None:
        """The state to_json wrote; None for anything else (a damaged or older file
        costs a full search, never a wrong finding): every pair's distance is checked."""
        if not (isinstance(obj, dict) and obj.get("version") == cls.VERSION):
            return None
        threshold, hashes, pairs = obj.get("threshold"), obj.get("hashes"), obj.get("pairs")
        if type(threshold) is not int or not isinstance(hashes, dict):
            return None
        if not isinstance(pairs, list):
            return None
        values = {sha: _phash(value) for sha, value in hashes.items()}
        if not all(isinstance(sha, str) for sha in values) or None in values.values():
            return None
        checked = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 3):
                return None
            a, b, d = pair
            if not (a in values and b in values and a < b and type(d) is int):
                return None
            if d != (values[a] ^ values[b]).bit_count() or d > threshold:  # type: ignore[operator]
                return None
            checked.append((a, b, d))
        return cls(threshold, values, tuple(checked))  # type: ignore[arg-type]


class NearGroup(NamedTuple):
    """Images near one another, chained: every key (exact copies included), and the
    near pairs that join them, one per two contents, each named by its content's first
    key: (key, key, distance)."""

    keys: tuple[str, ...]
    pairs: tuple[tuple[str, str, int], ...]


class Leak(NamedTuple):
    """Two images, the same or near, in two splits (split_a before split_b by name)."""

    key_a: str
    split_a: str
    key_b: str
    split_b: str
    kind: str  # exact | near
    distance: int  # bits apart; 0 for exact copies

    @property
    def splits(self) -> str:
        """The split pair's name in metrics: "test-train"."""
        return f"{self.split_a}-{self.split_b}"


class Reviewed(NamedTuple):
    """What the reviewed file did to an audit's findings (quality/reviewed.py): its
    path, and its decisions, JSON-ready with their line, as `applied` (a finding set
    aside), `stale` (naming a key the store does not hold) or `unmatched` (neither: what
    they name is not found now). A stale decision can also be applied."""

    file: str | None = None
    applied: tuple[dict[str, Any], ...] = ()
    stale: tuple[dict[str, Any], ...] = ()
    unmatched: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Findings:
    """Everything found, named by key, every list sorted: the same store gives the same
    findings, whatever order its rows came in."""

    threshold: int
    images: Mapping[str | None, int]  # images per split (None: no split)
    no_properties: Mapping[str | None, int]  # of those, the ones without props
    exact: tuple[tuple[str, ...], ...]  # keys of each content stored more than once
    near: tuple[NearGroup, ...]
    leaks: tuple[Leak, ...]
    flagged: Mapping[str, tuple[str, ...]]  # per issue type (ISSUES), its keys
    splits: Mapping[str, str | None]  # the split of every key a finding names
    state: NearState  # for the next run's `find(..., previous=)`
    reviewed: Reviewed = Reviewed()  # the decisions set aside (none: nothing reviewed)

    def keys_of(self, kind: str) -> set[str]:
        """The keys a finding names: an issue type, exact_duplicates, near_duplicates
        (exact copies of a near image included) or leaks (either side of a leak)."""
        if kind in self.flagged:
            return set(self.flagged[kind])
        if kind == "exact_duplicates":
            return {key for group in self.exact for key in group}
        if kind == "near_duplicates":
            return {key for group in self.near for key in group.keys}
        if kind == "leaks":
            return {key for leak in self.leaks for key in (leak.key_a, leak.key_b)}
        raise UnknownFinding(f"no finding is called {kind!r}; the findings: {', '.join(KINDS)}")

    def _counts(self, split: str | None, every: bool) -> dict[str, int]:
        def images(keys: Iterable[str]) -> int:
            return sum(1 for key in keys if every or self.splits[key] == split)

        def groups(groups: Iterable[Iterable[str]]) -> int:
            return sum(1 for group in groups if images(group))

        def total(per_split: Mapping[str | None, int]) -> int:
            return sum(per_split.values()) if every else per_split.get(split, 0)

        return {
            "images": total(self.images),
            "exact_groups": groups(self.exact),
            "exact_duplicates": images(self.keys_of("exact_duplicates")),
            "near_groups": groups(group.keys for group in self.near),
            "near_duplicates": images(self.keys_of("near_duplicates")),
            "leaks": images(self.keys_of("leaks")),
            **{kind: images(self.flagged[kind]) for kind in ISSUES},
            "no_properties": total(self.no_properties),
        }

    def metrics(self) -> dict[str, Any]:
        """Counts for `dvc metrics diff`: images per finding for the whole store
        ("total") and per split ("splits"; a group counts in each split it reaches),
        the leaked pairs per split pair ("leak_pairs": every pair of the store's
        splits, by name, 0 where none), and the reviewed decisions that set a finding
        aside ("reviewed": decisions, not images, so that `dvc metrics diff` moves by
        one when a line is added to the file)."""
        names = sorted(split for split in self.images if split is not None)
        pairs = {f"{a}-{b}": 0 for n, a in enumerate(names) for b in names[n + 1 :]}
        for leak in self.leaks:
            pairs[leak.splits] += 1
        return {
            "total": self._counts(None, every=True),
            "splits": {split: self._counts(split, every=False) for split in names},
            "leak_pairs": pairs,
            "reviewed": len(self.reviewed.applied),
        }

    def report(self) -> dict[str, Any]:
        """Every finding with its keys, JSON-ready, sorted."""
        return {
            "near_threshold": self.threshold,
            "exact_duplicates": [list(group) for group in self.exact],
            "near_duplicates": [
                {"keys": list(g.keys), "pairs": [list(p) for p in g.pairs]} for g in self.near
            ],
            "leaks": [leak._asdict() for leak in self.leaks],
            "issues": {kind: list(self.flagged[kind]) for kind in ISSUES},
            "reviewed": {
                "file": self.reviewed.file,
                **{part: list(getattr(self.reviewed, part)) for part in REVIEWED_PARTS},
            },
        }


class _Tally:
    """One pass over the assessed images, keeping what the findings need."""

    def __init__(self) -> None:
        self.images: Counter[str | None] = Counter()
        self.unmeasured: Counter[str | None] = Counter()
        self.flagged: dict[str, list[str]] = {kind: [] for kind in ISSUES}
        self.split_of: dict[str, str | None] = {}
        self.first: dict[str, str] = {}  # SHA-256: the first key seen with it
        self.copies: dict[str, list[str]] = {}  # SHA-256: the other keys
        # SHA-256: (its lowest key, pHash, dHash)
        self.searched: dict[str, tuple[str, int, int | None]] = {}

    def add(self, image: Assessed) -> None:
        key, sha256, split, issues, phash, measured, dhash = image
        if key in self.split_of:
            raise ValueError(f"the key {key!r} is in the rows twice")
        self.split_of[key] = split
        self.images[split] += 1
        if not measured:
            self.unmeasured[split] += 1
        for issue in issues:
            self.flagged[issue].append(key)
        if sha256 in self.first:
            self.copies.setdefault(sha256, []).append(key)
        else:
            self.first[sha256] = key
        if phash is not None:
            known = self.searched.get(sha256)
            if known is None or key < known[0]:  # the same whatever the rows' order
                self.searched[sha256] = (key, phash, dhash)

    def keys(self, sha: str) -> list[str]:
        return sorted([self.first[sha], *self.copies.get(sha, ())])


def _near(hashes: Mapping[str, int], t: int, previous: NearState | None) -> list[ShaPair]:
    """The near pairs among the contents: all searched, or, given the last run's state
    at the same threshold, its pairs among the contents whose pHash it had, plus the
    other contents searched among themselves and against those."""
    shas = sorted(hashes)
    if previous is None or previous.threshold != t:
        values = [hashes[sha] for sha in shas]
        return [(shas[i], shas[j], d) for i, j, d in near_pairs(values, t)]
    known = previous.hashes
    same = [sha for sha in shas if known.get(sha) == hashes[sha]]
    new = [sha for sha in shas if known.get(sha) != hashes[sha]]
    kept = set(same)
    pairs = [pair for pair in previous.pairs if pair[0] in kept and pair[1] in kept]
    if not new:
        return sorted(pairs)
    values = [hashes[sha] for sha in new]
    pairs += [(new[i], new[j], d) for i, j, d in near_pairs(values, t)]
    for i, j, d in near_pairs_against(values, [hashes[sha] for sha in same], t):
        a, b = new[i], same[j]
        pairs.append((a, b, d) if a < b else (b, a, d))
    return sorted(pairs)


def _agreeing(
    pairs: list[ShaPair], searched: Mapping[str, tuple[str, int, int | None]], most: int
) -> list[ShaPair]:
    """The near pairs whose dHashes agree too, within `most` bits: a second opinion,
    since two different pictures whose pHashes happen to agree rarely agree there (at
    20,000 images, one pair of different scenes 8 pHash bits apart was 23 dHash bits
    apart, every planted copy within 8 pHash bits at most 20). A content without a
    dHash is taken on its pHash alone. The search's state keeps every pHash pair."""
    kept = []
    for pair in pairs:
        first, second = searched[pair[0]][2], searched[pair[1]][2]
        if first is None or second is None or (first ^ second).bit_count() <= most:
            kept.append(pair)
    return kept


def chained(pairs: Iterable[tuple[str, str, int]]) -> dict[str, str]:
    """Each end of `pairs` and the least end of the group the pairs chain it into
    (union-find: a near b and b near c is one group)."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b, _ in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: root(node) for node in list(parent)}


def _near_groups(pairs: list[ShaPair], tally: _Tally) -> list[NearGroup]:
    """Contents joined by near pairs, as keys."""
    roots = chained(pairs)
    members: dict[str, list[str]] = {}
    for sha, top in roots.items():
        members.setdefault(top, []).extend(tally.keys(sha))
    joined: dict[str, list[tuple[str, str, int]]] = {}
    for a, b, d in pairs:
        ka, kb = tally.keys(a)[0], tally.keys(b)[0]
        joined.setdefault(roots[a], []).append((min(ka, kb), max(ka, kb), d))
    return sorted(
        NearGroup(tuple(sorted(keys)), tuple(sorted(joined[top]))) for top, keys in members.items()
    )


def _leak(
    a: str, b: str, kind: str, distance: int, split_of: Mapping[str, str | None]
) -> Leak | None:
    sa, sb = split_of[a], split_of[b]
    if sa is None or sb is None or sa == sb:
        return None
    return Leak(a, sa, b, sb, kind, distance) if sa < sb else Leak(b, sb, a, sa, kind, distance)


def _leaks(exact: list[tuple[str, ...]], pairs: list[ShaPair], tally: _Tally) -> list[Leak]:
    """Every exact or near pair of keys in two different splits."""
    found: list[Leak | None] = []
    for group in exact:
        found += [
            _leak(a, b, "exact", 0, tally.split_of)
            for n, a in enumerate(group)
            for b in group[n + 1 :]
        ]
    for sa, sb, d in pairs:
        found += [
            _leak(a, b, "near", d, tally.split_of) for a in tally.keys(sa) for b in tally.keys(sb)
        ]
    return sorted((leak for leak in found if leak is not None), key=lambda x: (x.splits, *x))


def find(rows: Iterable[Row], params: QualityParams, previous: NearState | None = None) -> Findings:
    """The findings of every row (each image once, by key). With `previous`, the state of
    the last run's Findings, only contents it had not searched are searched (an add of
    1% costs about 1% of a full search, plus a pass over the rows); the findings are
    those of a full run all the same."""
    return find_assessed(assessed(rows, params), params, previous)


def find_assessed(
    images: Iterable[Assessed], params: QualityParams, previous: NearState | None = None
) -> Findings:
    """`find`, of images assessed already (with the same `params`)."""
    tally = _Tally()
    for image in images:
        tally.add(image)
    hashes = {sha: value for sha, (_, value, _) in tally.searched.items()}
    searched = _near(hashes, params.near_threshold, previous)
    pairs = _agreeing(searched, tally.searched, params.near_dhash)
    exact = sorted(tuple(tally.keys(sha)) for sha in tally.copies)
    near = _near_groups(pairs, tally)
    flagged = {kind: tuple(sorted(keys)) for kind, keys in tally.flagged.items()}
    named = {key for keys in (*flagged.values(), *exact) for key in keys}
    named.update(key for group in near for key in group.keys)
    return Findings(
        threshold=params.near_threshold,
        images=dict(tally.images),
        no_properties=dict(tally.unmeasured),
        exact=tuple(exact),
        near=tuple(near),
        leaks=tuple(_leaks(exact, pairs, tally)),
        flagged=flagged,
        splits={key: tally.split_of[key] for key in sorted(named)},
        state=NearState(params.near_threshold, hashes, tuple(searched)),
    )
