"""Read a user's file without being stopped by what it really is.

A path that was an image when ingest looked can be a FIFO, a device or a folder by the
time pack or validate reads it: `open()` on a FIFO blocks until a writer appears, that
is forever. Opening without blocking and checking the open file itself (not the path,
which can change again) makes any of those an OSError that names the problem.
"""

from __future__ import annotations

import errno
import os
import stat


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path`; OSError if it is anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)
