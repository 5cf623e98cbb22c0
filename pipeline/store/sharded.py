"""The sharded layout: a folder of immutable single-file stores and a small index.

    data/images/
      index.json                 which shards make the store, in the order they were made
      shard-<16 hex>.lmdb        each a complete store (format.py), named by its content

A shard's name is the start of its content digest, so a name always means the same
bytes: a changed shard is a new file, and the index is the one switch that publishes a
new version (written whole, then renamed into place). Packing new images adds shards and
leaves the others untouched, so DVC pushes only the new ones. Removals, replacements and
relabels rewrite the shards that hold those keys; `compact` rewrites everything into
full shards in key order.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb

from .format import (
    ImageInfo,
    Record,
    StoreError,
    UnsupportedVersionError,
    canonical_json,
)
from .reader import ImageStore
from .writer import (
    Item,
    ItemSource,
    _describe_write_error,
    _fsync_dir,
    _merge_by_key,
    _write_locked,
    prepare_items,
    store_items,
    writer_lock,
)

SHARDED_FORMAT = "lmdb-image-store-sharded"
SHARDED_VERSION = "1.0"
INDEX_NAME = "index.json"


def shard_name(content_digest: str) -> str:
    return f"shard-{content_digest[:16]}.lmdb"


def read_index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX_NAME
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{folder}: no {INDEX_NAME}; not a sharded store (or not pulled: "
                         f"`dvc pull {folder}`)") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the shard index: {exc}") from None
    if index.get("format") != SHARDED_FORMAT:
        raise StoreError(f"{path}: not a sharded image store index")
    if str(index.get("version", "")).split(".")[0] != SHARDED_VERSION.split(".")[0]:
        raise UnsupportedVersionError(
            f"{path}: sharded format version {index.get('version')} is not supported; this "
            f"code reads {SHARDED_VERSION.split('.')[0]}.x")
    return index


def make_index(shards: list[dict[str, Any]]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for shard in sorted(shards, key=lambda s: s["content_digest"]):
        digest.update(shard["content_digest"].encode() + b"\n")
    return {
        "format": SHARDED_FORMAT,
        "version": SHARDED_VERSION,
        "count": sum(s["count"] for s in shards),
        "total_bytes": sum(s["total_bytes"] for s in shards),
        "content_digest": digest.hexdigest(),
        "shards": shards,
    }


class ShardedImageStore(ImageStore):
    """The same reading API as ImageStore, over a folder of shards.

    Shards open lazily, one by one, when first needed: a machine that pulled only some
    shards reads those and gets a clear error for the others.
    """

    layout = "sharded"

    def __init__(self, path: str | os.PathLike[str]) -> None:  # noqa: D107
        self.path = Path(path)
        self._index: dict[str, Any] | None = None
        self._stores: dict[str, ImageStore] = {}

    # Pickling and `with` come from ImageStore: only the path travels.
    def __repr__(self) -> str:
        return f"ImageStore({str(self.path)!r}, sharded)"

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    # -- the index
    @property
    def index(self) -> dict[str, Any]:
        if self._index is None:
            self._index = read_index(self.path)
        return self._index

    @property
    def shards(self) -> list[dict[str, Any]]:
        """The index's entries: name, count, total_bytes, content_digest, first/last key."""
        return list(self.index["shards"])

    def shard(self, name: str) -> ImageStore:
        store = self._stores.get(name)
        if store is None:
            path = self.path / name
            if not path.exists():
                raise StoreError(f"{path}: shard not here; `dvc pull {path}` fetches it")
            store = self._stores[name] = ImageStore(path)
        return store

    @property
    def header(self) -> dict[str, Any]:
        index = self.index
        return {key: index[key] for key in
                ("format", "version", "count", "total_bytes", "content_digest")}

    def __len__(self) -> int:
        return int(self.index["count"])

    def _candidates(self, key: str) -> Iterator[ImageStore]:
        for entry in self.index["shards"]:
            if entry["first_key"] <= key <= entry["last_key"]:
                yield self.shard(entry["name"])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.holder(key) is not None

    def holder(self, key: str) -> str | None:
        """The name of the shard holding `key`, or None."""
        for entry in self.index["shards"]:
            if entry["first_key"] <= key <= entry["last_key"] and key in self.shard(entry["name"]):
                return entry["name"]
        return None

    def _from_shards(self, key: str, read: Callable[[ImageStore, str], Any]) -> Any:
        """`read(shard, key)` from the shard that holds `key`; KeyError if none does."""
        if not isinstance(key, str):
            raise KeyError(key)
        for store in self._candidates(key):
            try:
                return read(store, key)
            except KeyError:
                continue
        raise KeyError(key)

    def get(self, key: str) -> bytes:
        return self._from_shards(key, ImageStore.get)

    def get_many(self, keys: Iterable[str]) -> list[bytes]:
        return [self.get(key) for key in keys]

    def record(self, key: str) -> Record:
        return self._from_shards(key, ImageStore.record)

    def info(self, key: str) -> ImageInfo:
        return self.record(key).info

    def metadata(self, key: str) -> dict[str, Any]:
        return self.record(key).metadata

    def raw_records(self) -> Iterator[tuple[str, bytes]]:
        """(key, record JSON) across all shards, merged into key order."""
        streams = [self.shard(e["name"]).raw_records() for e in self.index["shards"]]
        return heapq.merge(*streams, key=lambda pair: pair[0])  # str order = UTF-8 order

    def records(self) -> Iterator[Record]:
        for key, raw in self.raw_records():
            yield Record.decode(key, raw)

    def __iter__(self) -> Iterator[str]:
        for key, _raw in self.raw_records():
            yield key

    def keys(self) -> list[str]:
        return list(self)

    def stat(self) -> dict[str, int]:
        totals = {"records": 0, "images": 0}
        for entry in self.index["shards"]:
            for name, value in self.shard(entry["name"]).stat().items():
                totals[name] += value
        return totals


# ------------------------------------------------------------------------ writing

def _tracked(items: Iterable[Item], seen: dict[str, Any]) -> Iterator[Item]:
    """Pass items through, noting the first and last key written."""
    for item in items:
        if "first_key" not in seen:
            seen["first_key"] = item.record.key
        seen["last_key"] = item.record.key
        yield item


def _write_shard(folder: Path, items: ItemSource,
                 on_item: Callable[[Record], None] | None) -> dict[str, Any] | None:
    """Write one shard from `items` (called twice, sorted); return its index entry, or
    None if it would be empty. The file is named by its content, so an existing file of
    that name already holds exactly these bytes."""
    seen: dict[str, Any] = {}
    temp = folder / f".shard-new.tmp-{os.getpid()}"
    header = _write_locked(temp, lambda: _tracked(items(), seen), on_item)
    if header["count"] == 0:
        temp.unlink(missing_ok=True)
        return None
    name = shard_name(header["content_digest"])
    os.replace(temp, folder / name)
    return {"name": name, "count": header["count"], "total_bytes": header["total_bytes"],
            "content_digest": header["content_digest"], "first_key": seen["first_key"],
            "last_key": seen["last_key"]}


def _chunks(items: Iterable[Item], shard_bytes: int) -> Iterator[list[Item]]:
    """Consecutive items cut into groups of about `shard_bytes` of image bytes."""
    chunk: list[Item] = []
    size = 0
    for item in items:
        if chunk and size + item.record.info.size > shard_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item.record.info.size
    if chunk:
        yield chunk


def _publish_index(folder: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Switch to the new version: write the index whole, then drop unreferenced shards."""
    index = make_index(entries)
    temp = folder / f".{INDEX_NAME}.tmp-{os.getpid()}"
    with open(temp, "wb") as out:
        out.write(canonical_json(index) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, folder / INDEX_NAME)
    _fsync_dir(folder)
    keep = {entry["name"] for entry in entries}
    for path in folder.glob("shard-*.lmdb"):
        if path.name not in keep:
            path.unlink()
    return index


def tidy(folder: str | os.PathLike[str]) -> list[str]:
    """Remove what a killed writer left in `folder`: temporary files, and shard files the
    index does not list (written, but never published). Call under writer_lock(folder).
    Returns the names removed."""
    folder = Path(folder)
    removed = []
    for stale in folder.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    if (folder / INDEX_NAME).exists():
        listed = {entry["name"] for entry in read_index(folder)["shards"]}
        for path in folder.glob("shard-*.lmdb"):
            if path.name not in listed:
                path.unlink()
                removed.append(path.name)
    return removed


def _sorted_source(additions: Sequence[Item] | ItemSource) -> ItemSource:
    if callable(additions):
        return additions
    ordered = sorted(additions, key=lambda item: item.record.key.encode("utf-8"))
    return lambda: ordered


def write_sharded(
    folder: str | os.PathLike[str],
    additions: Sequence[Item] | ItemSource = (),
    removals: Collection[str] = (),
    *,
    base: ImageStore | None = None,
    touched: Collection[str] = (),
    shard_bytes: int = 1 << 30,
    rewrite: bool = False,
    transform: Callable[[Record], Record] | None = None,
    on_item: Callable[[Record], None] | None = None,
) -> dict[str, Any]:
    """Publish a new version of the sharded store in `folder`; return its index.

    base: the store to start from: the sharded store in `folder` (the default when it
    exists), or a single-file store being converted. Appending (rewrite=False, base
    sharded): shards holding a key in `removals`, in `touched` (keys whose record
    changes: replaced, relabeled, moved split) or given again in `additions` are
    rewritten; additions with new keys go into new shards; every other shard is left
    as it is. rewrite=True (conversion, compaction): every record goes into new full
    shards in key order. Shards are at most about `shard_bytes` of images each.
    """
    folder = Path(folder)
    new_items = _sorted_source(additions)
    removed = frozenset(removals)
    folder.mkdir(parents=True, exist_ok=True)
    with writer_lock(folder):
        tidy(folder)  # we hold the lock: whoever left these is gone
        if base is None and (folder / INDEX_NAME).exists():
            base = ShardedImageStore(folder)
        try:
            if rewrite or not isinstance(base, ShardedImageStore):
                entries = _rewrite_all(folder, base, new_items, removed, shard_bytes,
                                       transform, on_item)
            else:
                entries = _append(folder, base, new_items, removed, frozenset(touched),
                                  shard_bytes, transform, on_item)
            return _publish_index(folder, entries)
        except (lmdb.Error, OSError) as exc:
            raise StoreError(_describe_write_error(folder, exc)) from None
        finally:
            if base is not None:
                base.close()


def _rewrite_all(folder, base, new_items, removed, shard_bytes, transform, on_item):
    existing = store_items(base) if base is not None else iter(())
    everything = prepare_items(_merge_by_key(existing, iter(new_items())), removed, transform)
    entries = []
    for chunk in _chunks(everything, shard_bytes):
        entry = _write_shard(folder, lambda c=chunk: c, on_item)
        if entry is not None:
            entries.append(entry)
    return entries


def _append(folder, base, new_items, removed, touched, shard_bytes, transform, on_item):
    # One pass over the additions sorts them: items for keys a shard already holds
    # (replaced, relabeled) go to that shard, in order; the rest are new. Only their
    # records are kept, never bytes, and the additions are not read again for them.
    again: dict[str, list[Item]] = {}  # shard name -> its changed items, key order
    given_again: set[str] = set()
    for item in new_items():
        holder = base.holder(item.record.key)
        if holder is not None:
            again.setdefault(holder, []).append(item)
            given_again.add(item.record.key)
    affected = set(again)
    for key in removed | touched:
        holder = base.holder(key)
        if holder is not None:
            affected.add(holder)

    entries = []
    for entry in base.shards:
        name = entry["name"]
        if name not in affected:
            entries.append(entry)
            continue

        shard, mine = base.shard(name), again.get(name, [])

        def items(shard=shard, mine=mine):
            return prepare_items(_merge_by_key(store_items(shard), iter(mine)), removed,
                                 transform)
        rewritten = _write_shard(folder, items, on_item)
        if rewritten is not None:
            entries.append(rewritten)
    fresh = (item for item in new_items() if item.record.key not in given_again)
    for chunk in _chunks(prepare_items(fresh, removed, transform), shard_bytes):
        entry = _write_shard(folder, lambda c=chunk: c, on_item)
        if entry is not None:
            entries.append(entry)
    return entries
