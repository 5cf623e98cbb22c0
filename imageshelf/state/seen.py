"""What ingest learned of each incoming file, kept in the cache (cache.py) so that the
next run reads, hashes and looks up only what changed.

One entry per file, by its path under the incoming folder: the file's fingerprint when
it was probed (32 bytes, files.Stamp), the content digest of the store part that holds
it as it is (64 hex digits; dashes: not known to be stored), then what the file is
(`Probe.to_json`, in JSON). Fingerprint and part come first, at fixed places, so that the
usual case, a file unchanged and already stored, is told from an entry's first 96 bytes
by two comparisons, without parsing it (`incoming.IncomingState`).

Beside them, for each label table and XML file, the images it gave fields to, with its
fingerprint and whether every row was an image (`REACH`); for each file that gives
meaning to others (YOLO's data.yaml and class names, a dataset's class names), the
folders it reached, with its fingerprint (`BELOW`); the paired files of the last run, by
image and role (`PAIRS`); and the meta entry: what the entries depend on (code version,
FORMAT, limits, settings) and the annotation files of the last run. When an entry, or
what it says, still counts is sources/incoming.py's to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from ..base.userfile import Fingerprint, Stamp, stamp
from ..store import ImageInfo
from ..store.format import is_digest
from . import cache

NAME = "incoming.lmdb"
META = "\0meta"  # the entry for what the others depend on: code version, limits
REACH = "\0reach\0"  # + an annotation file's path: [stamp in hex, images it spoke of, clean]
BELOW = "\0below\0"  # + a file that gives meaning to others: [stamp in hex, folders it reached]
PAIRS = "\0pairs"  # the paired files of the last run: {file: [its image, its role]}
FORMAT = 2  # of the entries: a table in another is started afresh
PART = slice(32, 96)  # where an entry's part is
NO_PART = b"-" * 64


class Probe(NamedTuple):
    """What one file is: an image (its info, what the decoders said while proving it
    decodes and, for a class-id mask, the values its pixels take or why it has none:
    annotations/classes.py), or a reject with its code and reason. (A named tuple, not a
    frozen dataclass: one is made per incoming file, and that is 4x faster.)"""

    info: ImageInfo | None
    code: str = ""
    reason: str = ""
    said: tuple[str, ...] = ()
    classes: tuple[int, ...] | tuple[str, ...] | str | None = None  # None: not looked at
    props: dict[str, Any] | None = None  # what its pixels measure (images/properties.py)

    @classmethod
    def reject(cls, code: str, reason: str) -> Probe:
        return cls(None, code, reason)

    def to_json(self) -> list[Any]:
        if self.info is None:
            return ["reject", self.code, self.reason]
        i = self.info
        found: list[Any] = ["image", i.sha256, i.size, i.format, i.width, i.height]
        classes = self.classes if isinstance(self.classes, str | None) else list(self.classes)
        if self.props is not None:
            return [*found, list(self.said), classes, self.props]
        if classes is not None:
            return [*found, list(self.said), classes]
        return [*found, list(self.said)] if self.said else found

    @classmethod
    def from_json(cls, value: list[Any]) -> Probe:
        """The probe of `to_json`; ValueError for anything else (a damaged entry)."""
        if value[0] == "reject" and all(isinstance(v, str) for v in value[1:3]):
            return cls.reject(value[1], value[2])
        sha256, size, format, width, height = value[1:6]
        if not (value[0] == "image" and is_digest(sha256) and isinstance(format, str)):
            raise ValueError("not a probe")
        if not all(type(n) is int and n >= 0 for n in (size, width, height)):
            raise ValueError("not a probe")
        said = tuple(value[6]) if len(value) > 6 else ()
        classes = _classes(value[7]) if len(value) > 7 and value[7] is not None else None
        props = value[8] if len(value) > 8 else None
        if props is not None and not isinstance(props, dict):
            raise ValueError("not a probe")
        return cls(ImageInfo(*value[1:6]), said=said, classes=classes, props=props)


def _classes(value: Any) -> tuple[int, ...] | tuple[str, ...] | str:
    """A probe's classes as to_json wrote them: a sentence, or a list of ids or colours."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(type(v) is int for v in value):
        return tuple(value)
    if isinstance(value, list) and all(type(v) is str for v in value):
        return tuple(value)
    raise ValueError("not a probe")


@dataclass(slots=True)
class Entry:
    """What is known of one incoming file (see the module's docstring)."""

    stamp: Stamp
    probe: Probe
    part: str | None = None  # the content digest of the store part holding it as it is

    def to_bytes(self) -> bytes:
        part = self.part.encode() if self.part is not None else NO_PART
        if len(part) != 64:  # a content digest is a SHA-256 in hex: anything else, unknown
            part = NO_PART
        return self.stamp + part + orjson.dumps(self.probe.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Entry:
        part = raw[PART]
        digest = part.decode("ascii") if part != NO_PART else None
        return cls(raw[:32], Probe.from_json(orjson.loads(raw[96:])), digest)


def note_stored(parts: dict[str, str], carried: tuple[str, dict[str, str]] | None = None) -> None:
    """Tell the table where pack stored staged images ({key: part content digest}), so
    the next ingest need not look them up. Only entries the table has are noted: their
    bytes are the ones pack checked against the manifest's hash.

    carried: (a part pack rewrote, {file: the part now holding its record as it was}):
    of those files, the entries that named the rewritten part name the new one (an entry
    that named another part, or none, did not know the file stored as it is)."""
    with cache.Table(NAME) as table:
        changed = {}
        moves = [(parts, None)] + ([(carried[1], carried[0].encode())] if carried else [])
        for files, only_from in moves:
            for key, digest in files.items():
                raw = table.get_raw(key)
                part = digest.encode()
                if raw is None or len(raw) <= 96 or raw[PART] == part or len(part) != 64:
                    continue
                if only_from is None or raw[PART] == only_from:
                    changed[key] = raw[:32] + part + raw[96:]
        if changed:
            table.put_many({}, raw=changed)


class Probed:
    """Read-only: the hash ingest took of each incoming file, while the file is as it
    was then (validate's proof that a source file still holds the staged bytes)."""

    def __init__(self) -> None:
        self._table = cache.Table(NAME)

    def __enter__(self) -> Probed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._table.close()

    def sha256(self, rel: str, now: Fingerprint) -> str | None:
        """The SHA-256 ingest found in `rel`, if its fingerprint is still `now`."""
        raw = self._table.get_raw(rel)
        if raw is None or raw[:32] != stamp(now):
            return None
        if raw[96:106] == b'["image","' and raw[170:171] == b'"':  # as Probe.to_json writes
            return raw[106:170].decode("ascii", "replace")
        try:  # ["image", sha256, ...] (Probe.to_json)
            value = orjson.loads(raw[96:])
        except orjson.JSONDecodeError:
            return None  # a damaged entry proves nothing
        if len(value) > 1 and value[0] == "image" and isinstance(value[1], str):
            return value[1]
        return None


def parse(raw: bytes) -> Entry | None:
    """The entry in `raw`; None for one damaged (the cache is ours, but a disk can lose
    it): that file is probed again, as if it were new."""
    try:
        return Entry.from_bytes(raw)
    except (ValueError, TypeError, IndexError, KeyError):  # bad JSON, text, shape
        return None
