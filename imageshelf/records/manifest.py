"""Records as JSON lines, one per image, sorted by key: the staged manifest and the
catalog are both written in this form.

The staged manifest (data/staged.jsonl) is what ingest found: pack merges it into the
store and validate checks the store against it. It holds no image bytes: each line names
the file under the incoming folder by its key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..base.atomic import write_bytes
from ..base.userfile import open_regular
from ..errors import ShelfError
from ..store import ImageInfo, Record, StoreError
from ..store.format import DamagedRecordError, canonical_json, check_role, parse_json
from ..store.values import Paired

# The manifest's first line. It is never empty, so DVC has no "is empty" to warn about
# after every stage when nothing is staged.
T = TypeVar("T")

HEADER = b'{"manifest":"imageshelf staged images","version":1}\n'


def encode_line(record: Record) -> bytes:
    return canonical_json({"key": record.key, **record.to_json()}) + b"\n"


def encode_stored_line(key: str, raw: bytes) -> bytes:
    """`encode_line` of a record as a store holds it (its canonical JSON), without
    parsing and encoding it again: "key" sorts just before "meta", which every record
    has, and only "annotated", "format" and "height" come before it, none of which can
    hold `"meta":` (a quote inside a string is escaped). A record without "meta" is
    damaged: DamagedRecordError."""
    at = raw.find(b'"meta":')
    if at < 1 or raw[at - 1] not in b"{,":
        raise DamagedRecordError(key, "no field 'meta'")
    return b"".join((raw[:at], b'"key":', canonical_json(key), b",", raw[at:], b"\n"))


def stored_of_line(line: bytes) -> tuple[str, bytes] | None:
    """The inverse of `encode_stored_line`: (key, the record as a store holds it) from a
    catalog line, without parsing the record; None if the line is not laid out so (its
    key is not the member just before "meta"). An unescaped `,"meta":` cannot occur
    inside a JSON string, so the first one after `"key":` ends the key."""
    at = line.find(b'"key":')
    end = line.find(b',"meta":', at)
    if at < 1 or end < 0 or line[at - 1] not in b"{,":
        return None
    try:
        key = parse_json(line[at + 6 : end])
    except ValueError:
        return None
    if not isinstance(key, str):
        return None
    return key, line[:at] + line[end + 1 :].rstrip(b"\r\n")


def write_manifest(path: str | os.PathLike[str], records: Iterable[Record]) -> bool:
    """Write records (already sorted by key) whole, unless the file already holds
    exactly them: an unchanged manifest keeps its mtime, so DVC sees no change
    downstream. Returns whether it was written."""
    data = HEADER + b"".join(encode_line(record) for record in records)
    try:
        if Path(path).read_bytes() == data:
            return False
    except OSError:
        pass
    write_bytes(path, data)
    return True


class ManifestError(ShelfError, ValueError):
    """A manifest or catalog file that is not records, one per line; the message names
    the file and the line."""


def read_manifest(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Stream the records of a manifest or catalog file, in key order. A file that is
    not a regular file (a FIFO would block for ever), not UTF-8 text or not records is a
    ManifestError naming the line. /dev/null is an empty manifest."""
    return _read(path, parse_records)


def read_manifest_keys(path: str | os.PathLike[str]) -> Iterator[str]:
    """The keys of a manifest's records, in order, each line checked as JSON with a key
    but not read as a record (for a caller that has read the records once already)."""
    return (key for key, _line in _read(path, parse_raw_records))


_INFO_FIELDS = ("sha256", "size", "format", "width", "height")  # ImageInfo's, in order


Infos = tuple[str, ImageInfo, dict[str, Paired]]  # key, info, paired images


def read_manifest_infos(path: str | os.PathLike[str]) -> Iterator[Infos]:
    """(key, info, paired images) of each record of a manifest, in order, without the
    record's checks and metadata: for pack's second pass over a manifest its first pass
    read whole, and validate's check of what was staged."""

    def parse(lines: Iterable[bytes], name: str) -> Iterator[Infos]:
        for number, entry, _line in _entries(lines, name):
            key = entry["key"]
            try:
                fields = [entry[field] for field in _INFO_FIELDS]
                paired = entry.get("paired")
                if paired is not None:  # rare: read as a record is, checked
                    paired = {check_role(r): Paired.from_json(key, r, v) for r, v in paired.items()}
            except KeyError as missing:
                raise ManifestError(f"{name}: line {number}: no field {missing}") from None
            except (DamagedRecordError, AttributeError, StoreError) as exc:
                raise ManifestError(f"{name}: line {number}: {str(exc)[:200]}") from None
            yield key, ImageInfo(*fields), paired or {}

    return _read(path, parse)


def read_stored_lines(path: str | os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """(key, the record as a store holds it) for each line of a catalog file, not read
    as records (`stored_of_line`); ManifestError naming a line not laid out so."""

    def parse(lines: Iterable[bytes], name: str) -> Iterator[tuple[str, bytes]]:
        for number, line in enumerate(lines, 1):
            if line.strip():
                found = stored_of_line(line)
                if found is None:
                    raise ManifestError(f"{name}: line {number}: not a record as pack writes it")
                yield found

    return _read(path, parse)


def _read(path: str | os.PathLike[str], parse: Callable[[Any, str], Iterator[T]]) -> Iterator[T]:
    """What `parse` makes of the lines of the regular file at `path`; /dev/null has none."""
    if os.fspath(path) == os.devnull:
        return
    try:
        with open_regular(path) as lines:
            yield from parse(lines, str(path))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_records(lines: Iterable[str | bytes], name: str = "manifest") -> Iterator[Record]:
    """Records from manifest lines (a file, or a stream fetched from a git revision)."""
    for number, entry, _line in _entries(lines, name):
        try:
            yield Record.from_json(entry["key"], entry)
        except DamagedRecordError as exc:
            raise ManifestError(f"{name}: line {number}: {str(exc)[:200]}") from None


def parse_raw_records(lines: Iterable[bytes], name: str = "catalog") -> Iterator[tuple[str, bytes]]:
    """(key, the line) for each record of catalog lines, checked as JSON objects with a
    key but not yet read as records: what a store part's raw_records gives, for a reader
    that keeps only some of them (select reads the ones it keeps)."""
    for _number, entry, line in _entries(lines, name):
        yield entry["key"], line


def _entries(lines: Iterable[str | bytes], name: str) -> Iterator[tuple[int, dict[str, Any], Any]]:
    """(line number, JSON object, line) for each record line; the header and blank lines
    skipped; a ManifestError naming the line for anything else."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            if isinstance(line, bytes):
                line.decode("utf-8")  # orjson would say "invalid JSON"; say what it is
            entry = parse_json(line)
            if isinstance(entry, dict) and "key" not in entry and "manifest" in entry:
                continue  # the header line
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise ValueError("not a record with a key")
        except UnicodeDecodeError:
            raise ManifestError(f"{name}: line {number}: not UTF-8 text") from None
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ManifestError(f"{name}: line {number}: {why[:200]}") from None
        yield number, entry, line
