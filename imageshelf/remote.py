"""A version of the store read from a DVC repository without a checkout: the shard index
and the catalog first, then each shard on first use, through DVC's filesystem (its
cache, else the repository's remote: a local folder, S3, SSH...).

    from imageshelf.remote import open_store
    from imageshelf.dataset import ImageDataset, shards_for_rank

    store = open_store("https://github.com/you/dataset-repo", rev="v2.0",
                       cache_limit=50 * 2**30)
    mine = shards_for_rank(store, rank, world_size)
    dataset = ImageDataset(store, shards=mine, decode="RGB")   # selects from the catalog

Shards land in one cache per machine (`$XDG_CACHE_HOME/imageshelf/shards`, or `cache=`),
named by DVC's md5 of their bytes. Every process and DataLoader worker shares it: a
shard is fetched once, under a lock, to a temporary file renamed into place. A fetched
shard is checked before any reader maps it: its md5 against what the revision records,
then as every store file is (LMDB's verifier, and its header against the index). Over
`cache_limit` bytes, the least recently used shards are deleted first (a reader that has
one open keeps reading it: Linux frees the space when it lets go). The single-file
layout is fetched whole, once. DVC is imported here only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .atomic import write_bytes
from .dvcfs import reading
from .errors import ShelfError
from .manifest import parse_raw_records
from .store import ImageStore, StoreError
from .store.index import INDEX_NAME

CATALOG = "data/catalog"


class RemoteError(ShelfError):
    """A repository, revision or shard that cannot be read; the message says why."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imageshelf" / "shards"


class Source:
    """Files of one repository at one revision, fetched into a shared, bounded cache."""

    def __init__(self, repo: str, rev: str | None, cache: Path, cache_limit: int | None) -> None:
        self.repo, self.rev, self.cache, self.cache_limit = repo, rev, cache, cache_limit
        self._fs: Any = None
        self.fetched = 0  # bytes this process downloaded

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fs"} | {"_fs": None}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:  # what dvc.api exports, without the rest of dvc.api: 0.15 s sooner
                from dvc.fs.dvc import _DVCFileSystem as DVCFileSystem
            except ImportError:
                from dvc.api import DVCFileSystem

            self._fs = self._call(lambda: DVCFileSystem(self.repo, rev=self.rev), self.repo)
        return self._fs

    def _call(self, action: Any, what: str) -> Any:
        try:
            with reading(what, self.rev or "HEAD", RemoteError, self.repo):  # DVC's errors
                return action()
        except (KeyError, ValueError) as exc:
            text = str(exc).strip().splitlines()
            at = f" at {self.rev}" if self.rev else ""
            raise RemoteError(
                f"cannot read {what}{at} from {self.repo}: {text[0] if text else exc!r}"
            ) from None

    def read(self, path: str) -> bytes:
        """A small file of the revision (the shard index, a catalog file), whole."""
        return bytes(self._call(lambda: self.fs.read_bytes(path), path))

    def object(self, path: str) -> Path:
        """The cached copy of the revision's file `path`, fetched if not there yet:
        named by its md5, checked against it, the cache kept under its limit."""
        info = self._call(lambda: self.fs.info(path), path)
        md5 = info.get("md5")
        if not isinstance(md5, str) or len(md5) != 32:
            raise RemoteError(f"{path}: DVC records no md5 for it at {self.rev or 'HEAD'}")
        target = self.cache / "objects" / md5[:2] / f"{md5[2:]}.lmdb"
        if target.exists():
            os.utime(target)  # recently used
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process fetches, the others wait
            if not target.exists():
                self._fetch(path, md5, target)
        return target

    def _fetch(self, path: str, md5: str, target: Path) -> None:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".fetch-")
        os.close(fd)
        try:
            self._call(lambda: self.fs.get_file(path, name), path)
            if _md5(name) != md5:
                raise StoreError(
                    f"{path}: the file fetched from {self.repo} does not match the md5 its "
                    "revision records: refused (damaged or tampered on the remote)"
                )
            size = os.path.getsize(name)
            self.fetched += size
            self._make_room(size)  # the fetched size: what DVC lists may be missing
            os.replace(name, target)
        finally:
            if os.path.exists(name):
                os.unlink(name)

    def _make_room(self, size: int) -> None:
        """Delete the least recently used shards until `size` more bytes fit."""
        if self.cache_limit is None:
            return
        held = sorted(
            (p.stat().st_mtime, p.stat().st_size, p)
            for p in (self.cache / "objects").glob("*/*.lmdb")
        )
        total = sum(size for _, size, _ in held)
        for _mtime, held_size, path in held:
            if total + size <= self.cache_limit:
                break
            path.unlink(missing_ok=True)
            total -= held_size


def _md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CatalogPart:
    """One part's records, read from the version's catalog: what a filter needs, with
    no image bytes (and no shard) fetched. The lines are kept as they are; select reads
    as records only those it keeps."""

    def __init__(self, lines: bytes, name: str) -> None:
        self.records = list(parse_raw_records(lines.splitlines(), name))

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


class RemoteStore(ImageStore):
    """A sharded store at a revision of a DVC repository; shards fetched on first use."""

    def __init__(self, folder: Path, source: Source, path: str) -> None:
        super().__init__(folder)
        self.source, self.remote_path = source, path
        self.waited: list[str] = []  # shards a reader had to wait for (not fetched ahead)
        self._ahead: queue.Queue[str] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self._path, "source": self.source, "remote_path": self.remote_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["folder"]), state["source"], state["remote_path"])  # type: ignore[misc]

    def _missing(self, name: str, path: str) -> None:
        self.waited.append(name)  # a reader waits for this one
        self._place(name, path)

    def _place(self, name: str, path: str) -> None:
        cached = self.source.object(f"{self.remote_path}/{name}")
        link = f"{path}.{os.getpid()}.{threading.get_ident()}.link"
        os.symlink(cached, link)
        os.replace(link, path)  # several workers may link it at once: all the same file

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
            path = os.path.join(self._path, name)
            if not os.path.exists(path):
                with contextlib.suppress(ShelfError, OSError):
                    self._place(name, path)

    def part_records(self, name: str) -> Any:
        catalog = f"{CATALOG}/{Path(name).stem}.jsonl"
        return CatalogPart(self.source.read(catalog), catalog)


def open_store(
    repo: str | os.PathLike[str],
    rev: str | None = None,
    path: str | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
    cache_limit: int | None = None,
) -> ImageStore:
    """The store at `path` in revision `rev` (default HEAD: the default branch's head) of the
    DVC repository `repo` (a URL or a path), read without a checkout; `path` None:
    `data/images` (sharded), else `data/images.lmdb`. RemoteError if it cannot be read."""
    # HEAD, not None: DVC reads a local repository's workspace when given no revision
    source = Source(os.fspath(repo), rev or "HEAD", Path(cache or default_cache()), cache_limit)
    if path is None:
        found = source._call(lambda: source.fs.exists("data/images"), "data/images")
        path = "data/images" if found else "data/images.lmdb"
    if not source._call(lambda: source.fs.isdir(path), path):
        return ImageStore(source.object(path))  # the single file: fetched whole, once
    index = source.read(f"{path}/{INDEX_NAME}")
    digest = hashlib.sha256(index).hexdigest()[:16]
    folder = source.cache / "versions" / digest  # named by the index: shared by every rank
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / INDEX_NAME).exists():
        write_bytes(folder / INDEX_NAME, index)
    return RemoteStore(folder, source, path)


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
