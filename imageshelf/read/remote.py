"""A version of the store read from a DVC repository without a checkout: the shard index
and the catalog first, then each shard on first use, from the repository's DVC cache or
its remote (a local folder, S3, SSH...).

    from imageshelf.read.remote import open_store
    from imageshelf.read.dataset import ImageDataset, shards_for_rank

    store = open_store("https://github.com/you/dataset-repo", rev="v2.0",
                       cache_limit=50 * 2**30)
    mine = shards_for_rank(store, rank, world_size)
    dataset = ImageDataset(store, shards=mine, decode="RGB")   # selects from the catalog

A repository named by `repo` is someone else's: its index, catalog parts and shards are
read as its dvc.lock records them, checked against their md5s and bounded by their
recorded sizes (imageshelf.repo.source says how).

Shards land in one cache per machine (`$XDG_CACHE_HOME/imageshelf/shards`, or `cache=`),
named by their md5, shared by every process and DataLoader worker, and checked there
like any file another user could have put there (imageshelf.repo.objects). Then each is
checked as every store file is (LMDB's verifier; its header against the index). Over
`cache_limit` bytes the least recently used go first, never one a process is about to
open. The single-file layout is fetched whole, once. DVC is imported by dvcsource only.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from ..project.paths import revision_catalog, revision_store
from ..records.manifest import parse_raw_records
from ..repo.objects import ObjectCache, RemoteError
from ..repo.source import Source
from ..store import ImageStore, StoreError, StoreFile
from ..store.index import INDEX_NAME, Part, ShardIndex
from ..store.reader import _check_part
from ..store.values import Header

__all__ = [
    "CatalogPart",
    "RemoteError",
    "RemoteFile",
    "RemoteStore",
    "Source",
    "default_cache",
    "open_store",
    "store_of",
]


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imageshelf" / "shards"


class CatalogPart:
    """One part's records, read from the version's catalog: what a filter needs, with
    no image bytes (and no shard) fetched. The lines are kept as they are; select reads
    as records only those it keeps."""

    def __init__(self, lines: bytes, name: str, part: Part | None = None) -> None:
        self.records = list(parse_raw_records(lines.splitlines(), name))
        if part is not None:
            _check_catalog(self.records, name, part)

    def raw_records(
        self, after: str | None = None, before: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        if after is None and before is None:
            yield from self.records
            return
        chosen = [
            (key, raw)
            for key, raw in self.records
            if (after is None or key > after) and (before is None or key < before)
        ]
        yield from reversed(chosen) if before is not None else chosen

    def indexed_records(self, *_args: Any) -> None:
        return None  # no field index here: a filter scans these records


def _check_catalog(records: list[tuple[str, bytes]], name: str, part: Part) -> None:
    """A shard's catalog lists what the index says the shard holds: as many records, in
    key order, each key once, within its key range; selection relies on all four."""
    keys = [key for key, _raw in records]
    if len(keys) != part.count or any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
        raise StoreError(
            f"{name}: damaged catalog: not the {part.count} records of {part.name} in key "
            f"order, each once ({len(keys)} lines)"
        )
    if keys and not (part.may_hold(keys[0]) and part.may_hold(keys[-1])):
        raise StoreError(f"{name}: damaged catalog: its keys lie outside {part.name}'s range")


def _cache(source: Source) -> ObjectCache:
    if source.cache is None:
        raise TypeError("a store read from a repository needs a Source with a cache")
    return source.cache


# Stores read from a remote, reset in a forked child: the parent's open files are closed
# there (store/file.py), and reopening one by its path could find it evicted since.
_live: weakref.WeakSet[ImageStore] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for store in list(_live):
        store._after_fork()  # type: ignore[attr-defined]


os.register_at_fork(after_in_child=_reset_after_fork)


class RemoteStore(ImageStore):
    """A sharded store at a revision of a DVC repository; shards fetched on first use.
    Its index is held in memory, as checked; each shard is opened from the cache."""

    def __init__(self, source: Source, path: str, index: bytes) -> None:
        super().__init__(_cache(source).objects)  # a real folder, never read as the store
        self.source, self.remote_path, self._index = source, path, index
        self.waited: list[str] = []  # shards a reader had to wait for (not fetched ahead)
        self._catalog: str | None = None  # where the revision keeps its catalog
        self._after_fork()
        _live.add(self)

    def _after_fork(self) -> None:
        self._reset()
        self._ahead: queue.Queue[str] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "remote_path": self.remote_path, "index": self._index}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"], state["remote_path"], state["index"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"RemoteStore({self.source.repo!r}, rev={self.source.rev!r}, {self.remote_path!r})"

    @property
    def path(self) -> Path:
        return Path(self.remote_path)  # as the repository names it

    @property
    def layout(self) -> Any:
        return "sharded"

    def stray_files(self) -> list[str]:
        return []

    def _resolve(self) -> tuple[Part, ...]:
        parts = self._parts
        if parts is None:
            index = ShardIndex.parse(self._index, f"{self.remote_path}/{INDEX_NAME}")
            self._header = Header(
                index.count, index.total_bytes, index.content_digest, index.format, index.version
            )
            parts = self._parts = index.parts
        return parts

    def _entry(self, name: str) -> Part:
        entry = next((part for part in self._resolve() if part.name == name), None)
        if entry is None:
            raise KeyError(f"{name}: not a part of {self.remote_path}")
        return entry

    def part(self, name: str) -> StoreFile:
        file = self._files.get(name)
        if file is not None:
            return file
        entry = self._entry(name)
        with self.source.held(f"{self.remote_path}/{name}") as (path, waited):
            if waited:
                self.waited.append(name)
            file = StoreFile(path)
            _check_part(entry, file)  # opens it while the cache keeps it for us
        self._files[name] = file
        return file

    def prefetch(self, names: Iterable[str]) -> None:
        """Fetch these shards in the background, in order, while others are read (the
        sampler calls this with the shards it reads next). A failure here is left for
        the reader to meet, and say, when it needs the shard."""
        for name in names:
            self._ahead.put(name)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._fetch_ahead, daemon=True)
                self._worker.start()

    def _fetch_ahead(self) -> None:
        while True:
            try:
                name = self._ahead.get(timeout=1.0)
            except queue.Empty:
                return
            if name not in self._files:
                with contextlib.suppress(ShelfError, OSError):
                    self.source.fetch(f"{self.remote_path}/{name}")

    def part_records(self, name: str) -> Any:
        if self._catalog is None:
            self._catalog = revision_catalog(self.source)  # once: DVC parses dvc.yaml
        catalog = f"{self._catalog}/{Path(name).stem}.jsonl"
        entry = self._entry(name)
        return CatalogPart(self.source.read(catalog), catalog, entry)


class RemoteFile(ImageStore):
    """The single-file layout at a revision of a DVC repository: fetched whole, once."""

    def __init__(self, source: Source, path: str) -> None:
        _out, md5, _bound = source.file(path)
        super().__init__(_cache(source).path(md5))
        self.source, self.remote_path = source, path
        _live.add(self)

    def _after_fork(self) -> None:
        self._reset()

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "remote_path": self.remote_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"], state["remote_path"])  # type: ignore[misc]

    def _open(self) -> None:
        with self.source.held(self.remote_path):
            super()._open()  # opens the file while the cache keeps it for us


def open_store(
    repo: str | os.PathLike[str],
    rev: str | None = None,
    path: str | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
    cache_limit: int | None = None,
) -> ImageStore:
    """The store at `path` in revision `rev` (default HEAD: the default branch's head) of the
    DVC repository `repo` (a URL or a path), read without a checkout; `path` None: the
    output that revision's dvc.yaml types `store` (project.revision_store). `cache_limit`:
    bytes, a whole number above 0. RemoteError if it cannot be read."""
    objects = ObjectCache(cache or default_cache(), cache_limit)  # both checked here
    # HEAD, not None: DVC reads a local repository's workspace when given no revision
    source = Source(os.fspath(repo), rev or "HEAD", objects)
    if path is None:
        path = revision_store(source)
    if source.listing(path) is None:
        return RemoteFile(source, path)
    return RemoteStore(source, path, source.read(f"{path}/{INDEX_NAME}"))


def store_of(
    store: str | os.PathLike[str] | ImageStore | None,
    repo: str | os.PathLike[str] | None,
    rev: str | None,
    cache_limit: int | None,
) -> ImageStore:
    """A store given as a path or an ImageStore, or by `repo` (and `rev`) as open_store
    reads it."""
    if repo is not None:
        path = None if store is None else os.fspath(store)  # type: ignore[arg-type]
        return open_store(repo, rev, path, cache_limit=cache_limit)
    if store is None:
        raise TypeError("give a store (a path or an ImageStore), or repo=")
    return store if isinstance(store, ImageStore) else ImageStore(store)
