"""The versions a viewer shows: the workspace's store, or the one at a git revision
(read in place from DVC's cache, else fetched from the remote), opened once each."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from contextlib import ExitStack
from pathlib import Path

from ..catalog import CatalogDiff, catalog_at, diff_catalog_folders
from ..errors import ShelfError
from ..store import ImageStore
from ..versions import store_at

WORKSPACE = "workspace"
# A revision from a request is passed to git: plain names only (no option, no spaces).
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./~^@{}+-]{0,199}$")
MAX_OPEN = 4  # versions kept open at once (each may be a fetched store on disk)


class ViewError(ShelfError):
    """A version that cannot be shown; the message says why."""


def check_revision(rev: str) -> str:
    if rev != WORKSPACE and (not _REVISION.match(rev) or ".." in rev):
        raise ViewError(f"{rev!r} is not a git revision (a commit, branch or tag)")
    return rev


class Versions:
    """The stores of `store_path` by version name, opened on first use and closed with
    this object; at most MAX_OPEN at once, the least recently used closed first."""

    def __init__(self, store_path: Path, catalog: Path = Path("data/catalog")) -> None:
        self.store_path = store_path
        self.catalog = catalog
        self._scratch = Path(tempfile.mkdtemp(prefix="imageshelf-view-"))
        self._open: OrderedDict[str, tuple[ImageStore, ExitStack]] = OrderedDict()
        self._diffs: OrderedDict[tuple[str, str], CatalogDiff] = OrderedDict()
        self._lock = threading.RLock()

    def store(self, name: str) -> ImageStore:
        """The store of version `name` (WORKSPACE or a git revision); ViewError if it
        cannot be read."""
        check_revision(name)
        with self._lock:
            if name in self._open:
                self._open.move_to_end(name)
                return self._open[name][0]
            stack = ExitStack()
            try:
                store = self._enter(name, stack)
            except BaseException:
                stack.close()
                raise
            self._open[name] = (store, stack)
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)[1][1].close()
            return store

    def _enter(self, name: str, stack: ExitStack) -> ImageStore:
        if name == WORKSPACE:
            if not self.store_path.exists():
                raise ViewError(
                    f"{self.store_path}: no store in the workspace; run `dvc repro` "
                    "(or `dvc pull`) first, or give --rev"
                )
            store = stack.enter_context(ImageStore(self.store_path))
        else:
            scratch = Path(tempfile.mkdtemp(dir=self._scratch))
            stack.callback(shutil.rmtree, scratch, True)
            store = stack.enter_context(store_at(name, self.store_path, scratch))
        len(store)  # opens it: a damaged or missing store fails here, in one line
        return store

    def diff(self, a: str, b: str) -> CatalogDiff:
        """What changed from version `a` to `b`, from their catalogs (no image read)."""
        pair = (check_revision(a), check_revision(b))
        with self._lock:
            if pair not in self._diffs:
                folders = [catalog_at(None if v == WORKSPACE else v, self.catalog) for v in pair]
                self._diffs[pair] = diff_catalog_folders(*folders)
                while len(self._diffs) > MAX_OPEN:
                    self._diffs.popitem(last=False)
            self._diffs.move_to_end(pair)
            return self._diffs[pair]

    def close(self) -> None:
        with self._lock:
            while self._open:
                self._open.popitem()[1][1].close()
            shutil.rmtree(self._scratch, ignore_errors=True)
