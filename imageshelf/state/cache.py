"""Facts the stages computed before, kept on this machine so that a run costs what
changed: what ingest learned of each incoming file, which parts validate proved, the
figures stats and pack need of each part.

A cache is never the truth. An entry is used only while what it describes is the same:
a part by its content digest (parts are immutable and named by content), a file by its
fingerprint (base/userfile.py: device, inode, size and mtime, which a write through the file
system changes). A program that writes a file and then sets its mtime back, or damage on the disk
below the file system, is not seen by a fingerprint: `validate --full` reads everything.
Losing the cache costs time, never correctness: delete it freely.
It lives in `.dvc/tmp/imageshelf/` (DVC's folder for local state, ignored by git); a
folder without `.dvc/` gets no cache and always does the whole work.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson

from ..base.atomic import write_bytes
from ..base.userfile import read_regular_file
from ..errors import ShelfError

CACHE = Path(".dvc") / "tmp" / "imageshelf"


def cache_root() -> Path | None:
    """The cache folder, or None where there is no DVC repository to keep it in."""
    return CACHE if CACHE.parent.parent.is_dir() else None


def load(name: str) -> Any:
    """A cached JSON value, or None if there is none (or it is unreadable: rebuilt)."""
    data = load_bytes(name)
    try:
        return None if data is None else orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def save(name: str, value: Any) -> None:
    save_bytes(name, orjson.dumps(value))


def part_hashes_name(content_digest: str) -> str:
    """The cache entry of a store part's image hashes: 32 bytes each, in key order
    (pack's check for duplicates reads them; validate, which reads every record of a
    part it proves, writes them, so pack never has to read a million records for them)."""
    return f"parts/{content_digest}.sha256"


def keep_part_hashes(digests: Collection[str]) -> None:
    """Drop the hash lists of parts other than `digests` (the store's parts now): a
    single-file store is a new part at every change, and its list is 32 bytes an
    image, so old ones would pile up (a list dropped is only read again if needed)."""
    root = cache_root()
    folder = root / "parts" if root is not None else None
    if folder is None or not folder.is_dir():
        return
    for path in folder.glob("*.sha256"):
        if path.name.removesuffix(".sha256") not in digests:
            path.unlink(missing_ok=True)


class CacheLinkError(ShelfError):
    """A link inside the cache folder: a write through it could land anywhere."""


def entry(name: str, *, whole: bool = False) -> Path | None:
    """The cache file `name`, None where there is no cache. Its folders (and with
    `whole`, the file itself: an LMDB table is opened through a link) must be the
    cache's own: a link there is refused in one line, never followed, since the
    cache is a folder others may have put things in."""
    root = cache_root()
    if root is None:
        return None
    path = root / name
    own = os.path.join(os.path.realpath(CACHE.parent.parent), "tmp", "imageshelf", name)
    found = os.path.realpath(path if whole else path.parent)
    if found != (own if whole else os.path.dirname(own)):
        raise CacheLinkError(
            f"{path}: a link in the cache's folder, leading to {found}; remove it "
            f"({CACHE} keeps only files of its own)"
        )
    return path


def load_bytes(name: str) -> bytes | None:
    """A cached file's bytes, or None if there is none (a pipe or device there: none)."""
    path = entry(name)
    if path is None:
        return None
    try:
        return read_regular_file(path)
    except OSError:
        return None


def save_bytes(name: str, data: bytes) -> None:
    path = entry(name)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)


class Table:
    """A cache table of JSON values by string key, in an LMDB file of the cache folder:
    a value is read when asked for and only changed entries are written, so a table of
    a million entries costs what is read of it, not its size. A no-op where there is no
    cache folder (every `get` is None)."""

    MAP_SIZE = 1 << 36  # address space only: the file grows with what is written

    def __init__(self, name: str) -> None:
        import lmdb

        path = entry(name, whole=True)
        self._env: Any = None
        if path is None:
            return
        entry(f"{name}-lock", whole=True)  # LMDB's lock file, beside it
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(
                str(path),
                subdir=False,
                map_size=self.MAP_SIZE,
                metasync=False,
                sync=False,
                readahead=False,
            )
        except lmdb.Error:
            self._env = None  # an unusable cache is no cache
        self._txn: Any = None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._env is not None:
            if self._txn is not None:
                self._txn.abort()
            self._env.close()
            self._env = None

    def get(self, key: str) -> Any:
        if self._env is None:
            return None
        if self._txn is None:
            self._txn = self._env.begin()
        raw = self._txn.get(key.encode("utf-8", "surrogateescape"))
        return orjson.loads(raw) if raw is not None else None

    def get_raw(self, key: str) -> bytes | None:
        """The stored JSON of a value, unparsed (for the caller's own fast checks)."""
        if self._env is None:
            return None
        if self._txn is None:
            self._txn = self._env.begin()
        raw = self._txn.get(key.encode("utf-8", "surrogateescape"))
        return bytes(raw) if raw is not None else None

    def put_many(
        self, items: dict[str, Any], drop: bool = False, raw: dict[str, bytes] | None = None
    ) -> None:
        """Write `items` (as JSON) and `raw` (bytes as they are); with `drop`, every other
        entry goes (the table is exactly those afterwards)."""
        if self._env is None:
            return
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        with self._env.begin(write=True) as txn:
            if drop:
                txn.drop(self._env.open_db(txn=txn), delete=False)
            for key, value in items.items():
                txn.put(key.encode("utf-8", "surrogateescape"), orjson.dumps(value))
            for key, data in (raw or {}).items():
                txn.put(key.encode("utf-8", "surrogateescape"), data)
        self._env.sync(True)
