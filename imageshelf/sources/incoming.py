"""What ingest knows of the incoming folder from its last run, and when that still holds:
the key of its cache table (state/seen.py: one entry per file) and every rule that makes an
entry, or what it says, no longer count. Ingest asks; the rules are here, and only here.

- The table counts only if this code version, with the same `FORMAT` of entries and the
  same limits (`ingest.max_pixels`, `max_file_bytes`, `verify`: a probe depends on all
  of them), made it (`KEY`); otherwise the run starts afresh and `save` rewrites it.
- A file is unchanged while its fingerprint (files.Stamp) is the one its entry holds;
  it is known as stored, not even looked up, while the store part the entry names is
  still one of the store's (parts are named by content) and no change below reaches it.
- An annotation file that is new, changed or gone since the last run reaches some
  images, then and now (annotations/reach.py); only those are looked up in the store
  again:
    - `Own`: that one image;
    - `Rows`: the images its rows named when a run last read it (kept beside the
      entries with its fingerprint: `REACH`) and those they name now (read alone first);
    - `Below`: the images under the folders it reached when a run last read it (kept
      likewise: `BELOW`) and under those it reaches now;
    - `Everything`: every image; so does a file whose reach then was not kept.
  So does a change of the settings that change what annotation files give
  (`annotations.mask_classes`, `annotations.image_column`): every image.
- An image and its paired images (masks...) are known only together, and only while
  they are paired as the last run found them (`PAIRS`): a mask whose dataset's layout
  no longer pairs it is an image of its own, not stored yet (`settle_pairs`).
- A table or XML file unchanged since a run that read it and found every row an image,
  all of those images known as stored, is not read again (`settled_files`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

import orjson

from .. import __version__
from ..annotations import (
    Annotations,
    Below,
    Everything,
    KeyIndex,
    Own,
    Reader,
    gives_meaning,
    gives_rows,
    own_reach,
    reach,
)
from ..annotations.pairs import Pairs
from ..base.userfile import Stamp
from ..errors import ShelfError
from ..project.params import AnnotationsParams, IngestParams
from ..state import cache
from ..state.seen import BELOW, FORMAT, META, NAME, PAIRS, REACH, Entry
from .walk import Found

# The images a changed annotation file reached; None: any image (nothing is known).
Touched = set[str] | None


class IncomingState:
    """What the last run learned, for this run: which files are `known` (unchanged and
    stored as they are) and the entries of the other `unchanged` ones (`look`)."""

    def __init__(self, params: IngestParams, rules: AnnotationsParams) -> None:
        self.key = {
            "version": __version__,
            "format": FORMAT,
            "params": [params.max_pixels, params.max_file_bytes, params.verify],
        }
        self.settings = {
            "mask_classes": list(rules.mask_classes),
            "image_column": rules.image_column,
        }
        self._table = cache.Table(NAME)
        meta = self._table.get(META)
        valid = isinstance(meta, dict) and all(meta.get(k) == v for k, v in self.key.items())
        self.meta: dict[str, Any] | None = meta if valid else None
        self.known: set[str] = set()  # unchanged, and stored in a part the store has
        self.unchanged: dict[str, bytes] = {}  # the raw entries of the other unchanged files
        self.stamps: dict[str, str] = {}  # each annotation file's fingerprint now, in hex
        self._notes: list[list[str]] = []  # the same, as the meta entry keeps them
        self.same_annotations = False  # the annotation files and settings of the last run
        self._rows: list[str] = []  # the annotation files that reach the images they name
        self._changed: list[str] = []  # those new or changed since the last run
        self._below: dict[str, Below | Everything] = {}  # what those reach, as read now
        self._before: dict[str, str] | None = None
        self._read: Reader | None = None  # how files of the place are read (look)
        self._pairs: dict[str, list[str]] = {}  # paired file -> [its image, its role], now
        self._then: dict[str, list[str]] | None = None  # the same, of the last run
        self._keys = KeyIndex(())

    def __enter__(self) -> IncomingState:
        return self

    def __exit__(self, *exc: object) -> None:
        self._table.close()

    @property
    def files_last(self) -> int:
        """How many files the last run saw."""
        return int((self.meta or {}).get("files", 0))

    def look(
        self,
        found: Found,
        keys: KeyIndex,
        parts: Collection[str],
        read: Reader,
        read_alone: Callable[[list[str]], Annotations],
    ) -> None:
        """Tell which of the files `found` now are `known` as stored in one of `parts`
        (the store's), and keep the entries of the other unchanged ones. `read` reads a
        file of the place, `read_alone` reads some annotation files by themselves (what
        the tables that changed name now)."""
        self.stamps = {rel: found.stamps[rel].hex() for rel in found.annotations}
        self._notes = [[rel, stamp] for rel, stamp in self.stamps.items()]
        meta = self.meta
        self.same_annotations = (
            meta is not None
            and meta.get("annotations") == self._notes
            and meta.get("settings") == self.settings
        )
        self._rows = [rel for rel in found.annotations if gives_rows(rel)]
        before = self._annotation_files()
        self._changed = [rel for rel, stamp in self.stamps.items() if before.get(rel) != stamp]
        self._read, self._keys = read, keys
        touched: set[str] = set()
        if not self.same_annotations:
            reached = self._touched(keys, read, read_alone)
            if reached is None:  # any image: each is looked up
                parts = ()
            touched = reached or set()
        self._triage(found.stamps, found.files, set(parts), touched)

    def _annotation_files(self) -> dict[str, str]:
        """The annotation files of the last run: path -> its fingerprint in hex."""
        if self._before is None:
            notes = (self.meta or {}).get("annotations") or []
            self._before = {rel: stamp for rel, stamp in notes}
        return self._before

    def _touched(
        self, keys: KeyIndex, read: Reader, read_alone: Callable[[list[str]], Annotations]
    ) -> Touched:
        """The images the annotation files new, changed or gone since the last run reach,
        then or now; None if that cannot be bounded (see the module's docstring)."""
        if self.meta is None or self.meta.get("settings") != self.settings:
            return None  # a first run, or masks of any dataset, any table
        before, now = self._annotation_files(), self.stamps
        touched: set[str] = set()
        fresh = []
        gone = [rel for rel in before if rel not in now]
        for rel in sorted([*self._changed, *gone]):
            if rel in before:
                then = self._reached_then(rel, before[rel], keys)
                if then is None:
                    return None
                touched |= then
            if rel not in now:
                continue
            found = reach(rel, read, keys)
            if isinstance(found, Everything):
                return None
            if isinstance(found, Own):
                touched.add(found.key)
            elif isinstance(found, Below):
                self._below[rel] = found
                for prefix in found.prefixes:
                    touched.update(keys.under(prefix))
            else:  # Rows: those it names now, below
                fresh.append(rel)
        try:  # what the new versions name: read alone (and again with the rest)
            alone = read_alone(fresh)
        except ShelfError:
            return None  # the whole read says what is wrong with it
        for rel in fresh:
            touched |= alone.keys_by_file.get(rel, set())
        return touched

    def _reached_then(self, rel: str, stamp: str, keys: KeyIndex) -> set[str] | None:
        """The images annotation file `rel` reached when its fingerprint (in hex) was
        `stamp`: its own image, or what was kept of it; None if nothing was."""
        own = own_reach(rel, keys)
        if own is not None:
            return {own.key}
        rows = self._rows_then(rel, stamp)
        if rows is not None:
            return rows[0]
        value = self._table.get(BELOW + rel)
        if not isinstance(value, list) or len(value) != 2 or value[0] != stamp:
            return None
        return {key for prefix in value[1] for key in keys.under(prefix)}

    def _rows_then(self, rel: str, stamp: str) -> tuple[set[str], bool] | None:
        """The images annotation file `rel` gave fields to when its fingerprint (in hex)
        was `stamp`, and whether it was clean then (every row an image, no note); None
        if that is not kept."""
        value = self._table.get(REACH + rel)
        if not isinstance(value, list) or len(value) != 3 or value[0] != stamp:
            return None
        return set(value[1]), value[2] is True

    def _triage(
        self, stamps: dict[str, Stamp], files: list[str], parts: set[str], touched: set[str]
    ) -> None:
        """`known`: the files unchanged since they were found stored in one of `parts`,
        but those `touched`; `unchanged`: the raw entries of the other unchanged files.
        Told from each entry's first 96 bytes: the fingerprint, then the part."""
        self.known, self.unchanged = set(), {}
        if self.meta is None:
            return
        stored = {digest.encode() for digest in parts}
        get = self._table.get_raw
        for rel in files:
            raw = get(rel)
            if raw is None or raw[:32] != stamps[rel]:
                continue  # new or changed: probed again
            if raw[32:96] in stored and rel not in touched:
                self.known.add(rel)
            else:
                self.unchanged[rel] = raw

    def settle_pairs(self, pairs: Pairs) -> None:
        """An image and its paired images are known only together: if one of them is new
        or changed, or they are not paired as they were (a mask whose image is gone is
        an image of its own), all of them are looked at again (the record holds them
        all; a paired file is stored in its image's)."""
        now = {
            file: [image, role]
            for image, roles in pairs.of_image.items()
            for role, file in roles.items()
        }
        self._pairs = now
        then = self._pairs_then()
        if then != now:
            for file in then.keys() | now.keys():
                was, is_ = then.get(file), now.get(file)
                if was != is_:  # its image then and now too
                    self._look_again([file, *(pair[0] for pair in (was, is_) if pair)])
        for image, roles in pairs.of_image.items():
            group = [image, *roles.values()]
            if not all(rel in self.known for rel in group):
                self._look_again(group)

    def _look_again(self, files: list[str]) -> None:
        """Those of `files` that are known: unknown, with their entries kept."""
        for rel in files:
            if rel in self.known:
                self.known.discard(rel)
                raw = self._table.get_raw(rel)
                if raw is not None:
                    self.unchanged[rel] = raw

    def _pairs_then(self) -> dict[str, list[str]]:
        """The paired files of the last run: file -> [its image, its role]. Read only
        when they differ from now's (their digest is in the meta entry)."""
        if self.meta is None or not self.known:
            return self._pairs  # nothing is known: nothing to look at again
        if self.meta.get("pairs") == _digest(self._pairs):
            return self._pairs
        if self._then is None:
            value = self._table.get(PAIRS)
            self._then = value if isinstance(value, dict) else None
        return self._then if self._then is not None else {}

    def settled_files(self) -> list[str]:
        """The tables and XML files unchanged since a run that read them and found every
        row an image, all of those images now known as stored: not read again."""
        if self.meta is None:
            return []
        before, settled = self._annotation_files(), []
        for rel in self._rows:
            stamp = self.stamps[rel]
            if before.get(rel) == stamp:
                recorded = self._rows_then(rel, stamp)
                if recorded is not None and recorded[1] and recorded[0] <= self.known:
                    settled.append(rel)
        return settled

    def save(self, changed: dict[str, Entry], files: int, annotations: Annotations) -> None:
        """Write the `changed` entries, what the tables and XML files read anew named
        (`annotations`), and the meta entry if anything changed."""
        meta: dict[str, Any] = {**self.key, "settings": self.settings}
        meta.update(annotations=self._notes, files=files, pairs=_digest(self._pairs))
        rows, below = self._rows_now(annotations), self._below_now()
        if not changed and not rows and not below and self.meta == meta:
            return
        items: dict[str, Any] = {REACH + rel: list(value) for rel, value in rows.items()}
        items.update((BELOW + rel, list(value)) for rel, value in below.items())
        if self.meta is None or self.meta.get("pairs") != meta["pairs"]:
            items[PAIRS] = self._pairs
        items[META] = meta
        raw = {rel: entry.to_bytes() for rel, entry in changed.items()}
        self._table.put_many(items, drop=self.meta is None, raw=raw)

    def _rows_now(self, annotations: Annotations) -> dict[str, tuple[str, list[str], bool]]:
        """The images each table or XML file gave fields to, for those not kept as they
        are now: what a change to one of them can reach, next time."""
        if self.same_annotations:
            return {}
        before = self._annotation_files()
        out: dict[str, tuple[str, list[str], bool]] = {}
        for rel in self._rows:
            stamp = self.stamps[rel]
            if before.get(rel) != stamp or self._rows_then(rel, stamp) is None:
                named = sorted(annotations.keys_by_file.get(rel, ()))
                out[rel] = (stamp, named, rel not in annotations.dirty)
        return out

    def _below_now(self) -> dict[str, tuple[str, list[str]]]:
        """The folders each file that gives meaning to others, new or changed, reaches
        now (one that reaches everything is not kept: a change to it still does)."""
        if self.same_annotations or self._read is None:
            return {}
        out: dict[str, tuple[str, list[str]]] = {}
        for rel in self._changed:
            if gives_meaning(rel):
                found = self._below.get(rel) or reach(rel, self._read, self._keys)
                if isinstance(found, Below):
                    out[rel] = (self.stamps[rel], list(found.prefixes))
        return out


def _digest(pairs: dict[str, list[str]]) -> str:
    return hashlib.sha256(orjson.dumps(pairs, option=orjson.OPT_SORT_KEYS)).hexdigest()
