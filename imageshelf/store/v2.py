"""The reader of formats 2.x and 3.x (docs/FORMAT.md): image bytes back to back in chunks
(`blobs`), each image's place in `locations` (chunk, offset, size), indexed fields in
`fields`; 3.0 adds `paired`, the places of paired images by key NUL role.
"""

from __future__ import annotations

import struct
from threading import local

import lmdb

from .format import (
    CHUNK_KEY,
    DB_BLOBS,
    DB_FIELDS,
    DB_LOCATIONS,
    DB_PAIRED,
    DB_RECORDS,
    LOCATION,
    StoreError,
    stored_key,
)

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Fetch = Callable[[bytes], bytes | None]


def _none(_raw_key: bytes) -> None:
    return None


class V2Reader:
    """One open 2.x or 3.x file: where its records, locations, chunks, field index and
    (3.0) paired images are, and this thread's readers of them."""

    def __init__(self, env: lmdb.Environment, path: str, major: int) -> None:
        self.env = env
        self.path = path
        self.db_records = env.open_db(DB_RECORDS, create=False)
        self.db_images = env.open_db(DB_LOCATIONS, create=False)  # each image: counted by stat
        self.db_chunks = env.open_db(DB_BLOBS, create=False)
        self.db_fields = env.open_db(DB_FIELDS, create=False)
        # 3.0: a file that holds paired images has `paired` (FORMAT.md)
        self.db_paired = env.open_db(DB_PAIRED, create=False) if major >= 3 else None
        self.paired = self.db_paired is not None
        self._local = local()

    def fetch(self) -> Fetch:
        """A reader of image bytes by raw key (None: no such image), for the calling
        thread: the location says where the bytes lie; the chunk is a view of the map,
        so a read copies only the image."""
        return self._reader(self.db_images)

    def paired_fetch(self) -> Fetch:
        """The same for paired images, by raw key NUL role."""
        return self._reader(self.db_paired) if self.db_paired is not None else _none

    def _reader(self, db: lmdb._Database) -> Fetch:
        location_of = self.env.begin(db=db).get
        chunk_of = self._chunks()
        unpack = LOCATION.unpack_from
        path = self.path

        def fetch(raw_key: bytes) -> bytes | None:
            raw = location_of(raw_key)
            if raw is None:
                return None
            try:
                chunk, at, size = unpack(raw)
            except struct.error:
                raise StoreError(f"{path}: damaged store: a location is not 16 bytes") from None
            view = chunk_of(chunk)
            end = at + size
            if end > len(view):
                raise StoreError(f"{path}: damaged store: an image lies outside its chunk")
            return view[at:end].tobytes()

        return fetch

    def _chunks(self) -> Callable[[int], memoryview]:
        """This thread's reader of chunks by number: each chunk a zero-copy view of the
        map, from a transaction with buffers kept as long as this thread reads. A chunk
        that is not there is a damaged store."""
        chunk = getattr(self._local, "chunk", None)
        if chunk is None:
            chunk_of = self.env.begin(db=self.db_chunks, buffers=True).get  # views, no copy
            pack = CHUNK_KEY.pack
            chunks: dict[int, memoryview] = {}
            path = self.path

            def chunk(number: int) -> memoryview:
                view = chunks.get(number)
                if view is None:
                    view = chunk_of(pack(number)) if 0 <= number < 1 << 32 else None
                    if view is None:
                        raise StoreError(f"{path}: damaged store: chunk {number} is missing")
                    chunks[number] = view
                return view

            self._local.chunk = chunk
        return chunk

    def locations(self, txn: lmdb.Transaction) -> Iterator[tuple[str, int, int, int]]:
        """(key, chunk, offset, size) of every image, in key order."""
        unpack, size = LOCATION.unpack, LOCATION.size
        for raw_key, raw in txn.cursor(db=self.db_images).iternext(keys=True, values=True):
            if len(raw) != size:
                raise StoreError(f"{self.path}: damaged store: a location is not 16 bytes")
            yield (stored_key(raw_key), *unpack(raw))

    def paired_locations(self, txn: lmdb.Transaction) -> Iterator[tuple[str, str, int, int, int]]:
        """(key, role, chunk, offset, size) of every paired image, in key and role order."""
        if self.db_paired is None:
            return
        for raw_name, raw in txn.cursor(db=self.db_paired).iternext(keys=True, values=True):
            raw_key, nul, raw_role = bytes(raw_name).partition(b"\0")
            if not nul or len(raw) != LOCATION.size:
                raise StoreError(f"{self.path}: damaged store: a paired image's entry")
            try:
                role = raw_role.decode("utf-8")
            except UnicodeDecodeError:
                raise StoreError(f"{self.path}: damaged store: a role is not UTF-8") from None
            yield (stored_key(raw_key), role, *LOCATION.unpack(raw))

    def chunk_sizes(self) -> list[tuple[int, int]]:
        """(chunk number, length) of every chunk, in order."""
        # Views, not copies: only each chunk's length is wanted.
        with self.env.begin(db=self.db_chunks, buffers=True) as txn:
            return [self._chunk_size(key, raw) for key, raw in txn.cursor().iternext()]

    @staticmethod
    def _chunk_size(raw_key: bytes | memoryview, raw: bytes | memoryview) -> tuple[int, int]:
        if len(raw_key) != CHUNK_KEY.size:
            raise StoreError(f"damaged store: a chunk key is {len(raw_key)} bytes")
        return CHUNK_KEY.unpack(raw_key)[0], len(raw)
