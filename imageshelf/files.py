"""Read a user's file without being stopped by what it really is.

A path that was an image when ingest looked can be a FIFO, a device or a folder by the
time pack or validate reads it: `open()` on a FIFO blocks until a writer appears, that
is forever. Opening without blocking and checking the open file itself (not the path,
which can change again) makes any of those an OSError that names the problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO


class NotRegularFileError(OSError):
    """The path is a FIFO, a socket, a device or a folder."""


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """The regular file at `path`, open for reading, and its stat; NotRegularFileError
    if it is anything else (decided without blocking), OSError if it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(
                errno.EINVAL, "not a regular file (a pipe, socket or device)", os.fspath(path)
            )
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")  # owns the descriptor from here
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path`; OSError if it is anything else."""
    with open_regular(path) as (fh, _st):
        return fh.read()


def read_head(path: str | os.PathLike[str], size: int = 16) -> bytes:
    """The first bytes of a regular file; b"" if it is not one or cannot be read."""
    try:
        with open_regular(path) as (fh, _st):
            return fh.read(size)
    except OSError:
        return b""
