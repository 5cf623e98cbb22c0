"""Publish a file whole: write it beside its target, then rename it into place.

Everything the project publishes goes through here: store files and shards, the shard
index, the staged manifest, the catalog, reports and exported files. A reader, a crash
or a kill sees the old file or the new one, never part of one. The temporary file is
`.NAME.tmp-PID` beside the target; on any error it is removed. Only a SIGKILL or a
power cut can leave one behind: writers of the store remove those under their lock,
and `.gitignore` and `.dvcignore` ignore the pattern everywhere under `data/`.

`durable=True` also makes the new file and its folder entry reach the disk before the
call returns (fsync): for the store and its index, whose loss would lose images.
Derived files (manifest, catalog, reports, exports) skip it: each can be rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import ShelfError

TEMP_MARK = ".tmp-"


def temp_path(target: Path) -> Path:
    """The temporary name this thread uses for `target`: `.NAME.tmp-PID-THREAD` beside
    it. The thread too: two of the viewer's threads making one thumbnail shared a
    temporary file, and the second rename found it gone (a 500, 2 runs in 3)."""
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{threading.get_native_id()}")


def temp_glob(target: Path) -> str:
    """A glob pattern, relative to the target's folder, for every writer's temp file."""
    return f".{target.name}{TEMP_MARK}*"


def is_temp(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


@contextlib.contextmanager
def temporary(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, removed when the block ends unless it was
    published (renamed away) by then: nothing is left behind on an error."""
    temp = temp_path(Path(target))
    temp.unlink(missing_ok=True)  # a leftover of a dead process that had our pid
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def publish(temp: Path, target: Path, *, durable: bool = True) -> None:
    """Rename a complete temporary file over `target`; with `durable`, sync it first
    and its folder after, so the new version survives a power cut."""
    if durable:
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temp, target)
    if durable:
        fsync_dir(Path(target).parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteError(ShelfError):
    """A file could not be written (a read-only folder, a full disk); nothing was
    published and no temporary file is left."""


def write_error(
    target: Path, exc: Exception, *, disk_full: bool = False, what: str = "version"
) -> WriteError:
    """The one-line error for a failed write of `target`: the previous `what` stands."""
    if disk_full or getattr(exc, "errno", None) == errno.ENOSPC:
        return WriteError(f"disk full while writing {target}; the previous {what} is unchanged")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return WriteError(f"cannot write {target}: {reason}; the previous {what} is unchanged")


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], *, durable: bool = False) -> Iterator[IO[bytes]]:
    """A binary file to write; published at `target` when the block ends without error.
    A failure to write is a WriteError naming the file."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with temporary(target) as temp:
            with open(temp, "wb") as out:
                yield out
            publish(temp, target, durable=durable)
    except OSError as exc:
        raise write_error(target, exc) from None


def write_bytes(target: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> None:
    with atomic_write(target, durable=durable) as out:
        out.write(data)


def write_text(target: str | os.PathLike[str], text: str, *, durable: bool = False) -> None:
    write_bytes(target, text.encode("utf-8"), durable=durable)


def json_bytes(value: object) -> bytes:
    """A report's bytes as write_json writes them (for a caller that needs their hash)."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_json(target: str | os.PathLike[str], value: object) -> None:
    """A report: indented JSON, UTF-8, ending in a newline."""
    write_bytes(target, json_bytes(value))
