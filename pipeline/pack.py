"""Pack: merge the staged manifest into the store, by the policies in params.yaml.

- Same key, same bytes: already there (a metadata change updates the record: relabeled).
- Same key, different bytes: a conflict, by `on_conflict`: error (fail, change nothing),
  replace (the new bytes win) or skip (the stored bytes stay).
- Same bytes as another image under a new key: a duplicate, by `on_duplicate`: keep or
  skip (listed in the report either way).
- Keys listed in data/remove.txt are dropped from the store.
- Every record carries its split (pipeline/splits.py): new images get one, and stored
  images move only when the ratios in params.yaml change (resplit).
If nothing changes, the store file is not rewritten: it stays byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import read_manifest
from .splits import assign_split, with_split
from .store import ImageStore, Item, Record, rebuild, write_sharded


class ConflictError(Exception):
    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        super().__init__(
            f"{len(keys)} staged image(s) have the key of a stored image but different bytes: "
            f"{shown}. Nothing was changed. Rename them, or set pack.on_conflict to replace "
            "or skip in params.yaml."
        )
        self.keys = keys


def read_removals(path: Path) -> list[str]:
    """Keys in a removal list: one per line; blank lines and # comments are ignored."""
    if not path.exists():
        return []
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


@dataclass
class PackPlan:
    """What pack will do, decided before anything is written."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    relabeled: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # new key -> key with same bytes
    removed: list[str] = field(default_factory=list)
    removal_not_found: list[str] = field(default_factory=list)
    resplit: list[str] = field(default_factory=list)  # stored keys whose split changes
    not_packed: dict[str, str] = field(default_factory=dict)  # staged key -> why not

    @property
    def writes(self) -> set[str]:
        return set(self.added) | set(self.replaced) | set(self.relabeled)

    @property
    def changes_store(self) -> bool:
        return bool(self.writes or self.removed or self.resplit)


def plan_pack(store: ImageStore | None, manifest: Path, removals: list[str],
              params: dict[str, Any]) -> PackPlan:
    plan = PackPlan()
    removal_set = set(removals)
    new_by_hash: dict[str, str] = {}  # content of images new to the store -> first key
    for record in read_manifest(manifest):
        key = record.key
        if key in removal_set:
            plan.not_packed[key] = "listed in data/remove.txt"
            continue
        existing = store.record(key) if store is not None and key in store else None
        if existing is None:
            first = new_by_hash.get(record.info.sha256)
            if first is not None:
                plan.duplicates[key] = first
            else:
                new_by_hash[record.info.sha256] = key
            plan.added.append(key)
        elif existing.info.sha256 == record.info.sha256:
            if existing.metadata == record.metadata:
                plan.unchanged += 1
            else:
                plan.relabeled.append(key)
        else:
            plan.conflicts.append(key)
            if params["on_conflict"] == "replace":
                plan.replaced.append(key)
            elif params["on_conflict"] == "skip":
                plan.not_packed[key] = "conflict: the stored bytes were kept (on_conflict: skip)"
    if plan.conflicts and params["on_conflict"] == "error":
        raise ConflictError(plan.conflicts)

    if store is not None:
        # One scan of the stored records (no image bytes) finds content already stored
        # and records whose split the ratios now put elsewhere.
        ratios = params["split"]
        restaged = plan.writes
        for key, raw in store.raw_records():
            if key in removal_set:
                continue
            sha256, split = _sha256_and_split(raw)
            if sha256 in new_by_hash:
                plan.duplicates[new_by_hash.pop(sha256)] = key
            if key in restaged or split == assign_split(key, ratios):
                continue  # the usual case, decided without parsing the record
            stored = Record.decode(key, raw)
            if with_split(stored, ratios) is not stored:
                plan.resplit.append(key)
    if params["on_duplicate"] == "skip" and plan.duplicates:
        for key, same_as in plan.duplicates.items():
            plan.not_packed[key] = f"duplicate of {same_as} (on_duplicate: skip)"
        plan.added = [key for key in plan.added if key not in plan.duplicates]

    if store is not None:
        for key in removals:
            (plan.removed if key in store else plan.removal_not_found).append(key)
    else:
        plan.removal_not_found = list(removals)
    return plan


def _sha256_and_split(raw: bytes) -> tuple[str, str | None]:
    """The top-level sha256 and split of a stored record, read off its canonical JSON.

    Top-level keys are sorted, so the user's metadata ("meta") comes before "sha256" and
    "split": the last occurrence of each is the record's own (a string inside the
    metadata cannot hold an unescaped quote)."""
    at = raw.rfind(b'"sha256":"') + 10
    sha256 = raw[at:at + 64].decode("ascii")
    at = raw.rfind(b'"split":"')
    if at < 0:
        return sha256, None
    at += 9
    return sha256, raw[at:raw.index(b'"', at)].decode("utf-8")


def apply_plan(store_path: Path, manifest: Path, incoming: Path, plan: PackPlan,
               params: dict[str, Any], *, base: ImageStore | None = None,
               rewrite: bool = False, on_item=None) -> dict[str, Any]:
    """Publish the new store in the layout its path names (a .lmdb file: single; else a
    folder of shards); return its header. New bytes are read from the incoming files.

    base: the store the plan was made against; rewrite: write every record anew (the
    base is the other layout, being converted).
    """
    writes = plan.writes
    ratios = params["split"]

    def additions() -> Iterator[Item]:
        for record in read_manifest(manifest):
            if record.key in writes:
                yield Item(record, _reader(incoming, record))

    def transform(record: Record) -> Record:
        return with_split(record, ratios)

    if store_path.suffix == ".lmdb":
        return rebuild(store_path, additions, plan.removed, on_item=on_item,
                       transform=transform, source=base if rewrite else None)
    return write_sharded(store_path, additions, plan.removed, base=base,
                         touched=plan.resplit, shard_bytes=params["shard_mb"] * 1_000_000,
                         rewrite=rewrite, transform=transform, on_item=on_item)


def _reader(incoming: Path, record: Record):
    def read() -> bytes:
        with open(os.path.join(incoming, record.key), "rb") as fh:
            return fh.read()
    return read


def plan_report(plan: PackPlan, params: dict[str, Any], header: dict[str, Any],
                written: bool) -> dict[str, Any]:
    return {
        "written": written,
        "count": header["count"],
        "total_bytes": header["total_bytes"],
        "content_digest": header["content_digest"],
        "added": len(plan.added),
        "replaced": len(plan.replaced),
        "relabeled": len(plan.relabeled),
        "unchanged": plan.unchanged,
        "removed": len(plan.removed),
        "resplit": len(plan.resplit),
        "split": params["split"],
        "on_conflict": params["on_conflict"],
        "on_duplicate": params["on_duplicate"],
        "conflicts": plan.conflicts,
        "duplicates": [{"key": k, "same_as": v} for k, v in sorted(plan.duplicates.items())],
        "removal_not_found": plan.removal_not_found,
        "not_packed": dict(sorted(plan.not_packed.items())),
    }
