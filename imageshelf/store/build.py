"""Build one store file by a fixed plan: the bytes depend only on the records.

Keys are written in sorted order with append=True, under a transaction plan that
depends only on that sequence, with the on-disk engine pinned. Two passes keep all
records (metadata) together at the front of the file and the image bytes after them,
so scanning metadata never touches image pages. Building writes a new file at a path
the caller chose (a temporary one); publishing it is writer.py's job.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from ..base.atomic import write_error
from .fields import FieldIndex
from .file import StoreFile
from .format import (
    CHUNK_BYTES,
    CHUNK_KEY,
    DB_BLOBS,
    DB_FIELDS,
    DB_LOCATIONS,
    DB_META,
    DB_NAMES,
    DB_PAIRED,
    DB_RECORDS,
    DEFAULT_INDEXED,
    FORMAT_VERSION,
    HEADER_KEY,
    LOCATION,
    PAIRED_VERSION,
    SHARED_VERSION,
    StoreError,
    digest_entry,
    encode_key,
    parse_json,
)
from .reader import ImageStore
from .values import Header, ImageInfo, Record

# The transaction plan: a commit after this many bytes or records, whichever comes
# first. Part of the format's determinism: changing either changes the file's bytes.
BATCH_BYTES = 64 << 20
BATCH_RECORDS = 20_000
Buffer = bytes | bytearray  # a value LMDB copies in: a chunk goes as the bytearray it was filled in
INITIAL_MAP_SIZE = 1 << 30
LMDB_ENGINE = 0  # LMDB 0.9.x on-disk format: readable by every py-lmdb and liblmdb


@dataclass(frozen=True)
class Item:
    """A record to write and how to read its bytes.

    `trusted` says the bytes come from a store that already proved them against their
    hash; otherwise the writer hashes them and refuses a mismatch. `raw` is the record
    as a store holds it, when `record` is what it decodes to: written as it is, not
    encoded again (a rewrite carries most records through unchanged). `read_paired(role)`
    reads the bytes of each of the record's paired images (checked as the image's are).
    """

    record: Record
    read: Callable[[], bytes]
    trusted: bool = False
    raw: bytes | None = None
    read_paired: Callable[[str], bytes] | None = None


ItemSource = Callable[[], Iterable[Item]]


class _Builder:
    """Writes one new LMDB file by a fixed plan. Knows nothing of publishing.

    The file is written through its memory map (`writemap`) where the file system can
    reserve space: LMDB then puts pages straight into the page cache, instead of copying
    each into a buffer and writing it at commit (a first build of 373 MB: 0.5 s instead
    of 1.6 s). Such a map makes the file as long as the map, and writing into a page the
    disk cannot hold would kill the process (SIGBUS): so the space each commit can use
    is reserved first (`posix_fallocate`, which fails with ENOSPC instead), and the file
    is cut back to its last page when finished. Where space cannot be reserved (macOS,
    a file system without fallocate) the file is written the slower way.
    """

    def __init__(self, path: Path) -> None:
        self.map_size = INITIAL_MAP_SIZE
        self.path = path
        self.reserved = 0
        self.writemap = _can_reserve(path)
        # sync is done once, at the end, before the file is published.
        self.env = lmdb.open(
            str(path),
            subdir=False,
            map_size=self.map_size,
            max_dbs=len(DB_NAMES) + 1,  # and `paired`, where used
            lock=False,
            sync=False,
            metasync=False,
            writemap=self.writemap,
            readahead=False,
            lib_version=LMDB_ENGINE,
        )
        self.fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        self.page_size = self.env.stat()["psize"]
        self._make_room(0)
        with self.env.begin(write=True) as txn:
            self.dbs = {name: self.env.open_db(name, txn=txn) for name in DB_NAMES}

    def commit(self, db_name: bytes, batch: list[tuple[bytes, Buffer]], nbytes: int) -> None:
        if not batch:
            return
        self._make_room(nbytes + len(batch) * (2 * self.page_size + 64))
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    if db_name not in self.dbs:  # `paired`: only in files that use it
                        self.dbs[db_name] = self.env.open_db(db_name, txn=txn)
                    cursor = txn.cursor(db=self.dbs[db_name])
                    cursor.putmulti(batch, append=True)
                if self.writemap:
                    # Map the file anew (the same size): the pages this commit wrote
                    # leave the process's memory for the page cache, where the kernel
                    # writes them back: pack holds one commit, not the whole file.
                    self.env.set_mapsize(self.map_size)
                return
            except lmdb.MapFullError:
                # The estimate above makes this unreachable in practice; growing the map
                # is a function of the content alone, so the file stays deterministic.
                self._grow(self.map_size * 2)

    def _make_room(self, extra: int) -> None:
        """Room for a commit of at most `extra` bytes (its values, and two pages and a
        node per item: more than LMDB can use for them), plus a megabyte for the pages
        a commit copies (the paths to the new leaves, the free list, the meta page)."""
        most = self._used() + extra + (1 << 20)
        needed = most + (15 << 20)  # the map: a margin more
        size = self.map_size
        while size < needed:
            size *= 2
        if size != self.map_size:
            self._grow(size)
        self._reserve(most)

    def _used(self) -> int:
        return (self.env.info()["last_pgno"] + 1) * self.page_size

    def _reserve(self, size: int) -> None:
        """Make sure the disk holds the file's first `size` bytes (see the class)."""
        if not self.writemap or size <= self.reserved:
            return
        try:
            os.posix_fallocate(self.fd, self.reserved, size - self.reserved)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self.reserved = size

    def _grow(self, size: int) -> None:
        self.map_size = size
        self.env.set_mapsize(size)

    def finish(self) -> None:
        used = self._used()
        self.env.sync(True)
        self.env.close()
        try:
            if self.writemap:
                os.ftruncate(self.fd, used)  # the map's length beyond the last page: gone
                os.fsync(self.fd)
        finally:
            os.close(self.fd)

    def abort(self) -> None:
        self.env.close()
        os.close(self.fd)


def _can_reserve(path: Path) -> bool:
    """Whether the file system reserves space for a new file at `path` (`_Builder`):
    tried on the empty file LMDB then opens as new. ENOSPC and the like are raised."""
    if not hasattr(os, "posix_fallocate"):
        return False  # macOS
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.posix_fallocate(fd, 0, 1 << 16)
        return True
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return False
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)


def build_file(
    path: Path,
    items: ItemSource,
    on_item: Callable[[Record], None] | None = None,
    indexed: Iterable[str] = DEFAULT_INDEXED,
    byte_items: ItemSource | None = None,
) -> Header:
    """Write the records `items()` yields as a new store file at `path`; return its
    header. `items` is called twice and must yield the same records, in ascending key
    order, both times. `indexed`: the fields whose values the file indexes for filters.
    `byte_items`, if given, is called for the second pass instead (the image bytes):
    the same keys with the same info, but its records need nothing else, so a caller
    can skip the work of making whole ones. Synced to disk before it returns; the
    caller publishes it."""
    builder = _Builder(path)
    try:
        passes = (items, byte_items or items)
        header = _build(builder, passes, on_item, tuple(sorted(set(indexed))))
    except BaseException:
        builder.abort()
        raise
    builder.finish()
    return header


def describe_write_error(path: Path, exc: Exception) -> str:
    # LMDB reports a short write on a full disk as EIO, so ask the filesystem, while the
    # unfinished temp file still takes up its space.
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    source = getattr(exc, "filename", None)
    if isinstance(source, str) and Path(source).parent not in (path.parent, path):
        # Not the store's own files: an image being read into it.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot read {source}: {reason}; the previous store is unchanged"
    low = free is not None and free < 16 << 20
    return str(write_error(path, exc, disk_full=low, what="store"))


class _Batches:
    """Puts into one database, committed BATCH_BYTES or BATCH_RECORDS at a time (the
    sizes given are what the map grows by: a function of the content alone)."""

    def __init__(self, builder: _Builder, db_name: bytes) -> None:
        self.builder, self.db_name = builder, db_name
        self.items: list[tuple[bytes, Buffer]] = []
        self.size = 0

    def add(self, key: bytes, value: Buffer, size: int) -> None:
        self.items.append((key, value))
        self.size += size
        if self.size >= BATCH_BYTES or len(self.items) >= BATCH_RECORDS:
            self.flush()

    def flush(self) -> None:
        self.builder.commit(self.db_name, self.items, self.size)
        self.items, self.size = [], 0


def _build(
    builder: _Builder,
    passes: tuple[ItemSource, ItemSource],
    on_item: Callable[[Record], None] | None,
    indexed: tuple[str, ...],
) -> Header:
    index = FieldIndex(indexed)
    count, total, keys_seen, content = _write_records(builder, passes[0], index)
    placed = _write_bytes(builder, passes[1], on_item)
    if placed.keys_seen.digest() != keys_seen:
        raise StoreError("the records changed between the two passes of a write")
    fields = _Batches(builder, DB_FIELDS)  # one value per (field, value), in key order
    for entry, keys in index.entries():
        fields.add(entry, keys, len(entry) + len(keys))
    fields.flush()
    if placed.paired:
        version = PAIRED_VERSION
    else:
        version = SHARED_VERSION if len(placed.first_place) < count else FORMAT_VERSION
    header = Header(
        count, total, content, version=version, indexed=index.indexed, not_indexed=index.not_indexed
    )
    builder.commit(DB_META, [(HEADER_KEY, header.encode())], 0)
    return header


def _write_records(
    builder: _Builder, items: ItemSource, index: FieldIndex
) -> tuple[int, int, bytes, str]:
    """Pass 1: the records, and the index of their fields. Checks their order; returns
    (count, total bytes, a digest of the key sequence, the content digest)."""
    keys_seen = hashlib.sha256()
    content = hashlib.sha256()
    count = total = 0
    previous: bytes | None = None
    records = _Batches(builder, DB_RECORDS)
    for item in items():
        record = item.record
        raw_key = encode_key(record.key)
        if previous is not None and raw_key <= previous:
            raise StoreError(
                f"records out of order or repeated: {record.key!r} after {previous.decode()!r}"
            )
        previous = raw_key
        value = item.raw if item.raw is not None else record.encode()
        keys_seen.update(raw_key + b"\0")
        content.update(digest_entry(raw_key, value))
        count += 1
        total += record.stored_bytes
        records.add(raw_key, value, len(raw_key) + len(value))
        index.add(raw_key, record)
    records.flush()
    return count, total, keys_seen.digest(), content.hexdigest()


class _Placer:
    """Pass 2's state: image bytes into chunks, back to back, and where each lies."""

    def __init__(self, builder: _Builder) -> None:
        self.blobs = _Batches(builder, DB_BLOBS)
        self.places = _Batches(builder, DB_LOCATIONS)
        self.paired_places = _Batches(builder, DB_PAIRED)
        self.first_place: dict[str, bytes] = {}  # sha256 -> where those bytes lie
        self.filling = bytearray()
        self.number = 0
        self.paired = 0  # paired images placed
        self.keys_seen = hashlib.sha256()

    def place(self, sha256: str, read: Callable[[], bytes]) -> bytes:
        """Where the bytes of `sha256` lie: an earlier place of the same bytes, or the
        end of the chunk being filled (`read()` gives them, checked)."""
        place = self.first_place.get(sha256)
        if place is None:
            data = read()
            if self.filling and len(self.filling) + len(data) > CHUNK_BYTES:
                self.blobs.add(CHUNK_KEY.pack(self.number), self.filling, len(self.filling))
                self.number += 1
                self.filling = bytearray()
            place = LOCATION.pack(self.number, len(self.filling), len(data))
            self.first_place[sha256] = place
            self.filling += data
        return place

    def add(self, item: Item) -> None:
        record = item.record
        raw_key = record.key.encode("utf-8")
        self.keys_seen.update(raw_key + b"\0")
        place = self.place(record.info.sha256, lambda: _checked_bytes(item))
        self.places.add(raw_key, place, LOCATION.size)
        for role in record.roles():
            paired = record.paired[role]
            place = self.place(paired.info.sha256, functools.partial(_checked_paired, item, role))
            name = raw_key + b"\0" + role.encode("utf-8")
            self.paired_places.add(name, place, LOCATION.size)
            self.paired += 1

    def flush(self) -> None:
        if self.filling:  # the last chunk, with the rest
            self.blobs.items.append((CHUNK_KEY.pack(self.number), self.filling))
            self.blobs.size += len(self.filling)
        self.blobs.flush()
        self.places.flush()
        self.paired_places.flush()


def _write_bytes(
    builder: _Builder, items: ItemSource, on_item: Callable[[Record], None] | None
) -> _Placer:
    """Pass 2: the bytes, in the same order, back to back in chunks, and where each lies;
    each image's paired images right after it, in role order. Bytes an earlier image of
    this file has take that image's place (format 2.1): the same bytes under several
    names are stored once.

    Read in this thread: a reader thread handing bytes over was slower (4.35 s against
    4.1 s for 20,000 images), each of its system calls waiting to take the GIL back."""
    placer = _Placer(builder)
    for item in items():
        placer.add(item)
        if on_item is not None:
            on_item(item.record)
    placer.flush()
    return placer


def _checked_bytes(item: Item) -> bytes:
    """An item's bytes, checked against its record's size and, unless already proven,
    its hash."""
    record = item.record
    data = item.read()
    if len(data) != record.info.size or (
        not item.trusted and hashlib.sha256(data).hexdigest() != record.info.sha256
    ):
        raise StoreError(f"{record.key}: bytes changed since they were hashed; run again")
    return data


def _checked_paired(item: Item, role: str) -> bytes:
    """The bytes of an item's paired image `role`, checked as _checked_bytes does."""
    record = item.record
    paired = record.paired[role]
    if item.read_paired is None:
        raise StoreError(f"{record.key}: no way to read its paired image {role!r}")
    data = item.read_paired(role)
    if len(data) != paired.info.size or (
        not item.trusted and hashlib.sha256(data).hexdigest() != paired.info.sha256
    ):
        raise StoreError(f"{paired.file}: bytes changed since they were hashed; run again")
    return data


def prepare_items(
    items: Iterable[Item], removed: Collection[str], transform: Callable[[Record], Record] | None
) -> Iterator[Item]:
    """Items minus the removed keys, each record passed through `transform` (which may
    change anything but its key and info)."""
    for item in items:
        if item.record.key in removed:
            continue
        if transform is not None:
            record = transform(item.record)
            if record is not item.record:  # changed: encoded anew
                before = item.record
                if (record.key, record.info, record.paired) != (
                    before.key,
                    before.info,
                    before.paired,
                ):
                    raise StoreError(
                        f"{record.key}: a transform may not change a record's key, info "
                        "or paired images"
                    )
                item = Item(record, item.read, item.trusted, None, item.read_paired)
        yield item


def store_byte_items(store: ImageStore | StoreFile) -> Iterator[Item]:
    """`store_items` for a second pass (`build_file`'s byte_items): each record holds
    only its key and info, read off its JSON without the checks the first pass made."""
    get, get_paired = store.get, store.get_paired
    for key, raw in store.raw_records():
        obj = parse_json(raw)
        info = ImageInfo(obj["sha256"], obj["size"], obj["format"], obj["width"], obj["height"])
        paired = obj.get("paired")
        if paired is None:
            yield Item(Record(key, info), functools.partial(get, key), trusted=True)
        else:  # rare: a record with paired images is decoded whole
            record = Record.decode(key, raw)
            read_paired = functools.partial(get_paired, key)
            yield Item(record, functools.partial(get, key), True, None, read_paired)


def store_items(store: ImageStore | StoreFile) -> Iterator[Item]:
    """Every record of a store as an Item whose bytes are read from it (already proven)."""
    get, get_paired = store.get, store.get_paired
    for key, raw in store.raw_records():
        record = Record.decode(key, raw)
        read_paired = functools.partial(get_paired, key) if record.paired else None
        yield Item(record, functools.partial(get, key), True, raw, read_paired)


def merge_by_key(old: Iterator[Item], new: Iterator[Item]) -> Iterator[Item]:
    """Merge two key-sorted streams; on equal keys the new item wins."""
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.record.key.encode() < b.record.key.encode()):
            assert a is not None
            yield a
            a = next(old, None)
        elif a is None or b.record.key.encode() < a.record.key.encode():
            yield b
            b = next(new, None)
        else:
            yield b
            a, b = next(old, None), next(new, None)
