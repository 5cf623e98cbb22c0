"""Write an image store: always a new file, published whole with os.replace.

A published store is never written again: it may be a read-only link into DVC's cache
(shared/FACTS.md). Every write builds a new file beside it and renames it into place, so
a reader, a crash or a kill sees either the old store or the new one, never a mixture.

The bytes of the file depend only on the set of records: keys are written in sorted
order with append=True, under a transaction plan that depends only on that sequence,
with the on-disk engine pinned. Two passes keep all records (metadata) together at the
front of the file and the image bytes after them, so scanning metadata never touches
image pages.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from .format import (
    DB_IMAGES,
    DB_META,
    DB_NAMES,
    DB_RECORDS,
    HEADER_KEY,
    Record,
    StoreError,
    canonical_json,
    digest_entry,
    encode_key,
    make_header,
)
from .reader import ImageStore

# The transaction plan: a commit after this many bytes or records, whichever comes
# first. Part of the format's determinism: changing either changes the file's bytes.
BATCH_BYTES = 64 << 20
BATCH_RECORDS = 20_000
INITIAL_MAP_SIZE = 1 << 30
LMDB_ENGINE = 0  # LMDB 0.9.x on-disk format: readable by every py-lmdb and liblmdb


@dataclass(frozen=True)
class Item:
    """A record to write and how to read its bytes.

    `trusted` says the bytes come from a store that already proved them against their
    hash; otherwise the writer hashes them and refuses a mismatch.
    """

    record: Record
    read: Callable[[], bytes]
    trusted: bool = False


ItemSource = Callable[[], Iterable[Item]]


class ConcurrentWriteError(StoreError):
    """Another process is writing the same store."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


_held_locks: set[str] = set()


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold the one-writer-per-store lock; remove temp files that dead writers left.

    Re-entrant within a process, so a caller can plan and write under one lock.
    """
    lock_path = Path(path).with_name(f".{Path(path).name}.lock")
    ident = os.path.realpath(lock_path)
    if ident in _held_locks:
        yield
        return
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create lock file {lock_path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConcurrentWriteError(
                f"another process (pid {holder}) is writing {path}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for stale in Path(path).parent.glob(_temp_prefix(Path(path)) + "*"):
            stale.unlink(missing_ok=True)  # we hold the lock, so its writer is gone
        _held_locks.add(ident)
        try:
            yield
        finally:
            _held_locks.discard(ident)
    finally:
        os.close(fd)  # releases the lock


class _Builder:
    """Writes one new LMDB file by a fixed plan. Knows nothing of publishing."""

    def __init__(self, path: Path) -> None:
        self.map_size = INITIAL_MAP_SIZE
        # sync is done once, at the end, before the file is published.
        self.env = lmdb.open(
            str(path), subdir=False, map_size=self.map_size, max_dbs=len(DB_NAMES),
            lock=False, sync=False, metasync=False, writemap=False, meminit=True,
            readahead=False, lib_version=LMDB_ENGINE,
        )
        with self.env.begin(write=True) as txn:
            self.dbs = {name: self.env.open_db(name, txn=txn) for name in DB_NAMES}
        self.page_size = self.env.stat()["psize"]

    def commit(self, db_name: bytes, batch: list[tuple[bytes, bytes]], nbytes: int) -> None:
        if not batch:
            return
        self._make_room(nbytes + len(batch) * (2 * self.page_size + 64))
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    cursor = txn.cursor(db=self.dbs[db_name])
                    cursor.putmulti(batch, append=True)
                return
            except lmdb.MapFullError:
                # The estimate above makes this unreachable in practice; growing the map
                # is a function of the content alone, so the file stays deterministic.
                self._grow(self.map_size * 2)

    def _make_room(self, extra: int) -> None:
        used = (self.env.info()["last_pgno"] + 1) * self.page_size
        needed = used + extra + (16 << 20)
        size = self.map_size
        while size < needed:
            size *= 2
        if size != self.map_size:
            self._grow(size)

    def _grow(self, size: int) -> None:
        self.map_size = size
        self.env.set_mapsize(size)

    def finish(self) -> None:
        self.env.sync(True)
        self.env.close()

    def abort(self) -> None:
        self.env.close()


def write_store(
    path: str | os.PathLike[str],
    items: ItemSource,
    *,
    on_item: Callable[[Record], None] | None = None,
) -> dict[str, Any]:
    """Write the records `items()` yields as a new store at `path`; return its header.

    `items` is called twice and must yield the same records, in ascending key order,
    both times. An existing file at `path` is replaced whole, only once the new one is
    complete and on disk; on any failure it is left as it was.
    """
    path = Path(path)
    with writer_lock(path):
        return _write_locked(path, items, on_item)


def _write_locked(
    path: Path, items: ItemSource, on_item: Callable[[Record], None] | None
) -> dict[str, Any]:
    temp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}")
    try:
        builder = _Builder(temp)
        try:
            header = _build(builder, items, on_item)
        except BaseException:
            builder.abort()
            raise
        builder.finish()
        os.replace(temp, path)
        _fsync_dir(path.parent)
        return header
    except (lmdb.Error, OSError) as exc:
        raise StoreError(_describe_write_error(path, exc)) from None
    finally:
        temp.unlink(missing_ok=True)


def _describe_write_error(path: Path, exc: Exception) -> str:
    # LMDB reports a short write on a full disk as EIO, so ask the filesystem, while the
    # unfinished temp file still takes up its space.
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if getattr(exc, "errno", None) == errno.ENOSPC or (free is not None and free < 16 << 20):
        return f"disk full while writing {path}; the previous store is unchanged"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write {path}: {reason}; the previous store is unchanged"


def _build(
    builder: _Builder, items: ItemSource, on_item: Callable[[Record], None] | None
) -> dict[str, Any]:
    # Pass 1: records. Also checks order and fingerprints the key sequence and content.
    keys_seen = hashlib.sha256()
    content = hashlib.sha256()
    count = total = 0
    previous: bytes | None = None
    batch: list[tuple[bytes, bytes]] = []
    batch_bytes = 0
    for item in items():
        raw_key = encode_key(item.record.key)
        if previous is not None and raw_key <= previous:
            raise StoreError(
                f"records out of order or repeated: {item.record.key!r} after "
                f"{previous.decode()!r}"
            )
        previous = raw_key
        value = item.record.encode()
        keys_seen.update(raw_key + b"\0")
        content.update(digest_entry(raw_key, value))
        count += 1
        total += item.record.info.size
        batch.append((raw_key, value))
        batch_bytes += len(raw_key) + len(value)
        if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_RECORDS:
            builder.commit(DB_RECORDS, batch, batch_bytes)
            batch, batch_bytes = [], 0
    builder.commit(DB_RECORDS, batch, batch_bytes)

    # Pass 2: the bytes, in the same order, read and checked a batch ahead in a thread
    # (file reads, hashing and LMDB's commit all release the GIL, so they overlap).
    keys_again = hashlib.sha256()
    batch, batch_bytes = [], 0
    with _ReadAhead(items(), budget=BATCH_BYTES) as ahead:
        for record, data in ahead:
            raw_key = record.key.encode("utf-8")
            keys_again.update(raw_key + b"\0")
            batch.append((raw_key, data))
            batch_bytes += len(data)
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_RECORDS:
                builder.commit(DB_IMAGES, batch, batch_bytes)
                batch, batch_bytes = [], 0
            if on_item is not None:
                on_item(record)
    if keys_again.digest() != keys_seen.digest():
        raise StoreError("the records changed between the two passes of a write")
    builder.commit(DB_IMAGES, batch, batch_bytes)
    header = make_header(count, total, content.hexdigest())
    builder.commit(DB_META, [(HEADER_KEY, canonical_json(header))], 0)
    return header


class _ReadAhead:
    """Yield (record, bytes) for each item, read and checked by a thread up to `budget`
    bytes ahead of the consumer. Errors surface in the consumer, in order."""

    def __init__(self, items: Iterable[Item], budget: int) -> None:
        self._items = items
        self._budget = budget
        self._ready: collections.deque[tuple[Record, bytes]] = collections.deque()
        self._pending = 0
        self._done = self._stop = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="store-read-ahead", daemon=True)

    def __enter__(self) -> _ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._items:
                record = item.record
                data = item.read()
                if len(data) != record.info.size or (
                    not item.trusted and hashlib.sha256(data).hexdigest() != record.info.sha256
                ):
                    raise StoreError(
                        f"{record.key}: bytes changed since they were hashed; run again")
                with self._cond:
                    while self._pending >= self._budget and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    self._ready.append((record, data))
                    self._pending += len(data)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, in order
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[tuple[Record, bytes]]:
        while True:
            with self._cond:
                while not self._ready and not self._done:
                    self._cond.wait()
                if self._ready:
                    record, data = self._ready.popleft()
                    self._pending -= len(data)
                    self._cond.notify_all()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield record, data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rebuild(
    path: str | os.PathLike[str],
    additions: Sequence[Item] | ItemSource = (),
    removals: Collection[str] = (),
    *,
    on_item: Callable[[Record], None] | None = None,
    transform: Callable[[Record], Record] | None = None,
    source: ImageStore | None = None,
) -> dict[str, Any]:
    """Publish a new store: the store at `path` (if any) + `additions` - `removals`.

    An addition replaces an existing record with the same key. A sequence of additions
    is sorted here; a callable must yield them sorted by key. `transform` may rewrite
    every record (old and new) on its way in, keeping its key and info. `source`, if
    given, is the store to start from instead of the one at `path` (a shard, or the
    other layout). Memory stays flat: old records and new bytes stream through.
    """
    path = Path(path)
    if callable(additions):
        new_items: ItemSource = additions
    else:
        ordered = sorted(additions, key=lambda item: item.record.key.encode("utf-8"))
        new_items = lambda: ordered  # noqa: E731
    removed = frozenset(removals)

    with writer_lock(path):
        old = source if source is not None else ImageStore(path) if path.exists() else None

        def merged() -> Iterator[Item]:
            existing = _store_items(old) if old is not None else iter(())
            return prepare_items(_merge_by_key(existing, iter(new_items())), removed,
                                 transform)

        try:
            return _write_locked(path, merged, on_item)
        finally:
            if old is not None and source is None:
                old.close()


def prepare_items(items: Iterable[Item], removed: Collection[str],
                  transform: Callable[[Record], Record] | None) -> Iterator[Item]:
    """Items minus the removed keys, each record passed through `transform` (which may
    change anything but its key and info)."""
    for item in items:
        if item.record.key in removed:
            continue
        if transform is not None:
            record = transform(item.record)
            if record.key != item.record.key or record.info != item.record.info:
                raise StoreError(f"{record.key}: a transform may not change a record's "
                                 "key or info")
            item = Item(record, item.read, item.trusted)
        yield item


def store_items(store: ImageStore) -> Iterator[Item]:
    """Every record of a store as an Item whose bytes are read from it (already proven)."""
    return _store_items(store)


def _store_items(store: ImageStore) -> Iterator[Item]:
    get = store.get
    for record in store.records():
        yield Item(record, lambda key=record.key: get(key), trusted=True)


def _merge_by_key(old: Iterator[Item], new: Iterator[Item]) -> Iterator[Item]:
    """Merge two key-sorted streams; on equal keys the new item wins."""
    sentinel = None
    a, b = next(old, sentinel), next(new, sentinel)
    while a is not None or b is not None:
        if b is None or (a is not None and a.record.key.encode() < b.record.key.encode()):
            yield a
            a = next(old, sentinel)
        elif a is None or b.record.key.encode() < a.record.key.encode():
            yield b
            b = next(new, sentinel)
        else:
            yield b
            a, b = next(old, sentinel), next(new, sentinel)
