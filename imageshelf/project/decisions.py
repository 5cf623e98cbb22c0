"""A person's decisions about the data, written as the files the pipeline already reads,
so that each is a change `git diff` shows, `dvc repro` applies and `git checkout` undoes:

- an image's fields (a label, any field, its split, its objects): its row in
  `data/annotations/viewer.jsonl`, a JSON Lines table as Hugging Face's imagefolder
  reads it (`file_name`: the store key; a file at the top of data/annotations/ speaks
  of every key). Pack sets those fields over everything the image arrived with; a
  null removes the field (docs/PIPELINE.md, "Metadata and annotations"). One row per
  image, rows in key order, so two decisions about one image are one line of diff.
- an image dropped from the next version: its key in `data/remove.txt`.
- a finding reviewed ("not a problem"): a line of `data/reviewed.jsonl`, which the
  audit reads (quality/reviewed.py).

Each change takes a lock on the file's folder (flock: two viewers of one project wait
for each other, neither loses the other's rows), reads the file, changes it and writes
it whole beside it, then `os.replace`s it. A value that would not come back the same
through the file, or a field the store owns, is refused with the reason, and nothing
is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..base.atomic import write_text
from ..base.userfile import read_regular_file_within
from ..errors import ShelfError

VIEWER_TABLE = "viewer.jsonl"  # in data/annotations/: the rows the viewer owns
# The store's own fields: a record's key, its bytes' facts. Never set from a table.
STORE_FIELDS = frozenset({"file_name", "key", "format", "width", "height", "size", "sha256"})
MOST_TEXT = 1000  # characters of a text value
MOST_NAME = 64  # characters of a field's name
MOST_FILE = 256 << 20  # bytes of a decisions file read
INT64 = 1 << 63  # a whole number within 64 bits: what every reader (DuckDB's too) holds


class DecisionError(ShelfError):
    """A decision that cannot be written as asked: the reason, in one line."""


def set_fields(table: Path, key: str, fields: Mapping[str, Any]) -> None:
    """Set `fields` of the image `key` in the viewer's table (a value None: the field
    is removed from the image, whoever set it)."""
    set_rows(table, {key: fields})


def set_rows(table: Path, changes: Mapping[str, Mapping[str, Any]]) -> None:
    """Set fields of several images at once: {key: fields}, one write."""
    for fields in changes.values():
        for name, value in fields.items():
            check_field(name, value)
    with _locked(table.parent):
        rows = _rows(table)
        for key, fields in changes.items():
            rows[key] = {**rows.get(key, {}), **fields}
        write_text(table, "".join(_line(k, rows[k]) for k in sorted(rows)))


def drop(remove_list: Path, keys: Iterable[str]) -> list[str]:
    """Add `keys` to the removal list (those not there already); the keys added."""
    with _locked(remove_list.parent):
        text = read_text(remove_list)
        listed = set(_removal_keys(text))
        added = [key for key in dict.fromkeys(keys) if key not in listed]
        if added:
            start = text if not text or text.endswith("\n") else text + "\n"
            write_text(remove_list, start + "".join(removal_line(k) + "\n" for k in added))
        return added


def review(reviewed: Path, kind: str, keys: list[str], note: str | None = None) -> None:
    """Add a finding set aside as reviewed: `kind` (an issue type, a duplicate group
    or a leak) of `keys`."""
    decision: dict[str, Any] = {"kind": kind, "keys": keys}
    if note:
        check_field("note", note)
        decision["note"] = note
    with _locked(reviewed.parent):
        text = read_text(reviewed)
        start = text if not text or text.endswith("\n") else text + "\n"
        write_text(reviewed, start + json.dumps(decision, ensure_ascii=False) + "\n")


def check_field(name: str, value: Any) -> None:
    """Refuse a field a table cannot carry back as it was written."""
    if not name or len(name) > MOST_NAME or not name.isprintable() or name != name.strip():
        raise DecisionError(f"{name!r} cannot be a field's name (1 to 64 printable characters)")
    if name in STORE_FIELDS:
        raise DecisionError(f"{name!r} is the store's own field: it cannot be set")
    if isinstance(value, str):
        if not value.isprintable() or len(value) > MOST_TEXT:
            raise DecisionError(
                f"{name}: a text value is one line of at most {MOST_TEXT} printable "
                "characters (no newline or tab)"
            )
        if value != value.strip():
            raise DecisionError(f"{name}: spaces around a value are dropped by the tables")
        return
    if type(value) is int and not -INT64 <= value < INT64:
        raise DecisionError(f"{name}: a whole number past 64 bits, which readers take as inf")
    try:
        again = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise DecisionError(f"{name}: not a value JSON can hold") from None
    if again != value or type(again) is not type(value):
        raise DecisionError(f"{name}: would not read back as it was written")


def removal_line(key: str) -> str:
    """A key as data/remove.txt holds it: as it is, or a JSON string where a plain line
    would read differently (a # or a space at either end, a control character)."""
    plain = key.isprintable() and key == key.strip() and not key.startswith(("#", '"'))
    return key if plain else json.dumps(key, ensure_ascii=False)


def _removal_keys(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            try:
                line = json.loads(line)
            except ValueError:
                continue  # pack names such a line when it reads the file
        yield line


def read_text(path: Path) -> str:
    """A decisions file's text ("" where there is none yet). A pipe, a device or a
    folder in its place, a file past MOST_FILE or one that is not UTF-8 is a
    DecisionError naming it: never waited on, never written over."""
    try:
        data, size = read_regular_file_within(path, MOST_FILE)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise DecisionError(f"{path}: {exc.strerror or exc}; put back the file") from None
    if data is None:
        raise DecisionError(f"{path}: {size:,} bytes, more than a decisions file holds")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecisionError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def pending_row(table: Path, key: str) -> dict[str, Any]:
    """The fields the table sets for `key` ({} where it sets none, or cannot be read:
    the next change to it names what is wrong)."""
    try:
        return _rows(table).get(key, {})
    except DecisionError:
        return {}


def _rows(table: Path) -> dict[str, dict[str, Any]]:
    """The table's rows by key; a line that is not one (edited by hand) stops the
    change, naming it, rather than be lost when the file is written again."""
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(read_text(table).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and isinstance(row.get("file_name"), str)):
            raise DecisionError(
                f"{table}:{number}: not a row with a file_name; fix or remove the line"
            )
        key = row.pop("file_name")
        rows[key] = {**rows.get(key, {}), **row}
    return rows


def _line(key: str, fields: Mapping[str, Any]) -> str:
    row = {"file_name": key, **{name: fields[name] for name in sorted(fields)}}
    return json.dumps(row, ensure_ascii=False) + "\n"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder` (made if missing) while a file in it changes.
    fcntl is imported here: reading (the audit's reviewed file) must not need it."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
