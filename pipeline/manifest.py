"""The staged manifest: what ingest found, one JSON line per image, sorted by key.

Pack merges it into the store; validate checks the store against it. It holds no image
bytes: each line names the file under the incoming folder by its key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .store import Record
from .store.format import canonical_json, parse_json


def write_manifest(path: Path, records: Iterable[Record]) -> int:
    """Write records (already sorted by key) atomically; return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with open(temp, "wb") as out:
        for record in records:
            out.write(canonical_json({"key": record.key, **record.to_json()}) + b"\n")
            count += 1
    os.replace(temp, path)
    return count


def read_manifest(path: Path) -> Iterator[Record]:
    """Stream the records of a manifest, in key order."""
    with open(path, encoding="utf-8") as lines:
        yield from parse_records(lines)


def parse_records(lines: Iterable[str]) -> Iterator[Record]:
    """Records from manifest lines (a file, or a stream fetched from a git revision)."""
    for line in lines:
        if line.strip():
            entry = parse_json(line)
            yield Record.from_json(entry["key"], entry)
