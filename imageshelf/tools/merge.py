"""Merge another version of the store into the one in the workspace: every image of
either, for two teammates who packed at the same time (docs/PIPELINE.md, "When two teammates
pack at the same time").

The union is right because everything else that shapes the store is tracked by git and
merged by git before this runs: `data/remove.txt` and `data/annotations/` are applied
again by the next pack. Only images live nowhere but in the stores.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..base.progress import Progress, per_item
from ..errors import ShelfError
from ..project.params import PackParams
from ..records.splits import with_split
from ..store import Header, ImageStore, Record
from ..store.writer import Item, update, writer_lock
from ..versions.catalog import write_catalog

OnConflict = Literal["error", "keep", "take"]


class MergeError(ShelfError):
    """The other version cannot be merged; nothing was changed."""


class MergeConflict(MergeError):
    """The two versions hold different images under one key."""


@dataclass
class MergeResult:
    added: list[str] = field(default_factory=list)  # keys only the other version had
    relabeled: list[str] = field(default_factory=list)  # same bytes, metadata combined
    conflicts: list[str] = field(default_factory=list)  # same key, different bytes
    taken: list[str] = field(default_factory=list)  # conflicts resolved to the other's bytes
    header: Header | None = None


def merge(
    store_path: Path,
    other: ImageStore,
    params: PackParams,
    catalog: Path,
    on_conflict: OnConflict = "error",
    progress: Progress | None = None,
) -> MergeResult:
    """Add to the store at `store_path` every image of `other` it lacks. The same image
    under the same key with different metadata: the fields of both, `other`'s value where
    both have one. The same key with different bytes: a conflict; `on_conflict` error
    (change nothing), keep (this store's bytes) or take (the other's)."""
    with writer_lock(store_path):
        here = ImageStore(store_path)
        result, combined = _compare(here, other)
        if result.conflicts and on_conflict == "error":
            shown = ", ".join(result.conflicts[:5])
            raise MergeConflict(
                f"{len(result.conflicts)} key(s) hold different images in the two versions: "
                f"{shown}. Nothing was changed. Choose with --on-conflict keep (this store's) "
                "or take (the other's), or rename one side's images."
            )
        if on_conflict != "take":
            result.taken = []
        writes = set(result.added) | set(result.taken)
        if not writes and not combined:
            result.header = here.header
        else:
            if progress is not None:
                progress.reset(total=len(writes) + len(here))
            additions = [
                Item(r, functools.partial(_proven_bytes, other, r), trusted=True)
                for r in other.records()
                if r.key in writes
            ]

            def transform(record: Record) -> Record:
                return with_split(combined.get(record.key, record), params.split)

            result.header = update(
                here,
                additions,
                touched=list(combined),
                shard_bytes=params.shard_bytes,
                transform=transform,
                on_item=None if progress is None else per_item(progress),
            )
        here.close()
        write_catalog(ImageStore(store_path), catalog)
    return result


def _compare(here: ImageStore, other: ImageStore) -> tuple[MergeResult, dict[str, Record]]:
    """What each image of `other` is to this store: added, a conflict (listed as taken
    too, in case the other's side is chosen), or the same image with other metadata:
    its record with the fields of both."""
    result, combined = MergeResult(), {}
    for theirs in other.records():
        key = theirs.key
        ours = here.record(key) if key in here else None
        if ours is None:
            result.added.append(key)
        elif ours.info != theirs.info:
            result.conflicts.append(key)
            result.taken.append(key)
        elif _undo_and_fields(ours) != _undo_and_fields(theirs):
            result.relabeled.append(key)
            combined[key] = ours.replace(
                metadata={**ours.metadata, **theirs.metadata},
                annotated=tuple(sorted({*ours.annotated, *theirs.annotated})),
                overridden={**ours.overridden, **theirs.overridden},
            )
    return result, combined


def _undo_and_fields(record: Record) -> tuple[object, ...]:
    """A record's fields with what it keeps to undo tracked sources (the fields they
    set, the arrived values they override): the next pack undoes from the union."""
    return record.metadata, record.annotated, record.overridden


def _proven_bytes(other: ImageStore, record: Record) -> bytes:
    """An image of the other version, hashed: a store from elsewhere is untrusted, and a
    record may claim another image's SHA-256."""
    data = other.get(record.key)
    if hashlib.sha256(data).hexdigest() != record.info.sha256:
        raise MergeError(
            f"{record.key}: its bytes in the other version do not match its record's "
            "SHA-256; nothing was merged (validate --full on that version says more)"
        )
    return data
