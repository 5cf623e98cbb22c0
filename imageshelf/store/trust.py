"""Stores from elsewhere are untrusted input: verify a file before LMDB maps it.

LMDB reads values by pointer into its memory map. A file whose pages claim more than it
holds (a crafted store, a bad disk, a truncated download) makes the engine touch memory
past the end of the map, and the process dies with SIGBUS: nothing in Python can catch
that. So no file is handed to the engine until py-lmdb's offline
verifier (`lmdb.verify`, which reads the file as bytes and checks every page, node,
key order and overflow extent) has passed it, or this machine has already seen it pass.

What has passed is remembered by the file's identity: device, inode, size, mtime and
ctime. ctime is what a hand edit, a tool that writes in place or `touch -d` to set the
mtime back cannot set back, so a file changed through the file system is verified again.
(DVC changes ctime too, when it "unprotects" an output before a stage runs: a part then
opened is verified again, once, at about 6.5 microseconds per record: 65 ms for a shard
of 10,000.) In this process, and in a small marker file under the user's cache folder
(`$IMAGESHELF_CACHE_DIR`, else `$XDG_CACHE_HOME/imageshelf`, else
`~/.cache/imageshelf`), so a file is verified once per machine, not once per process or
DataLoader worker. The folder is made private (0700), and a marker counts only if this
user owns it and its folder, which nobody else can write to: a marker forged by another
user is ignored. Files this library writes are remembered as they are published. If the
cache folder cannot be written, verification still happens, once per process.

`distrust()` (validate --full) trusts only what this process verified itself.

What no check at open can see is damage below the file system (a disk's bit rot) in a
file verified before: `validate --full` finds it, reading everything; a reader of such
a file may still die by SIGBUS, as LMDB maps the file.
"""

from __future__ import annotations

import os
from _thread import allocate_lock

from ..files import fingerprint_of
from .format import StoreError

_remembered: set[tuple[int, ...]] = set()  # verified or written here, or a marker says so
_verified_here: set[tuple[int, ...]] = set()  # verified or written by this process
_distrust = [False]  # validate --full: markers count for nothing
_lock = allocate_lock()
MAX_MARKERS = 4096  # the oldest go when there are more


def identity(st: os.stat_result) -> tuple[int, ...]:
    return (*fingerprint_of(st), st.st_ctime_ns)  # touched at all: a chmod counts


def distrust() -> None:
    """From now on in this process, trust only files this process verified or wrote."""
    _distrust[0] = True


def cache_folder() -> str:
    explicit = os.environ.get("IMAGESHELF_CACHE_DIR")
    if explicit:
        return os.path.join(explicit, "verified")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imageshelf", "verified")


def _marker(ident: tuple[int, ...]) -> str:
    return os.path.join(cache_folder(), "-".join(map(str, ident)))


def problems(path: str | os.PathLike[str]) -> list[str]:
    """What is structurally wrong with an LMDB file, as one line each; [] if nothing.
    Reads the file as bytes and never hands it to the engine."""
    import lmdb.verify as lmdb_verify  # only when a file is not yet trusted

    try:
        return [str(p).replace("\n", " ") for p in lmdb_verify.verify(str(path), subdir=False)]
    except lmdb_verify.VerifyError as exc:
        return [str(exc).replace("\n", " ") or "not an LMDB file"]
    except OSError as exc:
        return [f"cannot read: {exc.strerror or exc}"]
    except (ValueError, OverflowError, MemoryError, RecursionError, IndexError) as exc:
        return [f"not a valid LMDB file ({type(exc).__name__})"]


def is_trusted(st: os.stat_result) -> bool:
    ident = identity(st)
    if ident in _verified_here or (ident in _remembered and not _distrust[0]):
        return True
    if _distrust[0]:
        return False
    try:
        marker = _marker(ident)
        if _private(os.path.dirname(marker)) and _ours(os.lstat(marker)):
            _remembered.add(ident)
            return True
    except OSError:
        pass
    return False


def _ours(st: os.stat_result) -> bool:
    """Owned by this user, and writable by nobody else (where the system says so)."""
    uid = getattr(os, "getuid", None)
    return uid is None or (st.st_uid == uid() and not st.st_mode & 0o022)


def _private(folder: str) -> bool:
    try:
        return _ours(os.stat(folder))
    except OSError:
        return False


def remember(st: os.stat_result) -> None:
    """This file (as `st` describes it) is sound: written here, or verified."""
    ident = identity(st)
    with _lock:
        _remembered.add(ident)
        _verified_here.add(ident)
    try:
        marker = _marker(ident)
        folder = os.path.dirname(marker)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _private(folder):
            return  # another user could forge markers there: this process remembers
        with open(marker, "ab"):
            pass
        _prune(folder)
    except OSError:
        pass  # a read-only home: verified once per process instead


def remember_path(path: str | os.PathLike[str]) -> None:
    """A file this library just wrote and published."""
    try:
        st = os.stat(path)
    except OSError:
        return
    remember(st)


def check(path: str, st: os.stat_result) -> None:
    """Raise StoreError naming the damage unless the file at `path` (whose stat is `st`)
    is structurally sound: remembered, or verified now."""
    if is_trusted(st):
        return
    found = problems(path)
    if found and "MDB_MAGIC" in found[0]:
        raise StoreError(f"{path}: cannot open as an image store: not an LMDB file")
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise StoreError(f"{path}: damaged store file: {found[0]}{more}")
    try:
        now = os.stat(path)
    except OSError:
        return
    if identity(now) == identity(st):  # the file verified is the one about to be opened
        remember(now)


def _prune(folder: str) -> None:
    try:
        markers = list(os.scandir(folder))
    except OSError:
        return
    if len(markers) <= MAX_MARKERS:
        return
    markers.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in markers[: len(markers) - MAX_MARKERS // 2]:
        try:  # noqa: SIM105 - contextlib is not imported on the reading path
            os.unlink(entry.path)
        except OSError:
            pass
