"""What ingest learned of each incoming file, kept in the cache (cache.py) so that the
next run reads, hashes and looks up only what changed.

One entry per file, by its path under the incoming folder: the file's fingerprint when
it was probed (32 bytes, files.Stamp), the content digest of the store part that holds
it as it is (64 hex digits; dashes: not known to be stored), then what the file is
(`Probe.to_json`, in JSON). Fingerprint and part come first, at fixed places, so that the
usual case, a file unchanged and already stored, is told from an entry's first 96 bytes
by two comparisons, without parsing it (`Seen.triage`).

Beside them, for each label table and XML file, the images it gave fields to, with its
fingerprint and whether every row was an image (`REACH`): when such a file changes, is
added or is removed, only those images (then and now) are looked up in the store again,
not every image; while it is unchanged, clean and all its images are stored as they
are, it is not even read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from . import __version__, cache
from .files import Fingerprint, Stamp, stamp
from .store import ImageInfo
from .store.format import is_digest

NAME = "incoming.lmdb"
META = "\0meta"  # the entry for what the others depend on: code version, limits
REACH = "\0reach\0"  # + an annotation file's path: [stamp in hex, images it spoke of, clean]
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

    @classmethod
    def reject(cls, code: str, reason: str) -> Probe:
        return cls(None, code, reason)

    def to_json(self) -> list[Any]:
        if self.info is None:
            return ["reject", self.code, self.reason]
        i = self.info
        found: list[Any] = ["image", i.sha256, i.size, i.format, i.width, i.height]
        if self.classes is not None:
            classes = self.classes if isinstance(self.classes, str) else list(self.classes)
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
        classes = _classes(value[7]) if len(value) > 7 else None
        return cls(ImageInfo(*value[1:6]), said=said, classes=classes)


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


class Seen:
    """The table of entries, for one run. Its entries count only if the table was made
    by this version of the code with the same limits (a probe depends on both);
    otherwise the run starts afresh and `save` rewrites the table."""

    def __init__(self, limits: list[Any]) -> None:
        self.limits = limits
        self._table = cache.Table(NAME)
        meta = self._table.get(META)
        valid = isinstance(meta, dict) and meta.get("version") == __version__
        valid = valid and meta.get("format") == FORMAT
        self.meta: dict[str, Any] | None = meta if valid and meta["params"] == limits else None
        self._annotation_files: dict[str, str] | None = None

    def __enter__(self) -> Seen:
        return self

    def __exit__(self, *exc: object) -> None:
        self._table.close()

    @property
    def files_last(self) -> int:
        """How many files the last run saw."""
        return int((self.meta or {}).get("files", 0))

    def same_annotations(self, notes: list[Any]) -> bool:
        """Whether the annotation files are those of the last run (each [path, fingerprint])."""
        return self.meta is not None and self.meta.get("annotations") == notes

    def triage(
        self,
        stamps: dict[str, Stamp],
        files: list[str],
        parts: set[str],
        touched: Collection[str] = (),
    ) -> tuple[set[str], dict[str, bytes]]:
        """(the files unchanged since they were found stored in one of `parts`, but for
        those a changed annotation file `touched`; the raw entries of the other unchanged
        files). Told from each entry's first 96 bytes: the fingerprint, then the part."""
        known: set[str] = set()
        unchanged: dict[str, bytes] = {}
        if self.meta is None:
            return known, unchanged
        stored = {digest.encode() for digest in parts}
        get = self._table.get_raw
        for rel in files:
            raw = get(rel)
            if raw is None or raw[:32] != stamps[rel]:
                continue  # new or changed: probed again
            if raw[32:96] in stored and rel not in touched:
                known.add(rel)
            else:
                unchanged[rel] = raw
        return known, unchanged

    def entry_raw(self, rel: str) -> bytes | None:
        """The raw entry of one file, as triage reads it; None if there is none."""
        if self.meta is None:
            return None
        return self._table.get_raw(rel)

    def annotation_files(self) -> dict[str, str]:
        """The annotation files of the last run: path -> its stamp in hex."""
        if self._annotation_files is None:
            notes = (self.meta or {}).get("annotations") or []
            self._annotation_files = {rel: stamp for rel, stamp in notes}
        return self._annotation_files

    def reach(self, rel: str, stamp: str) -> tuple[set[str], bool] | None:
        """The images annotation file `rel` gave fields to when its stamp (in hex) was
        `stamp`, and whether it was clean then (every row an image, no note); None if
        that is not recorded."""
        value = self._table.get(REACH + rel)
        if not isinstance(value, list) or len(value) != 3 or value[0] != stamp:
            return None
        return set(value[1]), value[2] is True

    def save(
        self,
        changed: dict[str, Entry],
        notes: list[Any],
        files: int,
        reach: dict[str, tuple[str, list[str], bool]] | None = None,
    ) -> None:
        """Write the changed entries, the reach of the annotation files read anew
        (path -> (fingerprint, images, clean)), and the meta entry if anything changed."""
        meta: dict[str, Any] = {"version": __version__, "format": FORMAT, "params": self.limits}
        meta.update(annotations=notes, files=files)
        if not changed and not reach and self.meta == meta:
            return
        items: dict[str, Any] = {REACH + rel: list(value) for rel, value in (reach or {}).items()}
        items[META] = meta
        raw = {rel: entry.to_bytes() for rel, entry in changed.items()}
        self._table.put_many(items, drop=self.meta is None, raw=raw)


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
