"""A store's images assessed part by part, each part's assessments kept in the cache by
its content digest and the thresholds: an audit reads only the parts it has not seen.

Parts are immutable and named by content (FORMAT.md), so what an audit found of a part
holds as long as its digest and the thresholds do. In a sharded store an add of 1% is a
new shard: the audit reads 1% of the records, not all of them (at 20,000 images, the
records' read and assessment were 0.36 s of a 0.54 s audit). A single-file store is one
part, new at every change: read whole, as before.

An entry is `{"version", "count", "images": [[key, sha256, split, issues, phash,
measured, dhash], ...]}`, issues a bit per findings.ISSUES name, each hash 16 hex digits
or null.
A cache is never the truth (state/cache.py): an entry that is not exactly that shape,
or that holds another count of images than its part, is read as none and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from ..project.params import QualityParams
from ..state import cache
from ..store import ImageStore
from .findings import ISSUES, Assessed, assessed, rows_from_records

VERSION = 2  # 2: the dHash beside the pHash
FOLDER = "quality/parts"
_BITS = {kind: 1 << n for n, kind in enumerate(ISSUES)}
_MOST_BITS = 1 << len(_BITS)


def store_assessed(store: ImageStore, params: QualityParams, remember: bool) -> Iterator[Assessed]:
    """Every image of `store`, assessed with `params`, part by part; the parts not in the
    cache are read, and with `remember`, kept there (and the entries of parts the store
    no longer holds dropped)."""
    tag = params_tag(params)
    names = []
    for part in store.parts:
        name = f"{FOLDER}/{part.content_digest}-{tag}.json"
        names.append(name)
        found = decoded(cache.load(name), part.count)
        if found is None:
            records = store.part(part.name).records()
            found = list(assessed(rows_from_records(records), params))
            if remember:
                cache.save(name, encoded(found))
        yield from found
    if remember:
        _keep_only(names)


def params_tag(params: QualityParams) -> str:
    """16 hex digits naming the thresholds an assessment was made with."""
    text = json.dumps(dataclasses.asdict(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encoded(images: list[Assessed]) -> dict[str, Any]:
    rows = [
        [key, sha, split, sum(_BITS[i] for i in issues), _hex(ph), m, _hex(dh)]
        for key, sha, split, issues, ph, m, dh in images
    ]
    return {"version": VERSION, "count": len(rows), "images": rows}


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:016x}"


def _int(text: Any) -> int | None:
    """A hash from its 16 hex digits; -1 for anything else (None stays None)."""
    if text is None:
        return None
    if not (type(text) is str and len(text) == 16):
        return -1
    try:
        return int(text, 16)
    except ValueError:
        return -1


def decoded(obj: Any, count: int) -> list[Assessed] | None:
    """The assessments of an entry (parsed), or None for anything but what `encoded`
    makes of a part of `count` images."""
    if not (isinstance(obj, dict) and obj.get("version") == VERSION):
        return None
    rows = obj.get("images")
    if not (isinstance(rows, list) and len(rows) == count == obj.get("count")):
        return None
    found = []
    for row in rows:
        image = _image(row)
        if image is None:
            return None
        found.append(image)
    return found


def _image(row: Any) -> Assessed | None:
    if not (type(row) is list and len(row) == 7):
        return None
    key, sha, split, bits, phash, measured, dhash = row
    if not (type(key) is str and type(sha) is str and len(sha) == 64):
        return None
    if not (split is None or type(split) is str) or type(measured) is not bool:
        return None
    if not (type(bits) is int and 0 <= bits < _MOST_BITS):
        return None
    phash, dhash = _int(phash), _int(dhash)
    if phash == -1 or dhash == -1:
        return None
    issues = frozenset(kind for kind, bit in _BITS.items() if bits & bit)
    return Assessed(key, sha, split, issues, phash, measured, dhash)


def _keep_only(names: list[str]) -> None:
    """Drop the entries of other parts or thresholds: a single-file store is a new part
    at every change, and an entry is about 150 bytes an image."""
    folder = cache.entry(FOLDER, whole=True)  # never a link: what is deleted is ours
    if folder is None or not folder.is_dir():
        return
    kept = {name.rsplit("/", 1)[1] for name in names}
    for path in folder.glob("*.json"):
        if path.name not in kept:
            path.unlink(missing_ok=True)
