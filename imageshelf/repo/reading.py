"""Reading a version through DVC: the one place that turns what DVC raises into a line.

`diff` reads catalogs, `view --rev` and `merge` a store, `open_store` shards, each as it
was at a git revision, through DVC's file system (its cache, else the remote). DVC's
errors come from three packages: `dvc` (DvcException), `scmrepo` (SCMError) and
`dvc_data` (DataIndexError: a folder whose listing is in no cache or remote), besides
OSError. `reading` catches all of them where DVC is called, and says in one line what
could not be read, at which revision, and what to do. DVC is imported lazily: reading a
store never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ShelfError


class DvcReadError(ShelfError):
    """A file of a revision DVC cannot give; the message names both and what to do."""


def dvc_errors() -> tuple[type[Exception], ...]:
    """What DVC raises for a file of a revision it cannot give."""
    from dvc.exceptions import DvcException
    from dvc_data.index import DataIndexError
    from scmrepo.exceptions import SCMError

    return (DvcException, SCMError, DataIndexError, OSError)


def _missing(exc: Exception) -> bool:
    """Whether DVC found the revision's file in neither its cache nor the remote: a
    folder's listing it cannot load, or a file with no storage."""
    from dvc_data.index import DataIndexError

    return isinstance(exc, DataIndexError) or (
        isinstance(exc, FileNotFoundError) and "storage" in str(exc)
    )


@contextmanager
def reading(
    path: str | os.PathLike[str],
    rev: str,
    error: type[ShelfError] = DvcReadError,
    repo: str | os.PathLike[str] = ".",
) -> Iterator[None]:
    """Run DVC's calls for `path` at revision `rev` (as the user gave it) of `repo`; what
    DVC raises becomes `error`, one line. Other errors (ours, a bug) pass through."""
    try:
        yield
    except ShelfError:
        raise
    except Exception as exc:
        if not isinstance(exc, dvc_errors()):
            raise
        where = "" if str(repo) == "." else f" of {repo}"
        if _missing(exc):
            raise error(
                f"{os.fspath(path)} at {rev}{where} is in neither DVC's cache here nor the "
                "remote: push it from the clone that made it (`dvc push --all-commits`) to a "
                "remote both clones use (`dvc remote list`), then try again"
            ) from None
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise error(f"cannot read {os.fspath(path)} at {rev}{where}: {reason}") from None
