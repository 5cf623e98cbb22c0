"""Read an image store, in either layout, through one class: ImageStore.

A store is a list of parts (index.py). A single file is a store of one part; a sharded
folder lists its parts in `index.json`. Every reader, from `ls` to validate to the
training dataset, loops over `store.parts` the same way and never asks which layout it
has. Parts open lazily, one by one, when first read: a machine that pulled only some
shards reads those and gets a clear error, naming the command that fetches it, for
the others.
"""

from __future__ import annotations

import os
from threading import get_ident

from .file import FORK_GENERATION, StoreFile
from .format import StoreError

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator
    from pathlib import Path
    from typing import Any, Literal, TypeVar

    from .index import Part
    from .values import Header, ImageInfo, Record

    Layout = Literal["single", "sharded"]
    T = TypeVar("T")


class ImageStore:
    """Images and their metadata, by key: a `.lmdb` file, or a folder of shards.

        store = ImageStore("data/images.lmdb")     # or "data/images", the sharded folder
        store.get("cats/001.jpg")                   # the original bytes
        store.metadata("cats/001.jpg")              # {"label": "cat", ...}

    Opens lazily, read-only and without a lock file, once per process: safe to create
    before `fork`, to pickle into `spawn`ed workers (only the path travels), and to use
    on read-only files such as DVC's cache. A store is a snapshot: when a new version is
    published, an open ImageStore goes on reading the one it opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._reset()

    @property
    def path(self) -> Path:
        """The store's file or folder (pathlib is imported on first use: opening the
        store and reading from it never needs it)."""
        from pathlib import Path

        return Path(self._path)

    def _reset(self) -> None:
        self._parts: tuple[Part, ...] | None = None
        self._header: Header | None = None
        self._files: dict[str, StoreFile] = {}
        self._by_key: dict[str, int] | None = None  # key -> the number of its part, mapped
        self._mapped: list[StoreFile] = []  # the parts, by that number
        self._probes = 0  # lookups in parts that did not hold the key, or did
        self._ranges_checked = False
        # How `get` finds an image's bytes, by layout: the single file's reader once it
        # is open (_open); a key -> part map once shards needed one (_index_keys);
        # until then (None) a lookup of the part holding the key. The call through `get`
        # costs 0 to 5% of a read (against `get` rebound to the file's reader: 0.98x to
        # 1.05x its time, both in one process, best of 40 passes over 20,000 images).
        # Never a method of this object: that would be a reference cycle, and a store
        # dropped would stay open until the garbage collector ran.
        self._get: Callable[[str], bytes] | None = None

    def _open(self) -> None:
        """Ready to read: the single file opened (a missing or damaged file fails here)
        and its reader bound to `get`, or the shards' index read. Opening a single file
        builds no value class: reading an image by key needs none (package docstring)."""
        if self.layout == "sharded":
            self._resolve()
            return
        file = StoreFile(self._path)
        file.open()
        self._files[os.path.basename(self._path)] = file
        self._get = file.get  # training's hot path: the file's reader, no part lookup

    def _resolve(self) -> tuple[Part, ...]:
        parts = self._parts
        if parts is not None:
            return parts
        # Here, not at the top: reading an image by key needs no value class (dataclasses
        # would cost a fresh process's first image more than the read: package docstring).
        from .index import Part, ShardIndex
        from .values import Header

        if os.path.isdir(self._path):
            index = ShardIndex.read(self._path)
            parts = index.parts
            self._header = Header(
                index.count, index.total_bytes, index.content_digest, index.format, index.version
            )
        else:
            name = os.path.basename(self._path)
            if name not in self._files:
                self._open()
            header = self._files[name].header
            parts = (Part(name, header.count, header.total_bytes, header.content_digest),)
            self._header = header
        self._parts = parts
        return parts

    # -- what the store is made of
    @property
    def layout(self) -> Layout:
        """ "single" (one file) or "sharded" (a folder of shards and an index)."""
        return "sharded" if os.path.isdir(self._path) else "single"

    @property
    def parts(self) -> list[Part]:
        """Its files: name, count, total_bytes, content_digest (and, for shards, the
        first and last key), in the order they were made."""
        return list(self._resolve())

    def part(self, name: str) -> StoreFile:
        """The reader of one part, by name. A shard that is listed but not on this
        machine is a StoreError that says how to fetch it."""
        file = self._files.get(name)
        if file is None:
            if name not in {part.name for part in self._resolve()}:
                raise KeyError(f"{name}: not a part of {self._path}")
            file = self._files.get(name)  # the single file, opened by _resolve
        if file is None:
            path = os.path.join(self._path, name)
            if not os.path.exists(path):
                self._missing(name, path)
            file = StoreFile(path)
            _check_part(next(p for p in self._resolve() if p.name == name), file)
            self._files[name] = file
        return file

    def _missing(self, name: str, path: str) -> None:
        """A listed shard that is not in the folder: say how to fetch it. A store that
        fetches shards itself (imageshelf.read.remote) puts the file at `path` here."""
        raise StoreError(f"{path}: shard not here; `dvc pull {path}` fetches it")

    def part_records(self, name: str) -> StoreFile:
        """What a filter over one part reads (raw_records, indexed_records): the part
        itself here; a store read from a remote answers from its catalog instead, so
        selecting never fetches image bytes."""
        return self.part(name)

    def part_of(self, key: str) -> str | None:
        """The name of the part holding `key`, or None."""
        file = self._holder(key)
        if file is None:
            return None
        return next(name for name, opened in self._files.items() if opened is file)

    def stray_files(self) -> list[str]:
        """Shard files in the store's folder that its index does not list: written by a
        pack that was killed before it published them. None in the single layout."""
        from .index import is_shard_name

        if self.layout == "single":
            return []
        listed = {part.name for part in self._resolve()}
        found = os.listdir(self._path)
        return sorted(name for name in found if is_shard_name(name) and name not in listed)

    @property
    def header(self) -> Header:
        """count, total_bytes and content_digest of the whole store; format and version
        of its file (single) or of its index (sharded)."""
        self._resolve()
        assert self._header is not None
        return self._header

    # -- reading, the same in both layouts
    def __len__(self) -> int:
        return self.header.count

    def _candidates(self, key: object) -> Iterator[Part]:
        """The parts that may hold `key`: those whose key range covers it. New images of
        every class in each batch make ranges overlap, so a key may have to be looked up
        in every part; once those lookups have cost about what reading every key would,
        a key -> part map is built (`_index_keys`) and each lookup is one dict access."""
        if not isinstance(key, str):
            return
        parts = self._resolve()
        if len(parts) == 1:
            yield parts[0]
            return
        if not self._ranges_checked:
            # Ranges decide where a key is not looked for: prove them before trusting
            # them (an edited index.json could hide keys). Shards not here are skipped.
            for part in parts:
                if os.path.exists(os.path.join(self._path, part.name)):
                    self.part(part.name)
            self._ranges_checked = True
        for part in parts:
            if part.may_hold(key):
                yield part

    def _index_keys(self) -> None:
        """Map every key to the number of its part: one pass over the parts' keys (no
        record, no image bytes), under a microsecond per key. Kept for the life of this
        object (a store is a snapshot); pickling drops it. `get` is then one dict access
        and a read from that part, as from a single file."""
        files = [self.part(part.name) for part in self._resolve()]
        number: dict[str, int] = {}
        for at, file in enumerate(files):
            number.update(dict.fromkeys(file, at))
        self._by_key, self._mapped = number, files
        self._get = _mapped_reader(number, files)

    def _holder(self, key: object) -> StoreFile | None:
        """The reader of the part holding `key`, or None."""
        by_key = self._by_key
        if by_key is not None:
            at = by_key.get(key) if isinstance(key, str) else None
            return None if at is None else self._mapped[at]
        probes = 0
        found = None
        for part in self._candidates(key):
            probes += 1
            file = self.part(part.name)
            if key in file:
                found = file
                break
        self._probes += probes - (found is not None)  # lookups a key -> part map would save
        if self._probes * 3 > self.header.count:
            self._index_keys()
        return found

    def _read(self, key: str, read: Callable[[StoreFile, str], T]) -> T:
        """`read(file, key)` from the part that holds `key`; KeyError if none does."""
        parts = self._resolve()
        if len(parts) == 1:  # the read itself says whether the key is there
            return read(self.part(parts[0].name), key)
        file = self._holder(key)
        if file is None:
            raise KeyError(key)
        return read(file, key)

    def __contains__(self, key: object) -> bool:
        return self._holder(key) is not None

    def get(self, key: str) -> bytes:
        """The image's original bytes. Raises KeyError naming a missing key."""
        read = self._get
        if read is None and self._parts is None:
            self._open()  # a single file's reader becomes `get`'s
            read = self._get
        return read(key) if read is not None else self._read(key, StoreFile.get)

    def get_many(self, keys: Iterable[str]) -> list[bytes]:
        """Original bytes for each key, in the order given."""
        return [self.get(key) for key in keys]

    def get_paired(self, key: str, role: str) -> bytes:
        """The original bytes of the image paired with `key` in `role`: its mask, say
        (`store.record(key).paired` names them). KeyError if there is none."""
        return self._read(key, lambda file, key: file.get_paired(key, role))

    def record(self, key: str) -> Record:
        """Key, info and metadata of one image, without its bytes."""
        return self._read(key, StoreFile.record)

    def raw_records_of(self, keys: Collection[str]) -> Iterator[tuple[str, bytes, Part]]:
        """(key, record JSON, the part holding it) for those of `keys` the store holds,
        in no set order: by one pass over every record when that is cheaper than a
        lookup per key. Opens only the parts a lookup needs (a part opened may have to
        be verified: trust.py)."""
        if not keys:
            return
        parts = self._resolve()
        if len(keys) * 8 > len(self):
            wanted = keys if isinstance(keys, set | dict) else set(keys)
            for part in parts:
                for key, raw in self.part(part.name).raw_records():
                    if key in wanted:
                        yield key, raw, part
            return
        by_name = {part.name: part for part in parts}
        of_file: dict[int, Part] = {}
        for key in keys:
            file = self._holder(key)
            if file is None:
                continue
            if id(file) not in of_file:
                name = next(name for name, opened in self._files.items() if opened is file)
                of_file[id(file)] = by_name[name]
            yield key, file.raw_record(key), of_file[id(file)]

    def raw_record(self, key: str) -> bytes:
        """One record's JSON as stored, for fast comparisons. KeyError if missing."""
        return self._read(key, StoreFile.raw_record)

    def info(self, key: str) -> ImageInfo:
        """Hash, size, format, width and height of one image."""
        return self.record(key).info

    def metadata(self, key: str) -> dict[str, Any]:
        """The user's metadata for one image (label, boxes, text, ...)."""
        return self.record(key).metadata

    def raw_records(
        self, after: str | None = None, before: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """(key, record JSON as stored) in key order, across every part: for fast scans
        and filters. Reads no image bytes. With `after`, only the keys that sort after
        it: a page's cursor, one seek per part; with `before`, the keys before it,
        nearest first."""
        parts = self._resolve()
        streams = [self.part(part.name).raw_records(after, before) for part in parts]
        return _merged(streams, reverse=before is not None)

    def indexed_records(
        self,
        name: str,
        values: Collection[str],
        after: str | None = None,
        before: str | None = None,
    ) -> Iterator[tuple[str, bytes]] | None:
        """(key, record JSON) of each record whose field `name` holds one of the texts
        `values`, in key order, read through the parts' field indexes (format 2.0;
        params.yaml's pack.index): only the matching records are read, as consumed.
        `after` and `before` as for raw_records. None if a part does not index `name`:
        then only a scan of every record answers."""
        streams = []
        for part in self._resolve():
            found = self.part(part.name).indexed_records(name, values, after, before)
            if found is None:
                return None
            streams.append(found)
        return _merged(streams, reverse=before is not None)

    def records(self) -> Iterator[Record]:
        """Every record in key order, without reading any image bytes."""
        from .values import Record  # with the first record: see _resolve

        for key, raw in self.raw_records():
            yield Record.decode(key, raw)

    def value_counts(self, name: str) -> dict[str, int] | None:
        """{value: how many images hold it} of the indexed field `name` (label, split),
        from the parts' field indexes alone; None if a part does not index it."""
        totals: dict[str, int] = {}
        for part in self._resolve():
            counts = self.part(part.name).value_counts(name)
            if counts is None:
                return None
            for value, count in counts.items():
                totals[value] = totals.get(value, 0) + count
        return totals

    def __iter__(self) -> Iterator[str]:
        """Keys in sorted order, streamed."""
        for key, _raw in self.raw_records():
            yield key

    def keys(self) -> list[str]:
        """All keys, in sorted order."""
        return list(self)

    def stat(self) -> dict[str, int]:
        """Entries actually present in the `records` and `images` databases, summed
        over the parts (validate compares them with the header)."""
        totals = {"records": 0, "images": 0}
        for part in self._resolve():
            for name, value in self.part(part.name).stat().items():
                totals[name] += value
        return totals

    # -- life cycle
    def close(self) -> None:
        """Drop the open files; the next read opens the store again (a new version, if
        one was published meanwhile)."""
        for file in self._files.values():
            file.close()
        self._reset()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]  # unopened

    def __repr__(self) -> str:
        return f"ImageStore({self._path!r})"


def _merged(
    streams: list[Iterator[tuple[str, bytes]]], reverse: bool = False
) -> Iterator[tuple[str, bytes]]:
    """The parts' (key, value) streams as one, in key order (str order = UTF-8 order)."""
    if len(streams) == 1:
        return streams[0]
    import heapq

    return heapq.merge(*streams, key=lambda pair: pair[0], reverse=reverse)


def _check_part(part: Part, file: StoreFile) -> None:
    """A shard is what its index entry says: the same content and the same key range.
    Lookups trust the range (a key outside it is not looked for), so an index edited
    by hand or damaged would hide keys without this check. Two reads per shard."""
    header = file.header
    if (header.count, header.total_bytes, header.content_digest) != (
        part.count,
        part.total_bytes,
        part.content_digest,
    ):
        raise StoreError(
            f"{file.path}: damaged store: the shard does not match its entry in index.json"
        )
    first, last = file.key_range()
    if (part.first_key is not None and part.first_key != first) or (
        part.last_key is not None and part.last_key != last
    ):
        raise StoreError(
            f"{file.path}: damaged store: index.json gives the shard's keys as "
            f"{part.first_key!r}..{part.last_key!r}, it holds {first!r}..{last!r}"
        )


def _mapped_reader(number: dict[str, int], files: list[StoreFile]) -> Callable[[str], bytes]:
    """`get` through a map of key -> part number: that part's reader of image bytes
    (StoreFile.txn_get), valid in one thread of one process (checked as StoreFile.get
    checks its own, by the fork generation and the thread)."""
    generation = FORK_GENERATION
    made_gen, made_thread = -1, -1
    gets: list[Any] = []

    def get(key: str) -> bytes:
        nonlocal made_gen, made_thread, gets
        if made_gen != generation[0] or made_thread != get_ident():
            made_gen, made_thread = generation[0], get_ident()
            gets = [f.txn_get() for f in files]
        try:
            at = number[key]  # KeyError names a missing key
            data = gets[at](key.encode("utf-8"))
        except (TypeError, AttributeError):
            raise KeyError(key) from None
        if data is None:
            files[at].missing(key)
        return data

    return get
