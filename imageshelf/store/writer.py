"""Publish a new version of a store, in either layout: always new files, renamed into
place (base/atomic.py), never a published file modified.

A published file may be a read-only link into DVC's cache (its hardlink or symlink
cache types), so every change builds new files beside the old and renames them into
place: a reader, a crash or a kill sees the old version or the new one, never a mixture.

- Single layout: the new file replaces the old one (`rebuild`).
- Sharded layout (`write_sharded`): new images go into new shards and every other shard
  stays untouched, so DVC pushes only the new ones. Removals, replacements and relabels
  rewrite the shards that hold those keys; `rewrite=True` (conversion, compaction)
  writes everything into full shards in key order. The index rename is the one switch
  that publishes the new version; shards it no longer lists are deleted after it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

import lmdb

from ..base.atomic import atomic_write, fsync_dir, is_temp, publish, temporary
from . import trust
from .build import (
    Item,
    ItemSource,
    build_file,
    describe_write_error,
    merge_by_key,
    prepare_items,
    store_byte_items,
    store_items,
)
from .file import StoreFile
from .format import DEFAULT_INDEXED, StoreError
from .index import INDEX_NAME, Part, ShardIndex, shard_name
from .lock import writer_lock
from .reader import ImageStore
from .values import Header, Record

__all__ = ["Item", "rebuild", "store_items", "tidy", "update", "write_sharded", "writer_lock"]

Transform = Callable[[Record], Record]
OnItem = Callable[[Record], None]


def _sorted_source(additions: Sequence[Item] | ItemSource) -> ItemSource:
    if callable(additions):
        return additions
    ordered = sorted(additions, key=lambda item: item.record.key.encode("utf-8"))
    return lambda: ordered


def _failed(path: Path, exc: Exception) -> StoreError:
    return StoreError(describe_write_error(path, exc))


def update(
    store: ImageStore,
    additions: Sequence[Item] | ItemSource = (),
    removals: Collection[str] = (),
    *,
    touched: Collection[str] = (),
    shard_bytes: int = 1 << 30,
    transform: Transform | None = None,
    on_item: OnItem | None = None,
    indexed: Collection[str] = DEFAULT_INDEXED,
) -> Header:
    """Publish a new version of an existing store in its own layout: `rebuild` for a
    single file, `write_sharded` (appending) for a folder of shards."""
    if store.layout == "sharded":
        return write_sharded(
            store.path,
            additions,
            removals,
            touched=touched,
            shard_bytes=shard_bytes,
            transform=transform,
            on_item=on_item,
            indexed=indexed,
        )
    return rebuild(
        store.path, additions, removals, transform=transform, on_item=on_item, indexed=indexed
    )


# ------------------------------------------------------------------ the single layout


def rebuild(
    path: str | os.PathLike[str],
    additions: Sequence[Item] | ItemSource = (),
    removals: Collection[str] = (),
    *,
    base: ImageStore | None = None,
    transform: Transform | None = None,
    on_item: OnItem | None = None,
    indexed: Collection[str] = DEFAULT_INDEXED,
    byte_additions: ItemSource | None = None,
) -> Header:
    """Publish a single-file store at `path`: `base` + `additions` - `removals`.

    base: the store to start from; by default the one at `path`, if any (a sharded
    store here converts it). An addition replaces a record with the same key. A
    sequence of additions is sorted here; a callable must yield them sorted by key,
    the same both times it is called. `transform` may rewrite every record on its way
    in, keeping its key and info. `indexed`: the fields indexed for filters. Memory
    stays flat: old records and new bytes stream through. On any failure the previous
    file is left as it was. The file is written in the newest format version.
    `byte_additions`: the additions again, for the pass that writes the image bytes
    (build.py's byte_items): their records need only their key and info.
    """
    path = Path(path)
    new_items = _sorted_source(additions)
    removed = frozenset(removals)
    with writer_lock(path):
        old = base if base is not None else ImageStore(path) if path.exists() else None

        def merged() -> Iterator[Item]:
            existing = store_items(old) if old is not None else iter(())
            return prepare_items(merge_by_key(existing, iter(new_items())), removed, transform)

        def merged_bytes() -> Iterator[Item]:
            assert byte_additions is not None
            existing = store_byte_items(old) if old is not None else iter(())
            return prepare_items(merge_by_key(existing, iter(byte_additions())), removed, None)

        try:
            with temporary(path) as temp:
                second = merged_bytes if byte_additions is not None else None
                header = build_file(temp, merged, on_item, indexed, second)
                publish(temp, path, durable=True)
            # Written here: never verified as a stranger's.
            trust.remember_path(path, header.count)
            return header
        except (lmdb.Error, OSError) as exc:
            raise _failed(path, exc) from None
        finally:
            if old is not None and base is None:
                old.close()


# ------------------------------------------------------------------ the sharded layout


def write_sharded(
    folder: str | os.PathLike[str],
    additions: Sequence[Item] | ItemSource = (),
    removals: Collection[str] = (),
    *,
    base: ImageStore | None = None,
    touched: Collection[str] = (),
    shard_bytes: int = 1 << 30,
    rewrite: bool = False,
    transform: Transform | None = None,
    on_item: OnItem | None = None,
    indexed: Collection[str] = DEFAULT_INDEXED,
) -> Header:
    """Publish a new version of the sharded store in `folder`; return its header.

    base: the store to start from: by default the sharded store in `folder`, if any;
    another store (a single file being converted) is rewritten whole. Appending to the
    folder's own store: shards holding a key in `removals`, in `touched` (keys whose
    record changes: relabeled, moved split) or given again in `additions` are
    rewritten; additions with new keys go into new shards; every other shard is left
    as it is, unless it is in an older format version or indexes other fields than
    `indexed` (then it is rewritten once). rewrite=True (compaction): every record into
    new full shards, in key order. New shards hold at most about `shard_bytes` of
    images each.
    """
    folder = Path(folder)
    new_items = _sorted_source(additions)
    removed = frozenset(removals)
    folder.mkdir(parents=True, exist_ok=True)
    fields = tuple(sorted(set(indexed)))
    with writer_lock(folder):
        tidy(folder)  # we hold the lock: whoever left these is gone
        own = base is None or base.path == folder
        if base is None and (folder / INDEX_NAME).exists():
            base = ImageStore(folder)
        try:
            if base is not None and own and not rewrite:
                parts = _append(
                    folder,
                    base,
                    new_items,
                    removed,
                    frozenset(touched),
                    shard_bytes,
                    transform,
                    on_item,
                    fields,
                )
            else:
                existing = store_items(base) if base is not None else iter(())
                merged = merge_by_key(existing, iter(new_items()))
                parts = _write_shards(
                    folder, prepare_items(merged, removed, transform), shard_bytes, on_item, fields
                )
            index = _publish_index(folder, parts)
        except (lmdb.Error, OSError) as exc:
            raise _failed(folder, exc) from None
        finally:
            if base is not None and own:
                base.close()
    return Header(index.count, index.total_bytes, index.content_digest, index.format, index.version)


def tidy(folder: str | os.PathLike[str]) -> list[str]:
    """Remove what a killed writer left in `folder`: temporary files, and shard files
    the index does not list (written, but never published). Call under
    writer_lock(folder). Returns the names removed."""
    folder = Path(folder)
    removed = []
    for stale in folder.iterdir():
        if is_temp(stale.name):
            stale.unlink(missing_ok=True)
            removed.append(stale.name)
    if (folder / INDEX_NAME).exists():
        for name in ImageStore(folder).stray_files():
            (folder / name).unlink()
            removed.append(name)
    return removed


def _write_shard(
    folder: Path, items: ItemSource, on_item: OnItem | None, indexed: tuple[str, ...]
) -> Part | None:
    """Write one shard of `items()` (sorted; called twice); return its part, or None if
    it would be empty. The file is named by its content, so an existing file of that
    name already holds exactly these bytes."""
    first: str | None = None
    last: str | None = None

    def tracked() -> Iterator[Item]:
        nonlocal first, last
        for item in items():
            first = first or item.record.key
            last = item.record.key
            yield item

    with temporary(folder / "shard-new.lmdb") as temp:
        header = build_file(temp, tracked, on_item, indexed)
        if header.count == 0:
            return None
        name = shard_name(header.content_digest)
        # Synced by the builder; the folder is synced once, before the index names it.
        publish(temp, folder / name, durable=False)
        trust.remember_path(folder / name, header.count)
    return Part(name, header.count, header.total_bytes, header.content_digest, first, last)


SHARD_IMAGES = 10_000  # at most, per shard: what relabeling one image rewrites


def _chunks(items: Iterable[Item], shard_bytes: int) -> Iterator[list[Item]]:
    """Consecutive items cut into groups of about `shard_bytes` of image bytes and at
    most SHARD_IMAGES images: a change to one image rewrites one group."""
    chunk: list[Item] = []
    size = 0
    for item in items:
        stored = item.record.stored_bytes
        if chunk and (size + stored > shard_bytes or len(chunk) >= SHARD_IMAGES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += stored
    if chunk:
        yield chunk


def _write_shards(
    folder: Path,
    items: Iterable[Item],
    shard_bytes: int,
    on_item: OnItem | None,
    indexed: tuple[str, ...],
) -> list[Part]:
    parts = []
    for chunk in _chunks(items, shard_bytes):
        part = _write_shard(folder, functools.partial(iter, chunk), on_item, indexed)
        if part is not None:
            parts.append(part)
    return parts


def _publish_index(folder: Path, parts: list[Part]) -> ShardIndex:
    """Switch to the new version: write the index whole, then drop unlisted shards."""
    index = ShardIndex.of(parts)
    fsync_dir(folder)  # every new shard's name is on disk before the index names it
    with atomic_write(folder / INDEX_NAME, durable=True) as out:
        out.write(index.encode())
    keep = {part.name for part in parts}
    for name in ImageStore(folder).stray_files():
        if name not in keep:
            (folder / name).unlink()
    return index


def _append(
    folder: Path,
    base: ImageStore,
    new_items: ItemSource,
    removed: frozenset[str],
    touched: frozenset[str],
    shard_bytes: int,
    transform: Transform | None,
    on_item: OnItem | None,
    indexed: tuple[str, ...],
) -> list[Part]:
    # One pass over the additions sorts them: items for keys a shard already holds
    # (replaced, relabeled) go to that shard, in order; the rest are new. Only their
    # records are kept, never bytes, and the additions are not read again for them.
    again: dict[str, list[Item]] = {}  # shard name -> its changed items, key order
    given_again: set[str] = set()
    for item in new_items():
        holder = base.part_of(item.record.key)
        if holder is not None:
            again.setdefault(holder, []).append(item)
            given_again.add(item.record.key)
    affected = set(again)
    for key in removed | touched:
        holder = base.part_of(key)
        if holder is not None:
            affected.add(holder)
    # A shard in an older format version, or indexing other fields, is rewritten once.
    for part in base.parts:
        if base.part(part.name).header.outdated(indexed) is not None:
            affected.add(part.name)

    parts = []
    for part in base.parts:
        if part.name not in affected:
            parts.append(part)
            continue
        file, mine = base.part(part.name), again.get(part.name, [])

        def items(file: StoreFile = file, mine: list[Item] = mine) -> Iterator[Item]:
            merged = merge_by_key(store_items(file), iter(mine))
            return prepare_items(merged, removed, transform)

        # Cut like new shards: a shard grown too large (an older store, a conversion)
        # is split as it is rewritten, so the next change to one of its keys costs less.
        parts += _write_shards(folder, items(), shard_bytes, on_item, indexed)
    fresh = (item for item in new_items() if item.record.key not in given_again)
    parts += _write_shards(
        folder, prepare_items(fresh, removed, transform), shard_bytes, on_item, indexed
    )
    return parts
