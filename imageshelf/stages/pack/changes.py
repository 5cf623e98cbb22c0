"""What changes, record by record: each staged record against the store (added, already
there, relabeled, a conflict, a duplicate), then the stored records that the tracked
annotations or the split ratios change. Reads the manifest and the store; writes nothing.

The policies (params.yaml's `pack` section):
- Same key, same bytes: already there (a metadata change updates the record: relabeled).
- Same key, different bytes: a conflict, by `on_conflict`: error (fail, change nothing),
  replace (the new bytes win) or skip (the stored bytes stay).
- Same bytes as another image under a new key: a duplicate, by `on_duplicate`: keep or
  skip (listed in the report either way).
- Keys listed in data/remove.txt are dropped from the store.
- Every record carries its split (imageshelf/records/splits.py): new images get one, and stored
  images move only when the ratios in params.yaml change (resplit).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...annotations import Annotations
from ...errors import ShelfError
from ...project.params import AnnotationsParams, PackParams
from ...records.manifest import read_manifest
from ...records.splits import assign_split, with_split
from ...sources.tracked import Metadata, Tracked
from ...state import cache
from ...store import ImageStore, Record
from ...store.format import peek_sha256_and_split
from ...store.values import Paired

Memos = dict[str, bytes]  # cache entries learned while planning: name -> bytes, saved later


class PackError(ShelfError):
    """Pack cannot start: nothing staged, or the store to pack into is not here."""


class ConflictError(PackError):
    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        super().__init__(
            f"{len(keys)} staged image(s) have the key of a stored image but different bytes: "
            f"{shown}. Nothing was changed. Rename them, or set pack.on_conflict to replace "
            "or skip in params.yaml."
        )
        self.keys = keys


@dataclass
class Changes:
    """What changes in the store, key by key, decided before anything is written."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    relabeled: list[str] = field(default_factory=list)  # stored bytes, new metadata
    moved: list[str] = field(default_factory=list)  # of those, only the split is new
    # stored image, new paired images (a changed mask: also relabeled): key -> all of
    # its paired images from now on, the new ones read from the incoming folder
    repaired: dict[str, dict[str, Paired]] = field(default_factory=dict)
    # stored bytes, the same fields, tracked otherwise (now or no longer set by a file
    # in data/annotations/, or over another arrived value): rewritten, but not
    # relabeled (diff shows no change)
    retracked: list[str] = field(default_factory=list)
    # stored bytes, what their pixels measure new to the store (a store from before
    # properties, or an older PROPS_VERSION): key -> props; rewritten, not relabeled
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmeasured_new: int = 0  # staged images written without props (measured by no one)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # new key -> key with same bytes
    removed: list[str] = field(default_factory=list)
    removal_not_found: list[str] = field(default_factory=list)
    resplit: list[str] = field(default_factory=list)  # stored keys whose split changes
    not_packed: dict[str, str] = field(default_factory=dict)  # staged key -> why not
    # key -> its metadata from now on, for every record whose metadata is new or changes
    metadata: dict[str, Metadata] = field(default_factory=dict)
    fields_removed: Counter[str] = field(default_factory=Counter)  # field -> records
    unused_annotations: list[str] = field(default_factory=list)

    @property
    def writes(self) -> set[str]:
        """Keys whose bytes (or some of them) come from the incoming folder."""
        return set(self.added) | set(self.replaced) | set(self.repaired)

    @property
    def changes_store(self) -> bool:
        return bool(
            self.writes
            or self.removed
            or self.resplit
            or self.relabeled
            or self.retracked
            or self.measured
        )

    @property
    def removal_digest(self) -> str:
        """What the removal list said, as a digest: pack warns about keys it names that
        are not in the store only when the list changed, not on every later run."""
        text = "\n".join(sorted([*self.removed, *self.removal_not_found]))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Since:
    """What the last pack of this very store (the same content digest) settled, so that
    a run looks only where something can have changed.

    same_ratios: the split ratios are the ones the store was packed with (no image can
    move). tracked_keys: the keys whose tracked annotations may have changed since (the
    keys the changed annotation files spoke of, before and now); None when that is not
    known (a first run, new folder rules, the cache lost): every record is looked at.
    """

    same_ratios: bool = False
    tracked_keys: set[str] | None = None


def plan_changes(
    store: ImageStore | None,
    manifest: Path,
    removals: list[str],
    params: PackParams,
    tracked: Tracked | None = None,
    since: Since | None = None,
    memos: Memos | None = None,
) -> Changes:
    """Decide what changes. Reads the staged records, and of the store only what can
    have changed: `since` says what the last pack settled (by default, nothing). What
    it learns for the cache on the way goes into `memos`, never to disk."""
    tracked = tracked or Tracked(Annotations(), AnnotationsParams())
    since = since or Since()
    planner = _Planner(store, set(removals), params, tracked, memos if memos is not None else {})
    for record in read_manifest(manifest):
        planner.staged(record)
    changes = planner.changes
    if changes.conflicts and params.on_conflict == "error":
        raise ConflictError(changes.conflicts)
    if store is not None:
        planner.stored(since)
    if params.on_duplicate == "skip" and changes.duplicates:
        for key, same_as in changes.duplicates.items():
            changes.not_packed[key] = f"duplicate of {same_as} (on_duplicate: skip)"
            changes.metadata.pop(key, None)
        changes.added = [key for key in changes.added if key not in changes.duplicates]
    for key in removals:
        found = store is not None and key in store
        (changes.removed if found else changes.removal_not_found).append(key)
    changes.unused_annotations = list(tracked.annotations.unused)
    return changes


class _Planner:
    """The changes, made one staged record at a time, then completed from the store."""

    def __init__(
        self,
        store: ImageStore | None,
        removals: set[str],
        params: PackParams,
        tracked: Tracked,
        memos: Memos,
    ) -> None:
        self.store, self.removals, self.params, self.tracked = store, removals, params, tracked
        self.memos = memos
        self.changes = Changes()
        self.new_by_hash: dict[str, str] = {}  # content of images new to the store -> key
        self.seen: set[str] = set()  # staged keys already planned

    def staged(self, record: Record) -> None:
        key, changes, store = record.key, self.changes, self.store
        if key in self.removals:
            changes.not_packed[key] = "listed in data/remove.txt"
            return
        existing = store.record(key) if store is not None and key in store else None
        if existing is None:
            self._new(record)
        elif existing.info.sha256 == record.info.sha256:
            self.seen.add(key)
            if record.props is not None and record.props != existing.props:
                changes.measured[key] = record.props
            metadata = self.tracked.apply(key, existing.info, existing, record.metadata)
            if self._repaired(record, existing, metadata):
                return
            if not _relabel(changes, existing, metadata):
                changes.unchanged += 1
        else:
            self._conflict(record, existing)

    def _repaired(self, record: Record, existing: Record, metadata: Metadata) -> bool:
        """A stored image arriving with other paired images (a mask changed): planned
        as relabeled, its new paired images written. One that arrives without some of
        its paired images keeps those (files dropped again never take anything away)."""
        paired = {**existing.paired, **record.paired}
        if paired == existing.paired:
            return False
        changes = self.changes
        changes.repaired[record.key] = paired
        changes.relabeled.append(record.key)
        changes.metadata[record.key] = metadata
        return True

    def _new(self, record: Record) -> None:
        key, changes = record.key, self.changes
        if record.props is None:
            changes.unmeasured_new += 1
        first = self.new_by_hash.setdefault(record.info.sha256, key)
        if first != key:
            changes.duplicates[key] = first
        changes.added.append(key)
        metadata = self.tracked.apply(key, record.info, None, record.metadata)
        if metadata != Metadata(record.metadata, (), {}):  # else the manifest's: no copy
            changes.metadata[key] = metadata

    def _conflict(self, record: Record, existing: Record) -> None:
        key, changes = record.key, self.changes
        changes.conflicts.append(key)
        if self.params.on_conflict == "replace":
            self.seen.add(key)
            changes.replaced.append(key)
            changes.unmeasured_new += record.props is None
            changes.metadata[key] = self.tracked.apply(key, record.info, existing, record.metadata)
        elif self.params.on_conflict == "skip":
            changes.not_packed[key] = "conflict: the stored bytes were kept (on_conflict: skip)"

    def stored(self, since: Since) -> None:
        """What changes for images already stored: duplicates of new bytes, records the
        tracked annotations change, splits the ratios move."""
        store, changes, tracked = self.store, self.changes, self.tracked
        assert store is not None
        if self.new_by_hash:
            _find_duplicates(store, self.new_by_hash, self.removals, changes, self.memos)
        if not since.same_ratios or since.tracked_keys is None:
            ratios_changed = not since.same_ratios
            _scan(store, self.removals, self.seen, self.params, tracked, ratios_changed, changes)
            return
        # Only the records the changed annotation files speak of.
        keys = since.tracked_keys - self.seen - self.removals - set(changes.metadata)
        for key, raw, _part in store.raw_records_of(keys):
            stored = Record.decode(key, raw)
            _relabel(changes, stored, tracked.apply(key, stored.info, stored, None))


def _scan(
    store: ImageStore,
    removal_set: set[str],
    seen: set[str],
    params: PackParams,
    tracked: Tracked,
    ratios_changed: bool,
    changes: Changes,
) -> None:
    """One scan of every stored record (no image bytes): records the tracked annotations
    change and, when the ratios changed, records whose split moves."""
    ratios = params.split
    for key, raw in store.raw_records():
        if key in removal_set or key in changes.metadata:
            continue  # removed, or rewritten anyway: the transform gives it its split
        if key not in seen and tracked.concerns(key, raw):
            stored = Record.decode(key, raw)
            if _relabel(changes, stored, tracked.apply(key, stored.info, stored, None)):
                continue
        if not ratios_changed or peek_sha256_and_split(raw)[1] == assign_split(key, ratios):
            continue  # the usual case, decided without parsing the record
        stored = Record.decode(key, raw)
        if with_split(stored, ratios) is not stored:
            changes.resplit.append(key)


def part_hashes(store: ImageStore, name: str, digest: str, memos: Memos) -> bytes:
    """The SHA-256 digests of a part's images, 32 bytes each, in key order: from the
    cache by the part's content digest, else read off its records (and put in `memos`,
    for the cache)."""
    cached = cache.load_bytes(cache.part_hashes_name(digest))
    if cached is not None and len(cached) % 32 == 0:
        return cached
    hashes = b"".join(
        bytes.fromhex(peek_sha256_and_split(raw)[0]) for _key, raw in store.part(name).raw_records()
    )
    memos[cache.part_hashes_name(digest)] = hashes
    return hashes


def _find_duplicates(
    store: ImageStore,
    new_by_hash: dict[str, str],
    removal_set: set[str],
    changes: Changes,
    memos: Memos,
) -> None:
    """New images whose bytes the store already holds under another key."""
    wanted = {bytes.fromhex(sha): sha for sha in new_by_hash}
    for part in store.parts:
        hashes = part_hashes(store, part.name, part.content_digest, memos)
        found = {h for h in (hashes[i : i + 32] for i in range(0, len(hashes), 32)) if h in wanted}
        if not found:
            continue
        for number, key in enumerate(store.part(part.name)):  # rare: name the stored key
            digest = hashes[number * 32 : number * 32 + 32]
            if digest in found and key not in removal_set:
                sha = wanted[digest]
                if sha in new_by_hash:
                    changes.duplicates[new_by_hash.pop(sha)] = key


def _only_split(stored: Record, metadata: dict[str, Any]) -> bool:
    """Whether the new metadata moves the image to another split and changes nothing
    else (a split set in data/annotations/: the viewer's "move")."""
    split = metadata.get("split")
    if split is None or split == stored.effective_split:
        return False
    rest = {name: value for name, value in metadata.items() if name != "split"}
    return rest == {name: value for name, value in stored.metadata.items() if name != "split"}


def _relabel(changes: Changes, stored: Record, metadata: Metadata) -> bool:
    """Plan `metadata` for a stored record if it differs from what it has; count the
    fields it loses (only tracked annotations can take one away). A change only to what
    the record keeps to undo them (`annotated`, `overridden`) is retracked: no field
    anyone sees changes."""
    if metadata == Metadata.of(stored):
        return False
    fields = metadata.metadata
    same = fields == stored.metadata
    (changes.retracked if same else changes.relabeled).append(stored.key)
    if not same and _only_split(stored, fields):
        changes.moved.append(stored.key)
    changes.metadata[stored.key] = metadata
    changes.fields_removed.update(name for name in stored.metadata if name not in fields)
    return True
