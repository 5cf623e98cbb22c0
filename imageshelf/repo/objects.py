"""The folder where files fetched from a DVC remote are kept (imageshelf.read.remote): one per
machine, shared by every process and DataLoader worker, and by users who share it.

    <cache>/objects/<md5>.lmdb    a shard, or a single store file, named by DVC's md5
    <cache>/objects/<md5>.lock    held to fetch, open or evict that object

Whoever else can write to the folder, nothing in it is believed for being there:

- Its folders are real folders (no link that leads elsewhere), owned by this user or
  root; one that others can write to must be sticky (`chmod +t`, as /tmp is), so nobody
  can rename or delete another's files. Checked when the cache is opened.
- An md5 names a file only as 32 lowercase hex digits: a name from a dvc.lock or a
  `.dir` manifest is never a path.
- A lock is opened without following a link and without truncating anything.
- An object is used only if it is a regular file (not a link), writable by nobody but
  its owner, and its md5 is the one the revision records: hashed before first use, then
  remembered by its identity (device, inode, size, mtime, ctime: a file changed in any
  way has a new one) in this process and in a marker under the user's private cache
  folder, as the store's trust.py remembers verified files. Objects this library fetches
  are remembered as they are placed, so a machine hashes each object it did not fetch
  itself once. One that fails is replaced (or, if it is another user's and cannot be
  removed, refused in one line).
- A fetch is written to a new temporary file, its md5 checked, then renamed into place;
  it never grows past the size the revision records (imageshelf.read.remote bounds it).

Eviction: over `limit` bytes, the least recently used objects go first; the lock of
one being fetched or opened is held, and eviction passes over it, so a reader never
loses a shard between finding it and opening it. Once opened, an object evicted goes on
being read (Linux frees its space when the last reader lets go), and a forked worker
reopens it through the cache again (imageshelf.read.remote resets its stores after fork).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import operator
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ShelfError
from ..store import StoreError, trust

MD5_DIGITS = frozenset("0123456789abcdef")
BLOCK = 1 << 20
MAX_MARKERS = 4096  # the oldest half go when there are more
Sink = Callable[[bytes], None]


class RemoteError(ShelfError):
    """A repository, revision, shard or cache that cannot be read; the message says why."""


def is_md5(text: object) -> bool:
    """Whether `text` is an md5 as DVC writes one: 32 lowercase hex digits, so that as a
    file name it can never be a path."""
    return isinstance(text, str) and len(text) == 32 and MD5_DIGITS.issuperset(text)


def check_limit(limit: object) -> int | None:
    """`cache_limit` as given: None, or a whole number of bytes above 0."""
    if limit is None:
        return None
    try:
        value = None if isinstance(limit, bool) else operator.index(limit)  # type: ignore[arg-type]
    except TypeError:
        value = None
    if value is None or value < 1:
        raise RemoteError(
            f"cache_limit must be a whole number of bytes above 0 (or None), not {limit!r:.40}"
        )
    return value


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def _check_folder(path: Path, made: int | None = None) -> None:
    """A cache folder: a real folder (not a link), this user's or root's, and sticky if
    others can write to it (one of this user's is made so); `made`: the mode to give a
    folder just made. RemoteError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if os.path.islink(path):
            raise RemoteError(
                f"{path}: the cache's folders must be real folders, not links"
            ) from None
        raise RemoteError(f"{path}: not a folder; give the cache a folder (cache=)") from None
    if made is not None:
        os.fchmod(fd, made)  # as its parent: private, or shared (group, sticky)
    try:
        st = os.fstat(fd)
        if st.st_uid not in (_uid(), 0):
            raise RemoteError(
                f"{path}: the cache folder belongs to another user (uid {st.st_uid}), who "
                "could replace what is fetched there: use your own, or one root made"
            )
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            if st.st_uid != _uid():
                raise RemoteError(
                    f"{path}: others can write to this cache folder and it is not sticky, so "
                    f"they could replace what is fetched there: `chmod +t {path}`"
                )
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_ISVTX)  # then nobody can
    finally:
        os.close(fd)


class ObjectCache:
    """The objects of one cache folder; see the module's docstring."""

    def __init__(self, root: str | os.PathLike[str], limit: int | None = None) -> None:
        self.root = Path(os.path.realpath(root))  # the folder the user chose; inside, no links
        self.limit = check_limit(limit)
        self.objects = self.root / "objects"
        try:
            with contextlib.suppress(FileExistsError):
                self.root.mkdir(mode=0o700, parents=True)  # private unless made shared
            _check_folder(self.root)
            made = None
            with contextlib.suppress(FileExistsError):
                self.objects.mkdir(mode=0o700)
                made = stat.S_IMODE(os.stat(self.root).st_mode)
            _check_folder(self.objects, made)
        except OSError as exc:
            raise RemoteError(
                f"{exc.filename or self.root}: cannot use as a cache: {exc.strerror or exc}"
            ) from None

    def __getstate__(self) -> dict[str, object]:
        return {"root": self.root, "limit": self.limit}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["root"], state["limit"])  # type: ignore[misc]

    def path(self, md5: str) -> Path:
        if not is_md5(md5):  # callers check first: this is the last line of defence
            raise RemoteError(f"{md5[:40]!r}: not an md5, never a file name in the cache")
        return self.objects / f"{md5}.lmdb"

    @contextlib.contextmanager
    def held(
        self, md5: str, bound: int, fetch: Callable[[Sink], None], where: str
    ) -> Iterator[tuple[Path, bool]]:
        """(the object's path, whether it had to be fetched or waited for), the object
        present and checked, and kept from eviction until the block ends: open it
        inside. `fetch(sink)` hands the object's bytes (the revision's file `where`) to
        `sink`, if they are needed."""
        target = self.path(md5)
        waited = not os.path.lexists(target)  # not here yet, or being fetched
        with self._lock(md5) as fd:
            if not self._usable(target, md5, bound):
                self._fetch(target, md5, fetch, where)
                waited = True
            _touch(fd)  # recently used: the lock's mtime (the object's would change it)
            yield target, waited

    @contextlib.contextmanager
    def _lock(self, md5: str, wait: bool = True) -> Iterator[int | None]:
        """The object's lock, held exclusively (None: taken by another, with wait=False)."""
        fd = self._open_lock(self.objects / f"{md5}.lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield None
                return
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)  # now, whoever else holds this descriptor
        finally:
            os.close(fd)

    def _open_lock(self, path: Path) -> int:
        """A descriptor of the lock file at `path`, made if missing: never through a
        link, never truncating; a link or anything but a regular file there is removed."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _attempt in range(5):
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o444)
                continue
            except OSError as exc:
                if exc.errno != errno.ELOOP:  # ELOOP: a link, removed below
                    raise RemoteError(f"{path}: cannot open the lock: {exc.strerror}") from None
            else:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    return fd
                os.close(fd)
            self._discard(path)
        raise RemoteError(f"{path}: the lock keeps being replaced; is another user at it?")

    def _usable(self, target: Path, md5: str, bound: int) -> bool:
        """Whether the object at `target` is a sound copy of `md5`; one that is not is
        removed."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return False
        if (
            stat.S_ISREG(st.st_mode)
            and not st.st_mode & 0o022
            and st.st_size <= bound
            and (_recall(st) == md5 or _hashes_to(target, st, md5))
        ):
            return True
        self._discard(target)
        return False

    def _discard(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RemoteError(
                f"{path}: in the cache, not what its name says, and it cannot be removed "
                f"({exc.strerror}): have its owner remove it, or use a cache of your own"
            ) from None

    def _fetch(self, target: Path, md5: str, fetch: Callable[[Sink], None], where: str) -> None:
        """Fetch the object into a new file beside `target`, check its md5, make room,
        rename it into place and remember it."""
        temp = self.objects / f".fetch-{os.getpid()}-{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            with open(os.open(temp, flags, 0o600), "wb") as out:
                digest = hashlib.md5(usedforsecurity=False)

                def sink(block: bytes) -> None:
                    digest.update(block)
                    out.write(block)

                fetch(sink)
                if digest.hexdigest() != md5:
                    raise StoreError(
                        f"{where}: the file fetched does not match the md5 its revision "
                        "records: refused (damaged or tampered with on the remote)"
                    )
                out.flush()
                os.fchmod(out.fileno(), 0o444)  # nobody writes an object again
                os.fsync(out.fileno())
                size, inode = out.tell(), os.fstat(out.fileno()).st_ino
            self.make_room(size, keep=md5)
            os.rename(temp, target)
            placed = os.lstat(target)  # renamed: a new ctime
            if placed.st_ino == inode:
                _remember(placed, md5)
        except OSError as exc:
            raise RemoteError(
                f"{self.objects}: cannot write to the cache: {exc.strerror}"
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def make_room(self, size: int, keep: str = "") -> None:
        """Evict the least recently used objects until `size` more bytes fit under the
        limit; an object whose lock is held (being fetched or opened) is passed over."""
        if self.limit is None:
            return
        held = []
        for entry in os.scandir(self.objects):
            md5 = entry.name.removesuffix(".lmdb")
            if entry.name.endswith(".lmdb") and is_md5(md5):
                try:  # another reader may evict it meanwhile: then it takes no room
                    if entry.is_file(follow_symlinks=False):
                        used = _last_used(self.objects, md5, entry)
                        held.append((used, entry.stat(follow_symlinks=False).st_size, md5))
                except FileNotFoundError:
                    continue
        total = sum(size for _, size, _ in held)
        for _used, held_size, md5 in sorted(held):
            if total + size <= self.limit:
                break
            if md5 != keep and self._evict(md5):
                total -= held_size

    def _evict(self, md5: str) -> bool:
        with self._lock(md5, wait=False) as fd:
            if fd is None:
                return False  # being fetched or opened: it stays
            with contextlib.suppress(OSError):
                (self.objects / f"{md5}.lmdb").unlink()
                return True
        return False


def _touch(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.utime(fd)


def _last_used(objects: Path, md5: str, entry: os.DirEntry[str]) -> float:
    try:
        return os.stat(objects / f"{md5}.lock", follow_symlinks=False).st_mtime
    except OSError:
        return entry.stat(follow_symlinks=False).st_mtime


def _hashes_to(path: Path, st: os.stat_result, md5: str) -> bool:
    """Whether the file `st` describes, at `path`, has the md5 `md5` (remembered if so)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with open(os.open(path, flags), "rb") as data:
            if trust.identity(os.fstat(data.fileno())) != trust.identity(st):
                return False  # replaced meanwhile
            digest = hashlib.md5(usedforsecurity=False)
            for block in iter(lambda: data.read(BLOCK), b""):
                digest.update(block)
    except OSError:
        return False
    if digest.hexdigest() != md5:
        return False
    _remember(st, md5)
    return True


# -- what has been hashed: identity -> md5, in this process and in private markers
_known: dict[tuple[int, ...], str] = {}


def _markers() -> str:
    return os.path.join(os.path.dirname(trust.cache_folder()), "fetched")


def _marker(st: os.stat_result) -> str:
    return os.path.join(_markers(), "-".join(map(str, trust.identity(st)[:4])))


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == _uid() and not st.st_mode & 0o022


def _recall(st: os.stat_result) -> str | None:
    """The md5 this file (as `st` describes it) was found to have, if this process or
    a marker nobody else could have written says so."""
    ident = trust.identity(st)
    known = _known.get(ident)
    if known is not None:
        return known
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if not _ours(os.stat(_markers())):
            return None
        with open(os.open(_marker(st), flags), "rb") as marker:
            mst = os.fstat(marker.fileno())
            words = marker.read(128).decode("ascii", "replace").split()
    except OSError:
        return None
    if not (stat.S_ISREG(mst.st_mode) and _ours(mst)) or len(words) != 2:
        return None
    if words[0] != str(st.st_ctime_ns) or not is_md5(words[1]):
        return None
    _known[ident] = words[1]
    return words[1]


def _remember(st: os.stat_result, md5: str) -> None:
    _known[trust.identity(st)] = md5
    folder = _markers()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _ours(os.stat(folder)):
            return  # another user could forge markers there: this process remembers
        marker = _marker(st)
        temp = f"{marker}.{os.getpid()}.tmp"
        with open(temp, "w") as out:
            out.write(f"{st.st_ctime_ns} {md5}\n")
        os.replace(temp, marker)
        _prune(folder)
    except OSError:
        pass  # a read-only home: hashed once per process instead


def _prune(folder: str) -> None:
    markers = list(os.scandir(folder))
    if len(markers) <= MAX_MARKERS:
        return
    markers.sort(key=lambda entry: entry.stat().st_mtime_ns)
    for entry in markers[: len(markers) - MAX_MARKERS // 2]:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
