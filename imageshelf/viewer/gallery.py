"""The gallery's pages: the records matching a filter, in one of three orders, a page at
a time after a cursor. Key order is the store's own: a page costs one seek and its own
records, at any size. Size and label order read every matching record once per page,
keeping only the page's worth (memory stays flat; about a second per 100,000 records).
A filter may name findings (`leaks=true`): the keys they select (`Chosen`) come from
the version's audit (quality.py); `leaks=true` alone pages through those keys, one
lookup each, never a scan of the store.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..read.columnar import select_columnar
from ..read.query import select
from ..store import ImageStore, Record

SORTS = ("key", "size", "label")
PAGE = 60  # thumbnails per page


class CursorError(ValueError):
    """A page cursor that this gallery did not write."""


def sort_value(record: Record, sort: str) -> tuple[Any, ...]:
    """Where `record` falls in `sort` order: a tuple ending with its key (unique)."""
    if sort == "size":
        return (record.info.size, record.key)
    if sort == "label":
        label = record.metadata.get("label")
        return (label is None, "" if label is None else str(label), record.key)
    return (record.key,)


def encode_cursor(record: Record, sort: str) -> str:
    return orjson.dumps(list(sort_value(record, sort))).decode()


def decode_cursor(text: str, sort: str) -> tuple[Any, ...]:
    try:
        value = tuple(orjson.loads(text))
    except (orjson.JSONDecodeError, TypeError):
        raise CursorError("not a page cursor") from None
    shapes = {"key": (str,), "size": (int, str), "label": (bool, str, str)}[sort]
    if len(value) != len(shapes) or not all(
        type(v) is t for v, t in zip(value, shapes, strict=True)
    ):
        raise CursorError(f"not a page cursor of the {sort} order")
    return value


@dataclass(frozen=True)
class Chosen:
    """The keys finding conditions select (`leaks=true`): those of `keys` (sorted) if
    `inside`, else every key but those (`dark=false`)."""

    keys: tuple[str, ...]
    members: frozenset[str]
    inside: bool

    def holds(self, key: str) -> bool:
        return (key in self.members) == self.inside


@dataclass
class Page:
    records: list[Record]
    next: str | None  # the cursor of the page after this one, None on the last


def page(
    store: ImageStore,
    where: list[str],
    sort: str,
    after: str | None,
    size: int = PAGE,
    chosen: Chosen | None = None,
) -> Page:
    """The `size` records matching `where` (and `chosen`) that follow the cursor `after`
    in `sort` order. QueryError for a filter that cannot be read; CursorError for a bad
    cursor."""
    found = list(_following(store, where, sort, after, size + 1, chosen))
    records = found[:size]
    more = len(found) > size
    return Page(records, encode_cursor(records[-1], sort) if more else None)


def _matching(
    store: ImageStore,
    where: list[str],
    chosen: Chosen | None,
    after: str | None = None,
    before: str | None = None,
) -> Iterator[Record]:
    """The records matching `where` and `chosen` in key order (after `after`), or
    nearest first before `before`."""
    if chosen is not None and chosen.inside and not where:
        return _listed(store, chosen.keys, after, before)
    keys = matching_keys(store, where)
    if keys is not None:
        found = _listed(store, keys, after, before)
    else:
        found = select(store, where or None, after=after, before=before)
    return found if chosen is None else (r for r in found if chosen.holds(r.key))


_ANSWERS: dict[tuple[Any, ...], tuple[str, ...]] = {}  # the last few filters' keys


def matching_keys(store: ImageStore, where: list[str]) -> tuple[str, ...] | None:
    """Every key matching `where`, sorted, from the catalog's columnar files; None where
    they cannot answer (no filter, no DuckDB, a stale file, a condition only the records
    answer: read/columnar.py). Kept for the last few filters of each content: the next
    page, and the count beside the box, cost a lookup."""
    if not where:
        return None
    asked = (str(store.path), tuple(p.content_digest for p in store.parts), tuple(where))
    if asked not in _ANSWERS:
        found = select_columnar(store, where)
        if found is None:
            return None
        keys = [key for part in store.parts for key in found.keys[part.name]]
        if len(_ANSWERS) >= 4:
            _ANSWERS.pop(next(iter(_ANSWERS)))
        _ANSWERS[asked] = tuple(sorted(keys)) if len(store.parts) > 1 else tuple(keys)
    return _ANSWERS[asked]


def _listed(
    store: ImageStore, keys: tuple[str, ...], after: str | None, before: str | None
) -> Iterator[Record]:
    if before is not None:
        for at in range(bisect.bisect_left(keys, before) - 1, -1, -1):
            yield store.record(keys[at])
        return
    start = 0 if after is None else bisect.bisect_right(keys, after)
    for at in range(start, len(keys)):
        yield store.record(keys[at])


def _following(
    store: ImageStore,
    where: list[str],
    sort: str,
    after: str | None,
    count: int,
    chosen: Chosen | None = None,
) -> Iterator[Record]:
    if sort == "key":
        start = decode_cursor(after, sort)[0] if after else None
        return itertools.islice(_matching(store, where, chosen, after=start), count)
    cursor = decode_cursor(after, sort) if after else None
    candidates = (
        r for r in _matching(store, where, chosen) if cursor is None or sort_value(r, sort) > cursor
    )
    return iter(heapq.nsmallest(count, candidates, key=lambda r: sort_value(r, sort)))


def neighbours(
    store: ImageStore, where: list[str], sort: str, record: Record, chosen: Chosen | None = None
) -> tuple[str | None, str | None]:
    """The keys before and after `record` among the records matching `where` (and
    `chosen`), in `sort` order (None at either end)."""
    here = sort_value(record, sort)
    nxt = next(_following(store, where, sort, encode_cursor(record, sort), 1, chosen), None)
    if sort == "key":
        previous = next(_matching(store, where, chosen, before=record.key), None)
    else:
        earlier = (r for r in _matching(store, where, chosen) if sort_value(r, sort) < here)
        best = heapq.nlargest(1, earlier, key=lambda r: sort_value(r, sort))
        previous = best[0] if best else None
    return (previous.key if previous else None, nxt.key if nxt else None)
