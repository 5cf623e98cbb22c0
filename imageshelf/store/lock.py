"""One writer per store: an exclusive `flock` on `.NAME.lock` beside it.

Only writers import this (fcntl is POSIX): reading a store never takes a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..base.atomic import temp_glob
from .format import StoreError


class ConcurrentWriteError(StoreError):
    """Another process is writing the same store."""


_held_locks: set[str] = set()


def lock_path(store: Path) -> Path:
    return store.with_name(f".{store.name}.lock")


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the one-writer-per-store lock; remove temp files that dead writers left.

    Re-entrant within a process, so a caller can plan and write under one lock.
    """
    path = Path(path)
    lock = lock_path(path)
    ident = os.path.realpath(lock)
    if ident in _held_locks:
        yield
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create lock file {lock}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConcurrentWriteError(
                f"another process (pid {holder}) is writing {path}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for stale in path.parent.glob(temp_glob(path)):
            if not stale.is_dir():
                stale.unlink(missing_ok=True)  # we hold the lock, so its writer is gone
        _held_locks.add(ident)
        try:
            yield
        finally:
            _held_locks.discard(ident)
    finally:
        os.close(fd)  # releases the lock
