"""The reader of format 1.x (docs/FORMAT.md): each image's bytes whole under its key,
in the `images` database, beside `records`. No chunks, locations, field index or paired
images: a filter reads the records.
"""

from __future__ import annotations

import lmdb

from .format import DB_IMAGES, DB_RECORDS

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Fetch = Callable[[bytes], bytes | None]


def _none(_raw_key: bytes) -> None:
    return None


class V1Reader:
    """One open 1.x file: where its records and its images' bytes are."""

    def __init__(self, env: lmdb.Environment, path: str, major: int) -> None:
        self.env = env
        self.db_records = env.open_db(DB_RECORDS, create=False)
        self.db_images = env.open_db(DB_IMAGES, create=False)  # each image: counted by stat
        self.db_fields = None
        self.paired = False

    def fetch(self) -> Fetch:
        """A reader of image bytes by raw key (None: no such image), for the calling
        thread: its own read transaction, whose default database is `images`, so the
        call passes no keyword."""
        return self.env.begin(db=self.db_images, buffers=False).get

    def paired_fetch(self) -> Fetch:
        return _none

    def locations(self, txn: lmdb.Transaction) -> Iterator[tuple[str, int, int, int]]:
        return iter(())

    def paired_locations(self, txn: lmdb.Transaction) -> Iterator[tuple[str, str, int, int, int]]:
        return iter(())

    def chunk_sizes(self) -> list[tuple[int, int]]:
        return []
