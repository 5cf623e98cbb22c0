"""Ingest: find what arrived in the incoming folder, check it, hash it, read its metadata.

Every file is staged (it goes into the manifest that pack merges), read as annotations
(annotations/: tables, sidecars, COCO, YOLO, VOC, archives), ignored by a pattern of
`annotations.ignore` (listed in the report), or rejected with a reason in the report.
Whether a file is an image is decided by its content. The metadata staged with an image
is what arrived with it; pack merges it into the store and never removes a field for it.
An annotation file that does not parse fails the stage, naming it.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import __version__, cache
from ..annotations import KeyIndex, Limits, read_place
from ..annotations.archives import read_source, unread_archive
from ..atomic import write_json
from ..errors import ShelfError
from ..files import NotRegularFileError, read_head
from ..images import NotAnImageError, describe, prove_decodes, sniff
from ..manifest import write_manifest
from ..params import AnnotationsParams, IngestParams
from ..progress import Progress
from ..store import ImageInfo, ImageStore, InvalidKeyError, Record, StoreError, encode_key
from ..store.format import canonical_json, parse_json, peek_sha256_and_split
from ..walk import Reject, shown, walk


@dataclass
class IngestResult:
    staged: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unused_metadata: list[str] = field(default_factory=list)
    annotation_notes: list[str] = field(default_factory=list)  # read, not kept: why
    annotation_files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    decoder_messages: list[dict[str, str]] = field(default_factory=list)
    scanned: int = 0
    already_stored: int = 0  # images in the incoming folder the store holds as they are

    @property
    def staged_bytes(self) -> int:
        return sum(r.info.size for r in self.staged)

    def summary(self, report: Path) -> str:
        stored = f"{self.already_stored} already in the store, " if self.already_stored else ""
        rejected = f"{len(self.rejects)} rejected" + (f" (see {report})" if self.rejects else "")
        return (
            f"ingest: {len(self.staged)} images staged ({self.staged_bytes / 1e6:,.1f} MB), "
            f"{stored}{rejected}"
        )

    def notes(self, report: Path) -> list[str]:
        """The lines a user should see beside the summary: rejects, ignored files,
        metadata that matched no image."""
        notes = [f"  rejected {r.path}: {r.reason}" for r in self.rejects[:10]]
        if len(self.rejects) > 10:
            notes.append(f"  ... and {len(self.rejects) - 10} more in {report}")
        if self.ignored:
            notes.append(
                f"  {len(self.ignored)} file(s) ignored by annotations.ignore (see {report})"
            )
        if self.decoder_messages:
            notes.append(
                f"  {len(self.decoder_messages)} decoder message(s) while proving images "
                f"decode, first: {self.decoder_messages[0]['path']}: "
                f"{self.decoder_messages[0]['message']} (see {report})"
            )
        if self.unused_metadata:
            notes.append(
                f"  {len(self.unused_metadata)} metadata file(s) or row(s) matched "
                f"no image (see {report})"
            )
        if self.annotation_notes:
            notes.append(
                f"  {len(self.annotation_notes)} note(s) on annotations read but not kept "
                f"as given, first: {self.annotation_notes[0]} (see {report})"
            )
        return notes

    def check_strict(self, params: IngestParams, params_path: Path) -> None:
        """Fail (IngestError) if strict mode is on and any file was rejected."""
        if params.strict and self.rejects:
            raise IngestError(
                f"{len(self.rejects)} file(s) rejected and ingest.strict is true in {params_path}"
            )

    def report(self) -> dict[str, Any]:
        by_code: dict[str, int] = defaultdict(int)
        for reject in self.rejects:
            by_code[reject.code] += 1
        return {
            "scanned": self.scanned,
            "already_stored": self.already_stored,
            "staged": len(self.staged),
            "staged_bytes": self.staged_bytes,
            "rejected": len(self.rejects),
            "rejected_by_reason": dict(sorted(by_code.items())),
            "rejects": [{"path": r.path, "code": r.code, "reason": r.reason} for r in self.rejects],
            "annotation_files": self.annotation_files,
            "unused_metadata": self.unused_metadata,
            "annotation_notes": self.annotation_notes,
            "ignored": self.ignored,
            "decoder_messages": self.decoder_messages,
        }


class IngestError(ShelfError):
    """The incoming folder is missing, or strict mode found files it could not use."""


Probe = tuple[Any, ...]  # ("image", sha256, size, format, width, height) or ("reject", code, why)


class _Prober:
    """What one file is: an image (hash, size, format, width, height) or a reject with
    its reason. Runs in worker processes; depends on the file's bytes alone, so it is
    kept in the cache by the file's fingerprint."""

    def __init__(self, root: str, params: IngestParams) -> None:
        self.root = root
        self.params = params

    def __call__(self, rel: str) -> Probe:
        unread = unread_archive(rel)
        if unread is not None:
            return ("reject", "archive", unread)
        try:
            # A FIFO put here since the walk must not stop the run (files.py).
            data, size = read_source(self.root, rel, self.params.max_file_bytes)
            if data is None:
                reason = f"file is {size:,} bytes, over ingest.max_file_bytes"
                return ("reject", "too_large", reason)
        except NotRegularFileError as exc:
            return ("reject", "not_file", exc.strerror)
        except OSError as exc:
            return ("reject", "unreadable", f"cannot read: {exc.strerror or exc}")
        try:
            info = describe(rel, data, None, self.params.max_pixels).info
            said = (
                prove_decodes(data, self.params.max_pixels)
                if self.params.verify == "decode"
                else []
            )
        except NotAnImageError as exc:
            return ("reject", exc.code, exc.reason)
        except Exception as exc:  # one file never stops the run
            # A decoder's own bug on a crafted file (an OverflowError, a MemoryError):
            # the file is refused with what went wrong, the run goes on.
            why = f"reading it as an image failed: {type(exc).__name__}: {exc}"
            return ("reject", "unreadable_image", why[:300])
        found = ("image", info.sha256, info.size, info.format, info.width, info.height)
        return (*found, said) if said else found


PARALLEL_FROM = 2000  # files; below this a process pool costs more than it saves
PARALLEL_WALK_FROM = 20_000  # files seen last time; below this a walk is quick anyway
CHUNK = 256


def _probe_all(probe: _Prober, files: list[str]) -> Iterator[Probe]:
    """Probe files in order, on every core when there are many.

    The per-file work is mostly Python (header parsing, checks), so threads would queue
    on the GIL: forked processes take chunks of files and send back small tuples.
    """
    cores = os.cpu_count() or 1
    if cores < 2 or len(files) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        yield from map(probe, files)
        return
    global _worker_probe
    _worker_probe = probe  # inherited by the forked workers, never pickled
    try:
        with mp.get_context("fork").Pool(cores) as pool:
            yield from pool.imap(_probe_in_worker, files, chunksize=CHUNK)
    finally:
        _worker_probe = None


_worker_probe: _Prober | None = None


def _probe_in_worker(rel: str) -> Probe:
    assert _worker_probe is not None
    return _worker_probe(rel)


SEEN = "incoming.lmdb"  # in the cache: {path: [*fingerprint, stored part, *probe]}
META = "\0meta"  # its entry for what the rest depends on


def _seen(params: IngestParams) -> tuple[cache.Table, dict[str, Any] | None]:
    """The table of what earlier runs learned of each incoming file, and its meta entry
    if the table was made by this code with these limits (a probe depends on both);
    None otherwise, and the table is to be rewritten."""
    table = cache.Table(SEEN)
    meta = table.get(META)
    if (
        isinstance(meta, dict)
        and meta.get("version") == __version__
        and meta.get("params") == _limits(params)
    ):
        return table, meta
    return table, None


def _limits(params: IngestParams) -> list[Any]:
    return [params.max_pixels, params.max_file_bytes, params.verify]


def ingest(
    incoming: Path,
    params: IngestParams,
    rules: AnnotationsParams | None = None,
    progress: Progress | None = None,
    store: ImageStore | None = None,
) -> IngestResult:
    """Examine everything under `incoming`; return the records to stage (sorted) and
    the rejects. With `store`, an image it already holds as it is (the same bytes and
    every field that arrived with it) is counted, not staged.

    What an earlier run learned is not learned again: a file unchanged since (its
    fingerprint) is not read; one that was already in the store, in a part the store
    still has (parts are named by content), with the annotation files unchanged, is not
    even looked up. `progress`, if given, is reset to the number of files, then updated.
    """
    rules = rules or AnnotationsParams()
    root = str(incoming)
    table, meta = _seen(params)
    # A folder the last run found large is walked on every core (see walk).
    large = meta is not None and meta.get("files", 0) >= PARALLEL_WALK_FROM
    found = walk(root, rules.ignore, jobs=(os.cpu_count() or 1) if large else 1)
    if progress is not None:
        progress.reset(total=len(found.files))
    notes = [[rel, list(found.fingerprints[rel])] for rel in found.annotations]
    parts = {part.content_digest for part in store.parts} if store is not None else set()
    same_notes = meta is not None and meta.get("annotations") == notes
    get = table.get_raw if meta is not None else None
    stored = {f'"{digest}"'.encode() for digest in parts} if same_notes else set()
    # The usual case, a file unchanged and already stored with every annotation file
    # unchanged, is told first, from the cache entry's bytes without parsing them (the
    # entry is JSON, [*fingerprint, stored part, *probe]): its own annotation files
    # (a YOLO label, a sidecar) then need not be read.
    known: set[str] = set()
    unchanged: dict[str, bytes] = {}  # the cache entries of the other unchanged files
    if get is not None:
        for rel in found.files:
            raw = get(rel)
            head = b"[%d,%d,%d,%d," % found.fingerprints[rel]
            if raw is None or not raw.startswith(head):
                continue  # new or changed: probed again
            if raw[len(head) : len(head) + 66] in stored:
                known.add(rel)  # as it was in the store, still there
            else:
                unchanged[rel] = raw
    keys = KeyIndex(found.files)
    limits = Limits(params.max_metadata_bytes, rules.max_file_bytes)
    annotations = read_place(root, found.annotations, keys, limits, settled=known)
    files = sorted([*found.files, *annotations.not_text])  # a PNG named x.txt is an image
    result = IngestResult(
        rejects=list(found.rejects),
        scanned=len(files),
        annotation_files=[shown(f) for f in annotations.files],
        unused_metadata=[shown(u) for u in annotations.unused],
        annotation_notes=[shown(n) for n in annotations.notes],
        ignored=found.ignored,
    )
    result.rejects += _images_ignored(root, found.ignored)
    entries: dict[str, list[Any]] = {}  # what this run knows of each file
    before: dict[str, list[Any]] = {}  # the cache's entries, where still this file's
    candidates, todo = [], []
    for rel in files:
        if rel in known:
            result.already_stored += 1
            continue
        now = found.fingerprints[rel]
        raw = unchanged.get(rel)
        entry = None
        if raw is not None:
            entry = before[rel] = orjson.loads(raw)  # what it was probed as
        if entry is None:
            try:
                encode_key(rel)  # a key in the cache was a valid key then, and now
            except InvalidKeyError as exc:
                code = "key_too_long" if "at most" in str(exc) else "bad_key"
                result.rejects.append(Reject(shown(rel), code, str(exc)))
                continue
        broken = annotations.broken.get(rel)
        if broken is not None:
            result.rejects.append(Reject(shown(rel), "bad_metadata", broken))
            continue
        candidates.append(rel)
        if entry is not None:
            entries[rel] = [*now, None, *entry[5:]]
        else:
            todo.append(rel)
    if progress is not None:
        progress.update(len(files) - len(todo))
    for rel, probe in zip(todo, _probe_all(_Prober(root, params), todo), strict=True):
        entries[rel] = [*found.fingerprints[rel], None, *probe]
        if progress is not None:
            progress.update()
    limit = params.max_metadata_bytes
    staged = []
    for rel in candidates:
        what = entries[rel][5:]
        if what[0] == "reject":
            result.rejects.append(Reject(shown(rel), what[1], what[2]))
            continue
        info = ImageInfo(*what[1:6])
        if len(what) > 6:  # what the decoders said while proving it: for the report
            result.decoder_messages += [{"path": shown(rel), "message": m} for m in what[6]]
        metadata = annotations.for_image(rel, info.width, info.height)
        if metadata and len(canonical_json(metadata)) > limit:
            result.rejects.append(
                Reject(
                    shown(rel),
                    "bad_metadata",
                    f"metadata is over {limit:,} bytes (ingest.max_metadata_bytes)",
                )
            )
            continue
        staged.append(Record(rel, info, metadata))
    if store is not None:
        for key, part in stored_already(store, staged).items():
            entries[key][4] = part
            result.already_stored += 1
    result.staged = sorted(
        (r for r in staged if entries[r.key][4] is None), key=lambda r: r.key.encode("utf-8")
    )
    result.rejects.sort(key=lambda r: r.path)
    changed: dict[str, Any] = {
        rel: entries[rel] for rel in candidates if before.get(rel) != entries[rel]
    }
    if changed or not same_notes or (meta or {}).get("files") != len(found.files):
        changed[META] = {
            "version": __version__,
            "params": _limits(params),
            "annotations": notes,
            "files": len(found.files),
        }
        table.put_many(changed, drop=meta is None)
    table.close()
    return result


def _images_ignored(root: str, ignored: list[str]) -> list[Reject]:
    """Ignored files that are images by their content (a photo saved as `Thumbs.db`, a
    folder of images called `__MACOSX`): never stored silently, so each is a reject
    that says how to keep it."""
    keep = "annotations.ignore in params.yaml: rename it, or narrow the pattern"
    out = []
    for rel in ignored:
        path = os.path.join(root, rel)
        if os.path.isdir(path):
            holds = _holds_images(path)
            if holds:
                why = f"a folder holding images ({holds}, ...) whose name matches {keep}"
                out.append(Reject(rel, "ignored_image", why))
        elif sniff(read_head(path)) is not None:
            why = f"an image by its content, but its name matches {keep}"
            out.append(Reject(rel, "ignored_image", why))
    return out


def _holds_images(folder: str, limit: int = 1000) -> str | None:
    """The name of an image somewhere under `folder` (looking at most `limit` files)."""
    names = ((here, name) for here, _dirs, files in os.walk(folder) for name in files)
    for here, name in itertools.islice(names, limit):
        if sniff(read_head(os.path.join(here, name))) is not None:
            return name
    return None


def note_stored(parts: dict[str, str]) -> None:
    """Tell the cache where pack stored staged images ({key: part content digest}), so
    the next ingest need not look them up. Only entries the cache has are noted: their
    bytes are the ones pack checked against the manifest's hash."""
    with cache.Table(SEEN) as table:
        changed = {}
        for key, digest in parts.items():
            entry = table.get(key)
            if isinstance(entry, list) and len(entry) > 5 and entry[4] != digest:
                entry[4] = digest
                changed[key] = entry
        if changed:
            table.put_many(changed)


def stored_already(store: ImageStore, staged: list[Record]) -> dict[str, str]:
    """The keys whose staging would change nothing, each with the content digest of the
    part holding it: the store has the same bytes and every field that arrived with
    them, at the same value (a field data/annotations owns is not the arrival's to
    decide). Looks up records, reads no image bytes."""
    same = {}
    wanted = {record.key: record for record in staged}
    for key, raw, part in store.raw_records_of(wanted):
        record = wanted[key]
        if peek_sha256_and_split(raw)[0] != record.info.sha256:
            continue
        if record.metadata:
            stored = parse_json(raw)
            metadata, owned = stored.get("meta") or {}, set(stored.get("annotated") or ())
            if any(
                name not in owned and metadata.get(name, _MISSING) != value
                for name, value in record.metadata.items()
            ):
                continue
        same[key] = part.content_digest
    return same


_MISSING = object()


def run(
    incoming: Path,
    manifest: Path,
    report: Path,
    params: IngestParams,
    rules: AnnotationsParams | None = None,
    progress: Progress | None = None,
    store: Path | None = None,
) -> IngestResult:
    """The ingest stage: examine the incoming folder, and stage (write to the manifest)
    every image whose packing would change the store at `store`: new, different, or
    arriving with metadata the store lacks. Writes the report. The manifest is left
    untouched when its content would be the same, so DVC sees no change downstream.
    Strict mode (`ingest.strict`) is the caller's to enforce, after it has told the user
    what was rejected: `result.check_strict()`."""
    if not incoming.is_dir():
        raise IngestError(f"{incoming}: no such folder; new images go there")
    stored = ImageStore(store) if store is not None and store.exists() else None
    try:
        if stored is not None:
            len(stored)
    except StoreError:
        stored = None  # a store that cannot be read: pack reports it
    try:
        result = ingest(incoming, params, rules, progress, stored)
    finally:
        if stored is not None:
            stored.close()
    write_manifest(manifest, result.staged)
    write_json(report, result.report())
    return result
