"""Ingest: find what arrived in the incoming folder, check it, hash it, read its metadata.

Every file is staged (it goes into the manifest that pack merges), read as annotations
(annotations/: tables, sidecars, COCO, Label Studio, YOLO, VOC, CVAT, LabelMe, FiftyOne,
archives), ignored by a pattern of `annotations.ignore` (listed in the report), or
rejected with a reason in the report. An image may also come from inside an annotation
file: a LabelMe JSON's imageData, where no image file is beside it.
Whether a file is an image is decided by its content. The metadata staged with an image
is what arrived with it; pack merges it into the store and never removes a field for it.
An annotation file that does not parse fails the stage, naming it.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..annotations import Annotations, KeyIndex, Limits, place_reader, read_place
from ..annotations.archives import read_source, unread_archive
from ..annotations.classes import CLASS_ROLES, MaskClasses, mask_values
from ..annotations.folders import split_of_name
from ..annotations.paired import find_pairs
from ..annotations.pairs import Pairs
from ..base.atomic import write_json
from ..base.progress import Progress
from ..base.userfile import NotRegularFileError, open_regular, read_head, read_regular_file
from ..errors import ShelfError
from ..images.properties import PROPS_VERSION, properties
from ..images.recognise import NotAnImageError, describe, prove_decodes, sniff
from ..project.params import AnnotationsParams, IngestParams
from ..records.manifest import write_manifest
from ..sources.incoming import IncomingState
from ..sources.walk import Found, Reject, shown, walk
from ..state.seen import Entry, Probe
from ..state.seen import parse as parse_entry
from ..store import ImageStore, InvalidKeyError, Record, StoreError, encode_key
from ..store.format import canonical_json, parse_json, peek_sha256_and_split
from ..store.values import Paired
from .result import StageResult


@dataclass
class IngestResult(StageResult):
    staged: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unused_metadata: list[str] = field(default_factory=list)
    annotation_notes: list[str] = field(default_factory=list)  # read, not kept: why
    annotation_files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    decoder_messages: list[dict[str, str]] = field(default_factory=list)
    own_splits: dict[str, list[str]] = field(default_factory=dict)  # dataset -> split folders
    scanned: int = 0
    already_stored: int = 0  # images in the incoming folder the store holds as they are
    paired: int = 0  # images here that annotate another (masks...), staged or stored with it
    looked_up: int = 0  # images whose records were looked up in the store: not known as is
    # Nothing new since the last run, whose staged images are packed: how many it
    # staged. Its manifest and report are left as they are.
    packed_since: int | None = None
    report_path: Path | None = None  # set by run()
    strict: bool = False  # ingest.strict: any reject fails the stage
    params_path: Path = Path("params.yaml")  # where ingest.strict was set: for the message

    @property
    def staged_bytes(self) -> int:
        return sum(r.stored_bytes for r in self.staged)

    def summary(self) -> str:
        report = self.report_path
        stored = f"{self.already_stored} already in the store, " if self.already_stored else ""
        rejected = f"{len(self.rejects)} rejected" + (f" (see {report})" if self.rejects else "")
        with_them = sum(len(record.paired) for record in self.staged)
        paired = f" with {with_them} paired images (masks...)" if with_them else ""
        return (
            f"ingest: {len(self.staged)} images staged{paired} "
            f"({self.staged_bytes / 1e6:,.1f} MB), {stored}{rejected}"
        )

    def notes(self) -> list[str]:
        """The lines a user should see beside the summary: rejects, ignored files,
        metadata that matched no image."""
        report = self.report_path
        notes = [f"  rejected {r.path}: {r.reason}" for r in self.rejects[:10]]
        if self.packed_since:
            notes.append(
                f"  nothing new since the last run, whose {self.packed_since} staged "
                f"image(s) are packed: {report} stays that run's"
            )
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
        for top, folders in self.own_splits.items():
            notes.append(
                f"  {shown(top)}/ has splits of its own ({', '.join(map(shown, folders))}), "
                "but annotations.split_from_folder is false: its images are split by a hash "
                "of their keys, so a test image may land in train. Set it true in "
                "params.yaml to keep them."
            )
        return notes

    def check(self) -> None:
        """Fail (IngestError) if strict mode is on and any file was rejected."""
        if self.strict and self.rejects:
            raise IngestError(
                f"{len(self.rejects)} file(s) rejected and ingest.strict is true in "
                f"{self.params_path}"
            )

    def report(self) -> dict[str, Any]:
        by_code: dict[str, int] = defaultdict(int)
        for reject in self.rejects:
            by_code[reject.code] += 1
        return {
            "scanned": self.scanned,
            "already_stored": self.already_stored,
            "paired": self.paired,
            "looked_up": self.looked_up,
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
            "own_splits_not_kept": self.own_splits,
        }


class IngestError(ShelfError):
    """The incoming folder is missing, or strict mode found files it could not use."""


class _Prober:
    """What one file is (a Probe). Runs in worker processes; depends on the file's bytes
    alone, so it is kept in the cache by the file's fingerprint."""

    def __init__(
        self,
        root: str,
        params: IngestParams,
        masks: Collection[str] = (),
        paired: Collection[str] = (),
    ) -> None:
        self.root = root
        self.params = params
        self.masks = masks  # class-id masks: the values their pixels take are listed
        self.paired = paired  # masks and other paired images: not measured (properties.py)

    def __call__(self, rel: str) -> Probe:
        unread = unread_archive(rel)
        if unread is not None:
            return Probe.reject("archive", unread)
        try:
            # A FIFO put here since the walk must not stop the run (base/userfile.py).
            data, size = read_source(self.root, rel, self.params.max_file_bytes)
            if data is None:
                why = f"file is {size:,} bytes, over ingest.max_file_bytes"
                return Probe.reject("too_large", why)
        except NotRegularFileError as exc:
            return Probe.reject("not_file", str(exc.strerror))
        except OSError as exc:
            return Probe.reject("unreadable", f"cannot read: {exc.strerror or exc}")
        return self.describe(rel, data)

    def describe(self, rel: str, data: bytes) -> Probe:
        limit = self.params.max_pixels
        try:
            info = describe(rel, data, None, limit).info
            said = prove_decodes(data, limit) if self.params.verify == "decode" else []
            classes = mask_values(data, limit) if rel in self.masks else None
            measured = self.params.measure and rel not in self.paired
            props = properties(data, limit) if measured else None
        except NotAnImageError as exc:
            return Probe.reject(exc.code, exc.reason)
        except Exception as exc:  # one file never stops the run
            # A decoder's own bug on a crafted file (an OverflowError, a MemoryError):
            # the file is refused with what went wrong, the run goes on.
            why = f"reading it as an image failed: {type(exc).__name__}: {exc}"
            return Probe.reject("unreadable_image", why[:300])
        return Probe(info, said=tuple(said), classes=classes, props=props)


PARALLEL_FROM = 2000  # files; below this a process pool costs more than it saves
PARALLEL_WALK_FROM = 20_000  # files seen last time; below this a walk is quick anyway
CHUNK = 256


def _probe_all(probe: _Prober, files: list[str]) -> Iterator[Probe]:
    """Probe files in order, on every core when there are many.

    The per-file work is mostly Python (header parsing, checks), so threads would queue
    on the GIL: forked processes take chunks of files and send back small results.
    """
    cores = os.cpu_count() or 1
    if cores < 2 or len(files) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        yield from map(probe, files)
        return
    global _worker_probe
    _worker_probe = probe  # inherited by the forked workers, never pickled
    try:
        with mp.get_context("fork").Pool(cores) as pool:
            # Sent back as JSON-ready lists: they pickle faster than objects.
            for found in pool.imap(_probe_in_worker, files, chunksize=CHUNK):
                yield Probe.from_json(found)
    finally:
        _worker_probe = None


_worker_probe: _Prober | None = None


def _probe_in_worker(rel: str) -> list[Any]:
    assert _worker_probe is not None
    return _worker_probe(rel).to_json()


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

    What an earlier run learned is not learned again (sources/incoming.py): a file unchanged
    since (its fingerprint) is not read; one that was already in the store, in a part
    the store still has (parts are named by content), that no changed annotation file
    reaches, is not even looked up. `progress`, if given, is reset to the number of
    files, then updated.
    """
    rules = rules or AnnotationsParams()
    with IncomingState(params, rules) as state:
        run = _Run(str(incoming), params, rules, state)
        run.find(store)
        if progress is not None:
            progress.reset(total=len(run.found.files))
        todo = run.sort_out()
        if progress is not None:
            progress.update(run.result.scanned - len(todo))
        prober = _Prober(run.root, params, run.class_masks, run.paired_files)
        for rel, probe in zip(todo, _probe_all(prober, todo), strict=True):
            run.entries[rel] = Entry(run.found.stamps[rel], probe)
            if progress is not None:
                progress.update()
        run.stage(store)
        state.save(run.changed(), len(run.found.files), run.annotations)
    if not rules.split_from_folder:
        run.result.own_splits = own_splits(run.result.staged)
    return run.result


def own_splits(staged: list[Record]) -> dict[str, list[str]]:
    """The datasets (top-level folders; "." for the top) whose staged images lie in
    folders naming two splits or more (`train/`, `test/`): splits of their own, which
    hashing their keys ignores (annotations.split_from_folder: false). An image whose
    annotations name its split is not counted: that split is kept."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for record in staged:
        if record.metadata.get("split") is not None:
            continue  # its annotations name its split (YOLO's data.yaml): that one is kept
        folders = record.key.split("/")[:-1]
        for at in range(len(folders) - 1, -1, -1):
            split = split_of_name(folders[at])
            if split is not None:
                top = folders[0] if at > 0 else "."
                found[top].setdefault(split, folders[at] + "/")
                break
    return {top: sorted(by.values()) for top, by in sorted(found.items()) if len(by) > 1}


class _Run:
    """One ingest: what the walk found, what each file is, what is staged."""

    def __init__(
        self, root: str, params: IngestParams, rules: AnnotationsParams, state: IncomingState
    ):
        self.root, self.params, self.rules, self.state = root, params, rules, state
        self.part_before: dict[str, str | None] = {}  # the part an unchanged file's entry named
        self.entries: dict[str, Entry] = {}  # what each candidate is now
        self.candidates: list[str] = []  # the files that may be staged, in order
        self.pairs = Pairs()  # images paired with others (masks...): by their layout
        self.class_masks: set[str] = set()  # the paired images that hold class ids
        self.paired_files: set[str] = set()  # every paired image (masks...)

    def find(self, store: ImageStore | None) -> None:
        """Walk the folder, tell what the cache already knows, read the annotations."""
        # A folder the last run found large is walked on every core (sources/walk.py).
        cores = os.cpu_count() or 1
        jobs = cores if self.state.files_last >= PARALLEL_WALK_FROM else 1
        found = self.found = walk(self.root, self.rules.ignore, jobs=jobs)
        parts = {part.content_digest for part in store.parts} if store is not None else set()
        limits = Limits(self.params.max_metadata_bytes, self.rules.max_file_bytes)
        keys = KeyIndex(found.files)
        column = self.rules.image_column

        def read_alone(files: list[str]) -> Annotations:
            return read_place(self.root, files, keys, limits, image_column=column)

        state = self.state
        state.look(found, keys, parts, place_reader(self.root), read_alone)
        self.pairs = find_pairs(keys)
        state.settle_pairs(self.pairs)
        self.annotations = read_place(
            self.root, found.annotations, keys, limits, state.known, state.settled_files(), column
        )
        for image, roles in self.annotations.paired.items():  # COCO panoptic PNGs...
            for role, file in roles.items():
                self.pairs.add(image, role, file)
        state.settle_pairs(self.pairs)
        self.result = _result(self.root, found, self.annotations)
        self._name_masks()

    def _name_masks(self) -> None:
        """Find which table names the classes of each mask (classes.py); say which
        dataset folders have none, and which class tables name no mask."""
        self.class_masks = self.pairs.files(CLASS_ROLES)
        self.paired_files = self.pairs.files()
        tables, named = self.annotations.class_tables, self.rules.mask_classes
        self.names = MaskClasses(self.pairs, tables, named)
        notes, unused = self.names.notes()
        self.result.annotation_notes += [shown(note) for note in notes]
        self.result.unused_metadata += [shown(table) for table in unused]

    def sort_out(self) -> list[str]:
        """Count the known files, reject bad keys and broken metadata, take what the
        cache knows of the rest; returns the files to probe."""
        result, todo = self.result, []
        embedded = self.annotations.embedded  # images inside LabelMe files: stamped as those
        self.found.stamps.update((key, self.found.stamps[rel]) for key, rel in embedded.items())
        # x.txt may be a PNG
        files = sorted([*self.found.files, *self.annotations.not_text, *embedded])
        result.scanned = len(files)
        paired, orphans = self.pairs.files(), self.pairs.orphans
        known, unchanged = self.state.known, self.state.unchanged
        for rel in files:
            if rel in orphans:
                result.rejects.append(Reject(shown(rel), "paired_without_image", orphans[rel]))
                continue
            if rel in known:
                if rel in paired:
                    result.paired += 1
                else:
                    result.already_stored += 1
                continue
            raw = unchanged.get(rel)
            if raw is None and (reject := _bad_key(rel)) is not None:
                result.rejects.append(reject)
                continue
            broken = self.annotations.broken.get(rel)
            if broken is not None:
                result.rejects.append(Reject(shown(rel), "bad_metadata", broken))
                continue
            self.candidates.append(rel)
            entry = parse_entry(raw) if raw is not None else None
            if entry is None or self._undescribed(rel, entry):  # new, changed, damaged
                todo.append(rel)
                continue
            self.entries[rel] = entry
            self.part_before[rel], entry.part = entry.part, None  # where it is: looked up
        return todo

    def _undescribed(self, rel: str, entry: Entry) -> bool:
        """Whether `rel` was probed before it was what it is now, and is probed again:
        a class-id mask probed before it was one (its image came later), for the values
        its pixels take; an image probed as a paired image, or by a version before
        properties, for what its pixels measure."""
        probe = entry.probe
        if probe.info is None:
            return False
        if rel in self.class_masks:
            return probe.classes is None
        measured = probe.props is not None and probe.props.get("v") == PROPS_VERSION
        return self.params.measure and not measured and rel not in self.paired_files

    def stage(self, store: ImageStore | None) -> None:
        """The candidates' records, less the rejects and what the store holds as is."""
        result, staged = self.result, []
        paired = self.pairs.files()
        for rel in self.candidates:
            if rel in paired:
                continue  # staged with its image
            record = self._record(rel, self.entries[rel].probe)
            if record is not None:
                staged.append(self._with_paired(record))
        if store is not None:
            result.looked_up = len(staged)
            for key, part in stored_already(store, staged).items():
                self.entries[key].part = part
                result.already_stored += 1
        staged = [r for r in staged if self.entries[r.key].part is None]
        result.staged = sorted(staged, key=lambda r: r.key.encode("utf-8"))
        result.rejects.sort(key=lambda r: r.path)

    def _record(self, rel: str, probe: Probe) -> Record | None:
        result = self.result
        if probe.info is None:
            result.rejects.append(Reject(shown(rel), probe.code, probe.reason))
            return None
        # What the decoders said while proving it: for the report.
        result.decoder_messages += [{"path": shown(rel), "message": m} for m in probe.said]
        info = probe.info
        metadata = self.annotations.for_image(rel, info.width, info.height)
        limit = self.params.max_metadata_bytes
        if metadata and len(canonical_json(metadata)) > limit:
            why = f"metadata is over {limit:,} bytes (ingest.max_metadata_bytes)"
            result.rejects.append(Reject(shown(rel), "bad_metadata", why))
            return None
        return Record(rel, info, metadata, props=probe.props)

    def _with_paired(self, record: Record) -> Record:
        """The record with its paired images (masks...); a paired file that is not a
        good image is rejected with its reason, the image staged without it."""
        roles = self.pairs.of_image.get(record.key)
        if not roles:
            return record
        found, described = {}, {}
        for role, rel in sorted(roles.items()):
            entry = self.entries.get(rel)
            if entry is None:
                continue  # not a candidate: rejected already (a bad key, ...)
            probe = entry.probe
            if probe.info is None:
                why = f"the {role} of {record.key}: {probe.reason}"
                self.result.rejects.append(Reject(shown(rel), probe.code, why))
                continue
            found[role] = Paired(rel, probe.info)
            self.result.paired += 1
            if role in CLASS_ROLES and probe.classes is not None:
                described[role] = probe.classes
        if not found:
            return record
        return self._with_classes(record.replace(paired=found), described)

    def _with_classes(self, record: Record, described: dict[str, Any]) -> Record:
        """The record with a field `ROLE_classes` for each class-id mask whose dataset's
        class names are known: the classes its pixels hold (classes.py). A field an
        annotation file gives the image itself wins."""
        fields = {}
        for role, present in described.items():
            value, note = self.names.value(record.key, role, present)
            if note is not None:
                self.result.annotation_notes.append(shown(note))
            if value is not None:
                fields[f"{role}_classes"] = value
        if not fields:
            return record
        metadata = {**fields, **record.metadata}
        limit = self.params.max_metadata_bytes
        if len(canonical_json(metadata)) > limit:
            why = f"{', '.join(fields)} would take its metadata over {limit:,} bytes"
            self.result.annotation_notes.append(shown(f"{record.key}: {why}; not set"))
            return record
        return record.replace(metadata=metadata)

    def changed(self) -> dict[str, Entry]:
        """The entries the cache does not hold as they are now."""
        before = self.part_before  # an unchanged file's entry changes only by its part
        return {
            rel: entry
            for rel, entry in self.entries.items()
            if rel not in before or before[rel] != entry.part
        }


def _result(root: str, found: Found, annotations: Annotations) -> IngestResult:
    result = IngestResult(
        rejects=list(found.rejects),
        annotation_files=[shown(f) for f in annotations.files],
        unused_metadata=[shown(u) for u in annotations.unused],
        annotation_notes=[shown(n) for n in annotations.notes],
        ignored=found.ignored,
    )
    result.rejects += _images_ignored(root, found.ignored)
    return result


def _bad_key(rel: str) -> Reject | None:
    """Why a path cannot be a key, as a reject (an entry in the cache was a valid key
    then, and is now)."""
    try:
        encode_key(rel)
    except InvalidKeyError as exc:
        code = "key_too_long" if "at most" in str(exc) else "bad_key"
        return Reject(shown(rel), code, str(exc))
    return None


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


def stored_already(store: ImageStore, staged: list[Record]) -> dict[str, str]:
    """The keys whose staging would change nothing, each with the content digest of the
    part holding it: the store has the same bytes and every field that arrived with
    them, at the value that arrived last (for a field data/annotations overrides, the
    arrived value the record keeps under it). Looks up records, reads no image bytes."""
    same = {}
    wanted = {record.key: record for record in staged}
    for key, raw, part in store.raw_records_of(wanted):
        record = wanted[key]
        if peek_sha256_and_split(raw)[0] != record.info.sha256:
            continue
        plain = not (record.paired or record.metadata or record.props is not None)
        if plain and b'"paired":' not in raw or _holds(record, parse_json(raw)):
            same[key] = part.content_digest
    return same


_MISSING = object()


def _holds(record: Record, stored: dict[str, Any]) -> bool:
    """Whether a stored record (parsed) holds what arrives with `record`: its paired
    images (and maybe more: files dropped again without some never take them away),
    its props (a store from before properties: the record gets them), and every
    metadata field at the value that arrived last: the record's own, or for a field a
    tracked source overrides or removes, the arrived value it keeps (`overridden`),
    which a new arrival updates (it comes back when the source stops)."""
    paired = stored.get("paired") or {}
    if not all(paired.get(role) == p.to_json() for role, p in record.paired.items()):
        return False
    if record.props is not None and stored.get("props") != record.props:
        return False
    arrived = _arrived(stored)
    return all(arrived.get(name, _MISSING) == value for name, value in record.metadata.items())


def _arrived(stored: dict[str, Any]) -> dict[str, Any]:
    """What arrived with a stored image (a parsed record, as sources/tracked.py's
    `arrived_so_far` reads a Record): its fields less those tracked sources set, plus
    the arrived values they override or removed."""
    metadata, owned = stored.get("meta") or {}, stored.get("annotated") or ()
    overridden = stored.get("overridden")
    if not isinstance(overridden, dict):  # none, or damaged: pack's reading says so
        overridden = {}
    return {
        **{name: value for name, value in metadata.items() if name not in owned},
        **overridden,
    }


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
    what was rejected: `result.check()`."""
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
    result.report_path, result.strict = report, params.strict
    result.packed_since = _packed_since(report, manifest, result)
    if result.packed_since is None:
        write_manifest(manifest, result.staged)
        write_json(report, result.report())
    return result


# What packing the staged images changes in the report of the run that staged them.
_MOVED_BY_PACK = ("already_stored", "staged", "staged_bytes")
# What a run says of the images it looked at (probed, looked up in the store): one with
# nothing new looks at fewer (none, once pack noted where they are), so it may say less
# than the last run, never anything the last did not.
_OF_WHAT_IT_LOOKED_AT = ("looked_up", "decoder_messages", "annotation_notes")
# What a run says of the images it staged: one with nothing new stages none.
_OF_WHAT_IT_STAGED = ("own_splits_not_kept",)


def _packed_since(report: Path, manifest: Path, result: IngestResult) -> int | None:
    """How many images the last run staged, if it saw the folder as it is now and pack
    has stored them all since; None otherwise. Then its manifest and report still say
    what this run found, and writing this run's (nothing staged) would change dvc.lock
    for nothing: a `dvc repro` with nothing new leaves git clean."""
    if result.staged:
        return None
    try:
        last = orjson.loads(read_regular_file(report))
        with open_regular(manifest) as lines:  # a million rows after a first build
            rows = sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 20), b""))
        rows -= 1  # the header
    except (OSError, orjson.JSONDecodeError):
        return None
    now = result.report()
    if not isinstance(last, dict) or set(last) != set(now):
        return None
    if any(
        last[name] != now[name]
        for name in now
        if name not in (*_MOVED_BY_PACK, *_OF_WHAT_IT_LOOKED_AT, *_OF_WHAT_IT_STAGED)
    ):
        return None
    if not all(_said_before(last[name], now[name]) for name in _OF_WHAT_IT_LOOKED_AT[1:]):
        return None
    if last["staged"] != rows or last["staged"] + last["already_stored"] != now["already_stored"]:
        return None
    return int(last["staged"])


def _said_before(last: Any, now: list[Any]) -> bool:
    """Whether every line `now` (a report's list) was in `last` (the same list, as the
    last run's report has it)."""
    if not isinstance(last, list):
        return False
    said = {orjson.dumps(item, option=orjson.OPT_SORT_KEYS) for item in last}
    return all(orjson.dumps(item, option=orjson.OPT_SORT_KEYS) in said for item in now)
