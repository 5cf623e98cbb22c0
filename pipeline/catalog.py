"""The catalog: every record of the store (no image bytes), one JSON line per image.

Pack writes it beside the store and DVC versions it with the store, so two versions of
the dataset can be compared (`python -m pipeline diff`) by fetching two small files
instead of two whole stores. Lines are sorted by key and canonical, so the same store
always gives the same catalog, byte for byte.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import write_manifest
from .store import ImageStore, Record

CATALOG = "data/catalog.jsonl"


def write_catalog(store: ImageStore, path: Path) -> bool:
    """Bring the catalog in line with the store; True if the file changed.

    Written beside, then renamed into place, and only when its content differs, so an
    unchanged store leaves the catalog untouched.
    """
    temp = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        write_manifest(temp, store.records())
        if path.exists() and filecmp.cmp(temp, path, shallow=False):
            return False
        os.replace(temp, path)
        return True
    finally:
        temp.unlink(missing_ok=True)


def catalog_digest(lines: Iterable[Record]) -> tuple[int, str]:
    """Count and content digest of records, computed as the store's header does."""
    content = hashlib.sha256()
    count = 0
    for record in lines:
        content.update(record.key.encode("utf-8") + b"\0" + record.encode() + b"\n")
        count += 1
    return count, content.hexdigest()


# ------------------------------------------------------------------------ diff

@dataclass
class CatalogDiff:
    added: list[Record] = field(default_factory=list)
    removed: list[Record] = field(default_factory=list)
    changed: list[tuple[Record, Record]] = field(default_factory=list)  # bytes differ
    relabeled: list[tuple[Record, Record]] = field(default_factory=list)  # metadata only

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.relabeled)

    def to_json(self) -> dict[str, Any]:
        def entry(record: Record) -> dict[str, Any]:
            return {"key": record.key, "sha256": record.info.sha256, "size": record.info.size}

        def pair(old: Record, new: Record) -> dict[str, Any]:
            return {"key": new.key, "old_sha256": old.info.sha256,
                    "new_sha256": new.info.sha256, "fields": field_changes(old, new)}

        return {
            "added": [entry(r) for r in self.added],
            "removed": [entry(r) for r in self.removed],
            "changed": [pair(a, b) for a, b in self.changed],
            "relabeled": [pair(a, b) for a, b in self.relabeled],
            "summary": {"added": len(self.added), "removed": len(self.removed),
                        "changed": len(self.changed), "relabeled": len(self.relabeled)},
        }


def field_changes(old: Record, new: Record) -> dict[str, list[Any]]:
    """Metadata fields (and the split) that differ: name -> [old, new]; absent is None."""
    before = {**old.metadata, "split": old.split}
    after = {**new.metadata, "split": new.split}
    return {name: [before.get(name), after.get(name)]
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)}


def diff_catalogs(old: Iterable[Record], new: Iterable[Record]) -> CatalogDiff:
    """Walk two key-sorted catalogs side by side."""
    result = CatalogDiff()
    a_iter, b_iter = iter(old), iter(new)
    a, b = next(a_iter, None), next(b_iter, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key.encode() < b.key.encode()):
            result.removed.append(a)
            a = next(a_iter, None)
        elif a is None or b.key.encode() < a.key.encode():
            result.added.append(b)
            b = next(b_iter, None)
        else:
            if a.info != b.info:
                result.changed.append((a, b))
            elif a.metadata != b.metadata or a.split != b.split:
                result.relabeled.append((a, b))
            a, b = next(a_iter, None), next(b_iter, None)
    return result

