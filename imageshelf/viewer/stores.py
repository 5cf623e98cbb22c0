"""The versions a viewer shows: the workspace's store, or the one at a git revision
(read in place from DVC's cache, else fetched from the remote), opened once each.

A request borrows the store it reads and gives it back when it ends. A version the viewer
stops using (the least recently used beyond `max_open`, or the workspace's store once
`dvc repro` replaced it) is retired: closed, and its fetched copy deleted, as soon as no
request holds it, so neither the scratch folder nor the disk of replaced stores grows
with the time the viewer runs."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from ..project.paths import Project
from ..store import ImageStore
from ..store.index import INDEX_NAME
from ..versions.catalog import CatalogDiff, catalog_at, diff_catalog_folders
from ..versions.history import resolve_revision, store_at

WORKSPACE = "workspace"
# A revision from a request is passed to git: plain names only (no option, no spaces).
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./~^@{}+-]{0,199}$")
MAX_OPEN = 4  # versions kept open at once (each may be a fetched store on disk)
_KNOWN_COMMITS = 256  # revision names remembered; requests can name any number of them


class ViewError(ShelfError):
    """A version that cannot be shown; the message says why."""


def check_revision(rev: str) -> str:
    if rev != WORKSPACE and (not _REVISION.match(rev) or ".." in rev):
        raise ViewError(f"{rev!r} is not a git revision (a commit, branch or tag)")
    return rev


@dataclass(eq=False)
class Opened:
    """A version's store while the viewer has it open."""

    store: ImageStore
    stack: ExitStack  # closes the store and deletes what was fetched for it
    users: int = 0  # requests reading it now
    retired: bool = False  # closed as soon as `users` is 0
    memo: dict[str, Any] = field(default_factory=dict)  # what pages compute once per store


class Versions:
    """The stores of `store_path` by version name, opened on first use and closed with
    this object. The workspace's is opened again when `dvc repro` or `dvc checkout`
    replaces it; at most `max_open` are kept open (the least recently used is retired
    first), and a retired one is closed once the last request reading it ends."""

    def __init__(
        self,
        store_path: Path,
        catalog: Path | None = None,
        max_open: int = MAX_OPEN,
    ) -> None:
        self.store_path = store_path
        # the workspace's catalog (a revision's is where its own dvc.yaml puts it)
        self.catalog = catalog if catalog is not None else Project.load().catalog
        self.max_open = max(1, max_open)
        self._scratch: Path | None = None  # made on the first revision fetched
        self._open: OrderedDict[str, Opened] = OrderedDict()
        self._diffs: OrderedDict[tuple[object, ...], CatalogDiff] = OrderedDict()
        self._lock = threading.RLock()
        self._seen = _identity(store_path)  # the workspace's store, as last opened
        self._retired: set[Opened] = set()  # retired, still read by a request
        self._commits: dict[str, tuple[str, float]] = {}  # revision: (commit, when asked)

    def store(self, name: str) -> ImageStore:
        """The store of version `name` (WORKSPACE or a git revision), opened if it is
        not; ViewError if it cannot be read. Not borrowed: for one thread only (the
        command opening what it will show); requests use `borrow`."""
        commit = self.commit_of(name)
        with self._lock:
            return self._opened(commit).store

    def borrow(self, name: str) -> Opened:
        """The open store of version `name`, held open until `give_back`."""
        commit = self.commit_of(name)
        with self._lock:
            opened = self._opened(commit)
            opened.users += 1
            return opened

    def give_back(self, opened: Opened) -> None:
        with self._lock:
            opened.users -= 1
            if opened.retired and opened.users <= 0:
                self._retired.discard(opened)
                opened.stack.close()

    def _opened(self, name: str) -> Opened:
        """The open store of `name` (a commit, or WORKSPACE); under the lock."""
        if name == WORKSPACE and self._workspace_moved():
            self._forget(WORKSPACE)  # `dvc repro` or `dvc checkout` replaced it
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        stack = ExitStack()
        try:
            store = self._enter(name, stack)
        except BaseException:
            stack.close()
            raise
        opened = self._open[name] = Opened(store, stack)
        while len(self._open) > self.max_open:
            self._forget(next(iter(self._open)))
        return opened

    def _workspace_moved(self) -> bool:
        now = _identity(self.store_path)
        moved = WORKSPACE in self._open and now != self._seen
        self._seen = now
        return moved

    def _forget(self, name: str) -> None:
        opened = self._open.pop(name, None)
        if opened is None:
            return
        opened.retired = True
        if opened.users > 0:  # a request of another thread is reading it now
            self._retired.add(opened)
        else:
            opened.stack.close()  # unmapped, and a fetched copy deleted: its disk freed

    def _enter(self, name: str, stack: ExitStack) -> ImageStore:
        if name == WORKSPACE:
            if not self.store_path.exists():
                raise ViewError(
                    f"{self.store_path}: no store in the workspace; run `dvc repro` "
                    "(or `dvc pull`) first, or give --rev"
                )
            store = stack.enter_context(ImageStore(self.store_path))
        else:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="imageshelf-view-"))
            scratch = Path(tempfile.mkdtemp(dir=self._scratch))
            stack.callback(shutil.rmtree, scratch, True)
            store = stack.enter_context(store_at(name, self.store_path, scratch))
        len(store)  # opens it: a damaged or missing store fails here, in one line
        return store

    def commit_of(self, name: str) -> str:
        """The commit a revision names now (a branch or HEAD moves as the user commits:
        what is open is kept by commit), or WORKSPACE; ViewError if there is none."""
        if check_revision(name) == WORKSPACE:
            return name
        now = time.monotonic()
        known = self._commits.get(name)
        if known is None or now - known[1] > 1.0:  # asked again at most once a second
            try:
                commit = resolve_revision(name)  # the one door for a user's revision
            except ShelfError as exc:
                raise ViewError(str(exc)) from None
            if len(self._commits) >= _KNOWN_COMMITS:
                self._commits.clear()
            known = self._commits[name] = (commit, now)
        return known[0]

    def diff(self, a: str, b: str) -> CatalogDiff:
        """What changed from version `a` to `b`, from their catalogs (no image read)."""
        pair = (self.commit_of(a), self.commit_of(b))
        # The workspace's side is as the store now is: a repro since makes another diff.
        key = (*pair, _identity(self.store_path) if WORKSPACE in pair else None)
        with self._lock:
            if key not in self._diffs:
                folders = [
                    catalog_at(None, self.catalog) if v == WORKSPACE else catalog_at(v, None)
                    for v in pair
                ]
                self._diffs[key] = diff_catalog_folders(*folders)
                while len(self._diffs) > self.max_open:
                    self._diffs.popitem(last=False)
            self._diffs.move_to_end(key)
            return self._diffs[key]

    def close(self) -> None:
        """Close every version, in use or not (the server has stopped)."""
        with self._lock:
            while self._open:
                self._forget(next(iter(self._open)))
            for opened in self._retired:
                opened.stack.close()
            self._retired.clear()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when a store is replaced (a new file renamed over it; for the
    sharded layout, a new index.json): inode, modification time, size."""
    target = path / INDEX_NAME if path.is_dir() else path
    try:
        st = target.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
