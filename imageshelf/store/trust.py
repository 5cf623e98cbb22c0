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
DVC changes ctime too, when it "unprotects" the outputs of a stage before it runs (a chmod
of every file, its bytes untouched): so where hashing a file is cheaper than verifying it
(small records: verifying costs about 6.5 microseconds per record, hashing about 1 ms per
1.4 MB), the file's SHA-256 is remembered with it, and a file whose only change is its
ctime is trusted again when its bytes hash the same (a million tiny images in shards:
0.2 s instead of 6.5 s). Remembered in this process, and in a small marker file per file
under the user's cache folder (`$IMAGESHELF_CACHE_DIR`, else `$XDG_CACHE_HOME/imageshelf`,
else `~/.cache/imageshelf`), so a file is verified once per machine, not once per process
or DataLoader worker. The folder is made private (0700), and a marker counts only if this
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
import stat
from threading import Lock
from time import perf_counter

from ..base.userfile import fingerprint_of
from .format import StoreError

_remembered: set[tuple[int, ...]] = set()  # verified or written here, or a marker says so
_verified_here: set[tuple[int, ...]] = set()  # verified or written by this process
_distrust = [False]  # validate --full: markers count for nothing
_lock = Lock()
MAX_MARKERS = 4096  # the oldest go when there are more
HASH_BELOW = 4096  # bytes per record: under this, hashing a file beats verifying it
HASH_RATE = 1e9  # bytes per second SHA-256 is counted on (1.4e9 measured, with SHA-NI)


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


def _marker(st: os.stat_result) -> str:
    """A file's marker: named after its device, inode, size and mtime; it holds the
    ctime it was trusted with, and its SHA-256 where that was worth taking."""
    return os.path.join(cache_folder(), "-".join(map(str, fingerprint_of(st))))


def _recorded(st: os.stat_result) -> tuple[int, str | None] | None:
    """(ctime, SHA-256 or None) that this user's marker holds for the file `st`
    describes, if there is one nobody else could have written."""
    marker = _marker(st)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        if not _private(os.path.dirname(marker)):
            return None
        fd = os.open(marker, flags)
        try:
            mst = os.fstat(fd)
            if not stat.S_ISREG(mst.st_mode) or not _ours(mst):
                return None
            words = os.read(fd, 128).decode("ascii", "replace").split()
        finally:
            os.close(fd)
    except OSError:
        return None
    if not words or not words[0].isdigit():
        return None
    digest = words[1] if len(words) > 1 and len(words[1]) == 64 else None
    return int(words[0]), digest


def _digest(path: str | os.PathLike[str]) -> str | None:
    """The SHA-256 of a regular file's bytes; None if it cannot be read as one."""
    import hashlib  # only when a file is hashed

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            digest = hashlib.sha256()
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
    except OSError:
        return None


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
    recorded = _recorded(st)
    if recorded is not None and recorded[0] == st.st_ctime_ns:
        _remembered.add(ident)
        return True
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


def remember(st: os.stat_result, digest: str | None = None) -> None:
    """This file (as `st` describes it) is sound: written here, or verified; `digest`,
    the SHA-256 of its bytes, where taken: a later change of its ctime alone is then
    told by hashing it again, not verifying it."""
    ident = identity(st)
    with _lock:
        _remembered.add(ident)
        _verified_here.add(ident)
    if digest is None:  # keep a hash taken of the file as it still is (same ctime)
        recorded = _recorded(st)
        digest = recorded[1] if recorded is not None and recorded[0] == st.st_ctime_ns else None
    try:
        marker = _marker(st)
        folder = os.path.dirname(marker)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _private(folder):
            return  # another user could forge markers there: this process remembers
        temp = f"{marker}.{os.getpid()}.tmp"
        with open(temp, "w") as out:
            out.write(f"{st.st_ctime_ns} {digest or ''}\n")
        os.replace(temp, marker)
        _prune(folder)
    except OSError:
        pass  # a read-only home: verified once per process instead


def remember_path(path: str | os.PathLike[str], records: int = 0) -> None:
    """A file this library just wrote and published, holding `records` records: hashed
    too where that is cheaper than verifying it (see the module's docstring)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    digest = None
    if records and st.st_size < records * HASH_BELOW + (1 << 20):  # and any small file
        digest = _digest(path)
        if digest is not None and not _unchanged(path, st):
            return
    remember(st, digest)


def _unchanged(path: str | os.PathLike[str], st: os.stat_result) -> bool:
    try:
        return identity(os.stat(path)) == identity(st)
    except OSError:
        return False


def check(path: str, st: os.stat_result) -> None:
    """Raise StoreError naming the damage unless the file at `path` (whose stat is `st`)
    is structurally sound: remembered, the same bytes as when it was remembered, or
    verified now."""
    if is_trusted(st) or _same_bytes(path, st):
        return
    started = perf_counter()
    found = problems(path)
    if found and "MDB_MAGIC" in found[0]:
        raise StoreError(f"{path}: cannot open as an image store: not an LMDB file")
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise StoreError(f"{path}: damaged store file: {found[0]}{more}")
    if not _unchanged(path, st):  # only the file verified is remembered
        return
    digest = None
    if st.st_size < (perf_counter() - started) * HASH_RATE / 2:
        digest = _digest(path)  # cheaper than what was just done: next time, this instead
        if not _unchanged(path, st):
            return
    remember(st, digest)


def _same_bytes(path: str, st: os.stat_result) -> bool:
    """Whether the file hashes as the marker of its device, inode, size and mtime says
    it did when it was trusted (only its ctime changed: a chmod); then it is trusted as
    it is now."""
    if _distrust[0]:
        return False
    recorded = _recorded(st)
    if recorded is None or recorded[1] is None:
        return False
    if _digest(path) != recorded[1] or not _unchanged(path, st):
        return False
    remember(st, recorded[1])
    return True


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
