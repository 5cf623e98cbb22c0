"""Format 2.0's field index: for each indexed field, each text value -> the keys of the
records holding it (the `fields` database), written by build.py and read by file.py.
"""

from __future__ import annotations

from .format import MAX_KEY_BYTES, StoreError

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from .values import Record


def field_value(record: Record, name: str) -> Any:
    """The value a filter on `name` compares, as read/query.py reads it from the JSON: the
    store's own fields first, `meta.NAME` for the metadata's. None when missing."""
    if name == "key":
        return record.key
    if name == "split":
        return record.effective_split
    if name in ("format", "sha256"):
        return getattr(record.info, name)
    if name in ("width", "height", "size"):
        return getattr(record.info, name)
    return record.metadata.get(name[5:] if name.startswith("meta.") else name)


def index_key(name: str, value: str) -> bytes | None:
    """The `fields` key of one field's value; None if LMDB cannot hold it as a key."""
    try:
        raw = name.encode("utf-8") + b"\0" + value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return raw if len(raw) <= MAX_KEY_BYTES and b"\0" not in raw[len(name) + 1 :] else None


class Postings:
    """The keys that hold one value of an indexed field, in key order, front-coded: per
    key, the length of the prefix it shares with the previous key (one byte, at most
    255), the length of the rest (two bytes, big-endian), then the rest."""

    __slots__ = ("data", "previous")

    def __init__(self) -> None:
        self.data = bytearray()
        self.previous = b""

    def add(self, raw_key: bytes) -> None:
        previous = self.previous
        shared = 0
        limit = min(len(previous), len(raw_key), 255)
        while shared < limit and previous[shared] == raw_key[shared]:
            shared += 1
        rest = raw_key[shared:]
        self.data += bytes((shared, len(rest) >> 8, len(rest) & 0xFF)) + rest
        self.previous = raw_key


# A field with more distinct values than this in one file (free text, an OCR line) is
# not indexed there: its index would be as large as the records, and filters on it scan.
MAX_INDEXED_VALUES = 100_000


class FieldIndex:
    """The `fields` database of one file, built from its records in key order: for each
    indexed field, each text value -> the keys holding it. A field one of whose values
    cannot be a key, or with too many distinct values, is left out whole (a filter on
    it reads the records), so the index never misses a record."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.postings: dict[bytes, Postings] = {}
        self.distinct: dict[str, int] = {}
        self.dropped: set[str] = set()

    def add(self, raw_key: bytes, record: Record) -> None:
        for name in self.names:
            found = field_value(record, name)
            if not isinstance(found, str) or name in self.dropped:
                continue  # only text is indexed: a filter's text can equal only text
            entry = index_key(name, found)
            held = self.postings.get(entry) if entry is not None else None
            if held is None:
                self.distinct[name] = self.distinct.get(name, 0) + 1
                if entry is None or self.distinct[name] > MAX_INDEXED_VALUES:
                    self.dropped.add(name)
                    prefix = name.encode("utf-8") + b"\0"
                    self.postings = {
                        k: v for k, v in self.postings.items() if not k.startswith(prefix)
                    }
                    continue
                held = self.postings[entry] = Postings()
            held.add(raw_key)

    @property
    def indexed(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if name not in self.dropped)

    @property
    def not_indexed(self) -> tuple[str, ...]:
        return tuple(sorted(self.dropped))

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """(field NUL value, postings), in key order."""
        for entry in sorted(self.postings):
            yield entry, bytes(self.postings[entry].data)


def count_postings(data: bytes | memoryview) -> int:
    """How many keys a postings value holds, without building them; StoreError if it
    does not decode."""
    view = bytes(data)
    at, end, count = 0, len(view), 0
    while at < end:
        if at + 3 > end:
            raise StoreError("damaged store: an index entry is cut short")
        at += 3 + ((view[at + 1] << 8) | view[at + 2])
        count += 1
    if at != end:
        raise StoreError("damaged store: an index entry does not decode")
    return count


def iter_postings(data: bytes | memoryview) -> Iterator[bytes]:
    """The keys of a postings value, one at a time in key order (a page of a filter
    stops early); StoreError, when reached, where it does not decode."""
    previous = b""
    view = bytes(data)
    at, end = 0, len(view)
    while at < end:
        if at + 3 > end:
            raise StoreError("damaged store: an index entry is cut short")
        shared, rest = view[at], (view[at + 1] << 8) | view[at + 2]
        at += 3
        if shared > len(previous) or at + rest > end:
            raise StoreError("damaged store: an index entry does not decode")
        previous = previous[:shared] + view[at : at + rest]
        at += rest
        yield previous
