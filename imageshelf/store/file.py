"""Read one store file: read-only, lock-free, lazily opened in each process.

A store (reader.py) is one such file in the single layout, or a folder of them.
"""

from __future__ import annotations

import os
import stat
from threading import Lock, get_ident, local
from weakref import ref

import lmdb

from . import trust
from .fields import count_postings, index_key, iter_postings
from .format import (
    DB_META,
    FORMAT_VERSION,
    HEADER_KEY,
    MAX_KEY_BYTES,
    StoreError,
    check_header,
    check_version,
    header_object,
    stored_key,
)
from .v1 import V1Reader
from .v2 import V2Reader

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path
    from typing import Any, NoReturn

    from .values import Header, ImageInfo, Record

    Fetch = Callable[[bytes], bytes | None]  # raw key -> the image's bytes, or None


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


# The reader of each major format version this code reads (docs/FORMAT.md), chosen by
# the header's major when a file is opened. A file of any other major is refused there,
# naming these: a reader never guesses at a layout it does not know.
READERS: dict[int, type[V1Reader | V2Reader]] = {1: V1Reader, 2: V2Reader, 3: V2Reader}


def reader_of(obj: dict[str, Any], where: str) -> type[V1Reader | V2Reader]:
    """The reader of the version a header object names; UnsupportedVersionError,
    naming the versions this code reads, for any other."""
    version = str(obj.get("version", ""))
    check_version(version, FORMAT_VERSION, where, "store format", tuple(map(str, READERS)))
    return READERS[int(version.split(".")[0])]


class _OpenStore:
    """One open LMDB environment for one store file, shared within a process, and the
    reader of its format version.

    py-lmdb refuses to open the same file twice in one process, so every StoreFile on
    the same file shares one of these.
    """

    def __init__(self, path: str, st: os.stat_result) -> None:
        size = st.st_size
        # A file from elsewhere is verified offline before the engine maps a page of it.
        trust.check(path, st)
        memory = _physical_memory()
        # Readahead helps random reads of small values while the file fits in RAM
        # (measured: 2.7x faster cold); beyond that it only evicts useful pages.
        readahead = not memory or size <= memory // 2
        try:
            # lock=False: no lock file, so it works on read-only files and folders (DVC's
            # cache). Safe because a published store is never written again.
            self.env = lmdb.open(
                path,
                subdir=False,
                readonly=True,
                lock=False,
                readahead=readahead,
                max_dbs=6,
            )
        except lmdb.Error as exc:
            raise StoreError(f"{path}: cannot open as an image store: {exc}") from None
        try:
            self._check_length(path, size)
            self.header_json, self.version = self._open_version(path)
        except lmdb.Error as exc:
            self.env.close()
            raise StoreError(f"{path}: not an image store: {exc}") from None
        except BaseException:
            self.env.close()
            raise
        self.db_records, self.db_fields = self.version.db_records, self.version.db_fields
        self._header: Header | None = None
        self.generation = _fork_generation
        self.path = path
        self._local = local()

    def _check_length(self, path: str, size: int) -> None:
        # A truncated file would make LMDB touch pages past its end: SIGBUS, not an error.
        needed = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        if size < needed:
            raise StoreError(
                f"{path}: store file is truncated ({size} bytes, its index needs {needed})"
            )

    def _open_version(self, path: str) -> tuple[dict[str, Any], V1Reader | V2Reader]:
        """The header's JSON, checked, and the reader of its version: the door a file
        comes through."""
        with self.env.begin(db=self.env.open_db(DB_META, create=False)) as txn:
            raw = txn.get(HEADER_KEY)
        if raw is None:
            raise StoreError(f"{path}: not an image store (no header record)")
        obj = header_object(raw, path)
        reader = reader_of(obj, path)  # before the fields: another major may have others
        check_header(obj, path)
        return obj, reader(self.env, path, int(obj["version"].split(".")[0]))

    @property
    def header(self) -> Header:
        """The Header, built when first asked for, not to read an image by key (see
        the package's docstring); its fields were checked at the door."""
        header = self._header
        if header is None:
            from .values import Header

            header = self._header = Header.from_json(self.header_json, self.path)
        return header

    def txn(self) -> lmdb.Transaction:
        # One long-lived read transaction per thread: the file never changes under it.
        txn = getattr(self._local, "txn", None)
        if txn is None:
            txn = self._local.txn = self.env.begin(buffers=False)
        return txn

    def fetch(self) -> Fetch:
        """This thread's reader of image bytes by raw key (None: no such record)."""
        fetch = getattr(self._local, "fetch", None)
        if fetch is None:
            fetch = self._local.fetch = self.version.fetch()
        return fetch

    def paired_fetch(self) -> Fetch:
        """This thread's reader of paired images by raw key NUL role (None: not there)."""
        fetch = getattr(self._local, "paired", None)
        if fetch is None:
            fetch = self._local.paired = self.version.paired_fetch()
        return fetch

    def close(self) -> None:
        self.env.close()


# (device, inode) -> the open store, weakly: it closes when no reader uses it.
_open_stores: dict[tuple[int, int], ref[_OpenStore]] = {}
_open_lock = Lock()


def _open_store(ident: tuple[int, int]) -> _OpenStore | None:
    held = _open_stores.get(ident)
    opened = held() if held is not None else None
    if held is not None and opened is None:
        del _open_stores[ident]
    return opened


def _stat(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StoreError(
            f"{path}: no such store file; in a clone, `dvc pull` fetches it; in a new "
            "project, `dvc repro` makes it"
        ) from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read store: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):  # opening a FIFO would never return
        raise StoreError(f"{path}: not a regular file (a pipe, socket, device or folder)")
    return st


def _acquire(path: str) -> _OpenStore:
    # A writer may replace the file between our stat and LMDB's open. Only when the name
    # points at the same file before and after opening do we know which file we opened.
    for _attempt in range(20):
        before = _stat(path)
        ident = (before.st_dev, before.st_ino)
        with _open_lock:
            opened = _open_store(ident)
            if opened is not None:
                return opened
            try:
                opened = _OpenStore(path, before)
            except StoreError:
                if _same_file(path, ident):
                    raise
                continue  # replaced while opening: what failed was a mix of two files
            if _same_file(path, ident):
                _open_stores[ident] = ref(opened)
                return opened
            opened.close()
    raise StoreError(f"{path}: the file is being replaced too often to open it")


def _same_file(path: str, ident: tuple[int, int]) -> bool:
    try:
        after = os.stat(path)
    except OSError:
        return False
    return (after.st_dev, after.st_ino) == ident


_fork_generation = 0  # bumped in a forked child: handles from before the fork are stale
# The same number in a list, for readers that keep a reference to it (one subscript to
# check, no global lookup): ImageStore's key -> part fast path.
FORK_GENERATION = [0]


def _forget_inherited_stores() -> None:
    # After fork the child holds the parent's environments; py-lmdb would refuse to
    # reopen those files, and using them leaks reader state. Close them in the child.
    global _fork_generation
    _fork_generation += 1
    FORK_GENERATION[0] = _fork_generation
    for held in list(_open_stores.values()):
        opened = held()
        try:  # noqa: SIM105 - contextlib is not imported on the reading path
            if opened is not None:
                opened.close()
        except lmdb.Error:
            pass
    _open_stores.clear()


os.register_at_fork(after_in_child=_forget_inherited_stores)


class StoreFile:
    """Read images and their metadata from one store file by key.

    Opens lazily, read-only and without a lock file, once per process: safe to create
    before `fork`, to pickle into `spawn`ed workers, and to use on read-only files.
    A file is a snapshot: if it is replaced, this object keeps reading the version it
    opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._opened: _OpenStore | None = None
        self._fast: tuple[int, int, Any] | None = None  # (generation, thread, txn.get)

    @property
    def path(self) -> Path:
        """The file's path (pathlib is imported on first use, not to open and read)."""
        from pathlib import Path

        return Path(self._path)

    def _store(self) -> _OpenStore:
        opened = self._opened
        if opened is None or opened.generation != _fork_generation:
            opened = self._opened = _acquire(self._path)
            self._fast = None
        return opened

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]  # unopened

    def __repr__(self) -> str:
        return f"StoreFile({self._path!r})"

    def open(self) -> None:
        """Open the file now (once per process): a missing or damaged file fails here,
        not at its first read."""
        self._store()

    def close(self) -> None:
        """Drop this object's handle; the file closes when no StoreFile uses it."""
        self._opened = None
        self._fast = None

    @property
    def header(self) -> Header:
        """The file's header: format, version, hash, count, total_bytes, content_digest."""
        return self._store().header

    def __len__(self) -> int:
        return self._store().header.count

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        opened = self._store()
        return opened.txn().get(_raw(key), db=opened.db_records) is not None

    def __iter__(self) -> Iterator[str]:
        """Keys in sorted order, streamed."""
        opened = self._store()
        cursor = opened.txn().cursor(db=opened.db_records)
        for raw_key in cursor.iternext(keys=True, values=False):
            yield stored_key(raw_key)

    def keys(self) -> list[str]:
        """All keys, in sorted order."""
        return list(self)

    def key_range(self) -> tuple[str | None, str | None]:
        """The first and the last key, or (None, None) if the file is empty."""
        opened = self._store()
        cursor = opened.txn().cursor(db=opened.db_records)
        if not cursor.first():
            return None, None
        first = stored_key(cursor.key())
        cursor.last()
        return first, stored_key(cursor.key())

    def txn_get(self) -> Fetch:
        """This thread's reader of image bytes by raw key (the hot path of reads)."""
        return self._store().fetch()

    def get(self, key: str) -> bytes:
        """The image's original bytes. Raises KeyError naming a missing key."""
        # The hot path of training: a bound reader, checked by two integer compares.
        fast = self._fast
        if fast is None or fast[0] != _fork_generation or fast[1] != get_ident():
            fast = self._fast = (_fork_generation, get_ident(), self._store().fetch())
        try:
            data = fast[2](key.encode("utf-8"))
        except (lmdb.BadValsizeError, UnicodeEncodeError, AttributeError):
            raise KeyError(key) from None  # a key the store could never hold
        if data is None:
            self.missing(key)
        return data

    def missing(self, key: str) -> NoReturn:
        """Raise for a key whose image bytes are not here: KeyError if the store does
        not list it, StoreError if it does (a damaged store: a record without bytes)."""
        if key in self:
            raise StoreError(f"{self._path}: damaged store: {key!r} has a record but no image")
        raise KeyError(key)

    def get_many(self, keys: Iterable[str]) -> list[bytes]:
        """Original bytes for each key, in the order given."""
        fetch = self._store().fetch()
        out = []
        for key in keys:
            data = fetch(_raw(key))
            if data is None:
                self.missing(key)
            out.append(data)
        return out

    def get_paired(self, key: str, role: str) -> bytes:
        """The original bytes of the image paired with `key` in `role` (a mask, ...).
        KeyError if the store has no such image or it has no such paired image."""
        raw = _raw(key)
        data = self._store().paired_fetch()(raw + b"\0" + role.encode("utf-8", "replace"))
        if data is None:
            if role in self.record(key).paired:  # KeyError for a key not here
                raise StoreError(
                    f"{self._path}: damaged store: {key!r} names a paired {role!r} it lacks"
                )
            raise KeyError(f"{key}: no paired image {role!r}")
        return data

    def paired_locations(self) -> Iterator[tuple[str, str, int, int, int]]:
        """3.0: (key, role, chunk, offset, size) of every paired image, in key and role
        order, for validate."""
        opened = self._store()
        return opened.version.paired_locations(opened.txn())

    def raw_record(self, key: str) -> bytes:
        """One record's JSON as stored. Raises KeyError naming a missing key."""
        opened = self._store()
        raw = opened.txn().get(_raw(key), db=opened.db_records)
        if raw is None:
            raise KeyError(key)
        return raw  # type: ignore[return-value]

    def record(self, key: str) -> Record:
        """Key, info and metadata of one image, without its bytes."""
        from .values import Record  # with the first record, not the first image

        return Record.decode(key, self.raw_record(key))

    @property
    def indexed(self) -> tuple[str, ...]:
        """The fields whose values this file indexes (none before format 2.0)."""
        return self._store().header.indexed

    def postings(self, name: str, value: str) -> list[str] | None:
        """The keys whose field `name` holds the text `value`, in key order; None if
        this file does not index `name` (a filter must then read every record)."""
        raw = self._postings(name, value)
        if raw is None:
            return None
        try:
            return [stored_key(k) for k in iter_postings(raw)]
        except StoreError as exc:
            raise StoreError(f"{self._path}: {exc}") from None

    def _postings(self, name: str, value: str) -> bytes | None:
        """The stored postings of one value (b"" if none); None if `name` is not indexed."""
        opened = self._store()
        if opened.db_fields is None or name not in opened.header.indexed:
            return None
        entry = index_key(name, value)
        raw = opened.txn().get(entry, db=opened.db_fields) if entry is not None else None
        return b"" if raw is None else bytes(raw)

    def indexed_records(
        self,
        name: str,
        values: Iterable[str],
        after: str | None = None,
        before: str | None = None,
    ) -> Iterator[tuple[str, bytes]] | None:
        """(key, record JSON) of each record whose field `name` holds one of the texts
        `values`, through the index, in key order, read as consumed (a page stops
        early); with `after`, the keys after it; with `before`, the keys before it,
        nearest first. None if `name` is not indexed."""
        import heapq  # not at the top: a process that only reads images never needs them
        import itertools

        streams = []
        for value in sorted(set(values)):
            raw = self._postings(name, value)
            if raw is None:
                return None
            streams.append(iter_postings(raw))
        keys = streams[0] if len(streams) == 1 else _once(heapq.merge(*streams))
        low = after.encode("utf-8", "surrogatepass") if after else None
        if before is not None:
            high = before.encode("utf-8", "surrogatepass")
            below = list(itertools.takewhile(lambda k: k < high, keys))
            keys = reversed([k for k in below if low is None or k > low])
        elif low is not None:
            keys = itertools.dropwhile(lambda k: k <= low, keys)
        return self._records_of(keys)

    def _records_of(self, raw_keys: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
        try:
            for raw_key in raw_keys:
                key = stored_key(raw_key)
                yield key, self.raw_record(key)
        except StoreError as exc:
            if str(exc).startswith(str(self._path)):
                raise
            raise StoreError(f"{self._path}: {exc}") from None

    def locations(self) -> Iterator[tuple[str, int, int, int]]:
        """2.0: (key, chunk, offset, size) of every image, in key order, for validate."""
        opened = self._store()
        return opened.version.locations(opened.txn())

    def chunk_sizes(self) -> list[tuple[int, int]]:
        """2.0: (chunk number, length) of every chunk, in order."""
        return self._store().version.chunk_sizes()

    def index_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """2.0: every (field NUL value, postings) of the index, in order."""
        opened = self._store()
        if opened.db_fields is None:
            return
        cursor = opened.txn().cursor(db=opened.db_fields)
        yield from cursor.iternext(keys=True, values=True)  # type: ignore[misc]

    def info(self, key: str) -> ImageInfo:
        """Hash, size, format, width and height of one image."""
        return self.record(key).info

    def metadata(self, key: str) -> dict[str, Any]:
        """The user's metadata for one image (label, boxes, text, ...)."""
        return self.record(key).metadata

    def stat(self) -> dict[str, int]:
        """Entries actually present in each database: `records` and `images`."""
        opened = self._store()
        txn = opened.txn()
        records = txn.stat(opened.db_records)["entries"]
        # 2.0: the images are their locations (validate proves each one).
        images = txn.stat(opened.version.db_images)["entries"]
        return {"records": records, "images": images}

    def records(self) -> Iterator[Record]:
        """Every record in key order, without reading any image bytes."""
        from .values import Record  # with the first record, not the first image

        for key, raw in self.raw_records():
            yield Record.decode(key, raw)

    def raw_records(
        self, after: str | None = None, before: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """(key, record JSON as stored) in key order: for fast scans and filters. With
        `after`, only the keys that sort after it (a page's cursor: one B-tree seek);
        with `before`, the keys that sort before it, nearest first."""
        opened = self._store()
        cursor = opened.txn().cursor(db=opened.db_records)
        if before is not None:
            yield from _descending(cursor, before.encode("utf-8", "surrogatepass"))
            return
        start = after.encode("utf-8", "surrogatepass") if after else b""
        if start and not cursor.set_range(start[:MAX_KEY_BYTES]):
            return
        for raw_key, raw in cursor.iternext(keys=True, values=True):
            if start and raw_key <= start:  # type: ignore[operator]
                continue  # the cursor itself (or, for an overlong cursor, its prefix)
            yield stored_key(raw_key), raw  # type: ignore[misc]

    def value_counts(self, name: str) -> dict[str, int] | None:
        """{value: how many records hold it} of the indexed field `name`, read off the
        field index alone (no record is read); None if this file does not index it."""
        opened = self._store()
        if opened.db_fields is None or name not in opened.header.indexed:
            return None
        prefix = name.encode("utf-8") + b"\0"
        counts: dict[str, int] = {}
        cursor = opened.txn().cursor(db=opened.db_fields)
        if not cursor.set_range(prefix):
            return counts
        for raw_key, raw in cursor.iternext(keys=True, values=True):
            name_value = bytes(raw_key)
            if not name_value.startswith(prefix):
                break
            value = name_value[len(prefix) :].decode("utf-8", "replace")
            counts[value] = count_postings(raw)
        return counts


def _once(keys: Iterator[bytes]) -> Iterator[bytes]:
    """Sorted keys with repeats dropped (a key whose field holds two of the values)."""
    previous = None
    for key in keys:
        if key != previous:
            yield key
            previous = key


def _descending(cursor: lmdb.Cursor, end: bytes) -> Iterator[tuple[str, bytes]]:
    """(key, value) of the keys below `end`, from the nearest down."""
    found = len(end) <= MAX_KEY_BYTES and cursor.set_range(end)
    # The key before the first one at or above `end`; the last if none is (or `end` is
    # longer than any key can be).
    if not (cursor.prev() if found else cursor.last()):
        return
    for raw_key, raw in cursor.iterprev(keys=True, values=True):
        if raw_key < end:  # type: ignore[operator]
            yield stored_key(raw_key), raw  # type: ignore[misc]


def _raw(key: str) -> bytes:
    # A key the store could never hold is simply missing: KeyError, like a dict.
    try:
        raw = key.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        raise KeyError(key) from None
    if not 0 < len(raw) <= MAX_KEY_BYTES:
        raise KeyError(key)
    return raw
