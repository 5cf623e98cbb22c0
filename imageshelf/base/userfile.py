"""Read a user's file without being stopped by what it really is.

A path that was an image when ingest looked can be a FIFO, a device or a folder by the
time pack or validate reads it: `open()` on a FIFO blocks until a writer appears, that
is forever. Opening without blocking and checking the open file itself (not the path,
which can change again) makes any of those an OSError that names the problem.
"""

from __future__ import annotations

# The store imports this module on its way to a first read: no `typing` here (it costs
# a fresh process 3 to 15 ms, measured with -X importtime).
import errno
import io
import os
import stat
import struct

# What a write to a file through the file system changes: device, inode, size, mtime.
# Not ctime, which DVC changes on every output it "unprotects" before a stage runs (the
# store's trust.py adds it: a file it verified must not have been touched at all).
Fingerprint = tuple[int, int, int, int]


def fingerprint_of(st: os.stat_result) -> Fingerprint:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


# A fingerprint packed in 32 bytes: how a walk keeps one per file and ingest's cache
# stores it. One bytes object, which the garbage collector does not track, instead of a
# tuple of four ints: at 200,000 files that is a fifth of a walk's time.
STAMP = struct.Struct("<QQqq")
Stamp = bytes


def stamp(fingerprint: Fingerprint) -> Stamp:
    return STAMP.pack(*fingerprint)


def fingerprint(path: str | os.PathLike[str]) -> Fingerprint | None:
    """The file's fingerprint, or None if it is missing."""
    try:
        return fingerprint_of(os.stat(path))
    except OSError:
        return None


class NotRegularFileError(OSError):
    """The path is a FIFO, a socket, a device or a folder."""


def _open_fd(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file at `path` and its stat; NotRegularFileError if it
    is anything else (decided without blocking), OSError if it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(
                errno.EINVAL, "not a regular file (a pipe, socket or device)", os.fspath(path)
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path`; OSError if it is anything else.

    Plain system calls, no file object: open, stat, one read of the whole file and one
    that finds its end, close: an image's bytes in about half the time `open().read()`
    takes (pack and validate read every new image). A regular file ignores O_NONBLOCK:
    its reads wait for the disk as usual."""
    fd, st = _open_fd(path)
    try:
        return _read_all(fd, st.st_size)
    finally:
        os.close(fd)


def read_regular_file_stamped(path: str | os.PathLike[str]) -> tuple[bytes, Fingerprint]:
    """`read_regular_file`, with the file's fingerprint as it was once read."""
    fd, st = _open_fd(path)
    try:
        data = _read_all(fd, st.st_size)
        return data, fingerprint_of(os.fstat(fd))
    finally:
        os.close(fd)


def read_regular_file_within(
    path: str | os.PathLike[str], max_bytes: int
) -> tuple[bytes | None, int]:
    """(the bytes of the regular file at `path`, its size), or (None, its size) without
    reading it if it is larger than `max_bytes`; OSError as read_regular_file."""
    fd, st = _open_fd(path)
    try:
        if st.st_size > max_bytes:
            return None, st.st_size
        data = _read_all(fd, st.st_size)
    finally:
        os.close(fd)
    return data, len(data)


def _read_all(fd: int, size: int) -> bytes:
    """The rest of the file, `size` bytes as its stat said: one read asking for one byte
    more, which, where it gives exactly `size`, has met the end (a read of a regular
    file is short only there); one that gives more (the file grew) reads on to the end.
    A file of 270 bytes is read with five system calls instead of six."""
    first = os.read(fd, size + 1)
    if len(first) == size:
        return first
    chunks = [first]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """The regular file at `path`, open to read; OSError if it is anything else
    (decided without blocking)."""
    fd, _st = _open_fd(path)
    return os.fdopen(fd, "rb")


def read_head(path: str | os.PathLike[str], size: int = 16) -> bytes:
    """The first bytes of a regular file; b"" if it is not one or cannot be read."""
    try:
        fd, _st = _open_fd(path)
    except OSError:
        return b""
    try:
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)
