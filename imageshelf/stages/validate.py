"""Validate: prove every record in the store is intact, and every staged image is in it.

Reads the store read-only, part by part (the single file is a store of one part). For
each part: LMDB's structure (offline, before the engine touches a page), every image
against its hash and size, every record parsed, the header's count, byte total and
content digest, and the part against the entry that lists it. Then the catalog against
the store, and each staged image (unless pack reported why it was not packed) against
the store and its source file, byte for byte.

A run proves what changed. A part proven before on this machine, whose content digest
and file fingerprint (device, inode, size, mtime: base/userfile.py) are unchanged, is not read
again; nor is a catalog file so proven. `full=True` (`validate --full`) reads
everything: for damage a fingerprint does not show (a program that writes into a file
and sets its mtime back, the disk itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb

from ..annotations.archives import read_source
from ..base.atomic import write_json
from ..base.progress import Progress
from ..base.userfile import fingerprint, fingerprint_of, read_regular_file
from ..errors import ShelfError
from ..records.columns import columns_name, write_columns
from ..records.manifest import read_manifest_infos
from ..state import cache
from ..state.seen import Probed
from ..store import Header, ImageInfo, ImageStore, Part, Record, StoreError, StoreFile, trust
from ..store.fields import FieldIndex
from ..store.format import (
    CHUNK_BYTES,
    PAIRED_VERSION,
    SHARED_VERSION,
    DamagedRecordError,
    digest_entry,
    peek_sha256_and_split,
)
from ..store.index import is_shard_name, shard_name
from ..store.values import Paired
from ..versions.catalog import catalog_file_digest, catalog_parts
from .result import StageResult


class ValidationError(ShelfError):
    """The store failed validation; the full list is in the report."""


PROVEN = "validated.json"  # in the cache: path -> [fingerprint, content digest]


@dataclass
class Validation(StageResult):
    records: int = 0
    bytes_checked: int = 0
    proven_earlier: int = 0  # records of parts proven before and unchanged since
    staged_checked: int = 0
    sources_checked: int = 0  # source files read and compared with the stored bytes
    sources_unchanged: int = 0  # source files as ingest hashed them (fingerprint): not read
    full: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    proven: dict[str, list[Any]] = field(default_factory=dict)  # what this run proved
    store_path: Path | None = None  # the store validated, and where the report goes: set
    report_path: Path | None = None  # by validate_store and run

    def summary(self) -> str:
        if self.failures:
            return f"validate: {len(self.failures)} problem(s) in {self.store_path}"
        earlier = f", {self.proven_earlier} proven earlier and unchanged"
        return (
            f"validate: {self.records} records intact ({self.bytes_checked / 1e6:,.1f} MB "
            f"re-hashed{earlier if self.proven_earlier else ''}); {self.staged_checked} "
            "staged images present and byte-identical"
        )

    def check(self) -> None:
        if self.failures:
            first = self.failures[0]
            raise ValidationError(
                f"validate: {len(self.failures)} problem(s) in {self.store_path}, first: "
                f"{first['key']}: {first['problem']} (all in {self.report_path})"
            )

    def fail(self, key: str, problem: str) -> None:
        self.failures.append({"key": key, "problem": problem})

    def report(self) -> dict[str, Any]:
        return {
            "ok": not self.failures,
            "records": self.records,
            "bytes_checked": self.bytes_checked,
            "proven_earlier": self.proven_earlier,
            "full": self.full,
            "staged_checked": self.staged_checked,
            "sources_checked": self.sources_checked,
            "sources_unchanged": self.sources_unchanged,
            "failures": self.failures,
        }


def _proven(full: bool) -> dict[str, list[Any]]:
    if full:
        return {}
    earlier = cache.load(PROVEN)
    return earlier if isinstance(earlier, dict) else {}


def _proof(path: Path, digest: str) -> list[Any] | None:
    """What the cache keeps of a file proven to hold `digest`: its fingerprint too."""
    now = fingerprint(path)
    return [list(now), digest] if now is not None else None


def _still_proven(earlier: dict[str, list[Any]], path: Path, digest: str) -> list[Any] | None:
    """The proof entry for a file, if it was proven before and has not changed since."""
    entry = _proof(path, digest)
    return entry if entry is not None and earlier.get(str(path)) == entry else None


def validate_store(
    store: ImageStore, progress: Progress | None = None, full: bool = False
) -> Validation:
    """Check every part of the store, then the store as a whole. Parts proven before and
    unchanged since are not read again, unless `full`.

    `progress`, if given, is reset to the record count, then updated per record.
    """
    result = Validation(full=full, store_path=store.path)
    earlier = _proven(full)
    if full:
        trust.distrust()  # every file verified by this process, whatever a marker says
    try:
        parts, header = store.parts, store.header
    except StoreError as exc:
        problems = trust.problems(store.path) if store.path.is_file() else []
        for problem in problems[:20]:  # what the open refused, in full
            result.fail("(lmdb)", problem)
        if not problems:
            result.fail("(store)", str(exc))
        return result
    if progress is not None:
        progress.reset(total=header.count)
    fresh = [part for part in parts if _validate_part(store, part, earlier, progress, result)]
    cache.keep_part_hashes({part.content_digest for part in parts})
    strays = store.stray_files()
    if strays:
        result.fail(
            "(index)",
            f"{len(strays)} shard file(s) not in the index, left by an "
            f"interrupted pack ({strays[0]}...): run pack to remove them",
        )
    if result.failures:
        return result
    if header.count != result.records:
        result.fail(
            "(header)", f"header says {header.count} images, the store holds {result.records}"
        )
    _check_keys_unique(store, parts, fresh, result)
    return result


def _validate_part(
    store: ImageStore,
    part: Part,
    earlier: dict[str, list[Any]],
    progress: Progress | None,
    result: Validation,
) -> bool:
    """Prove one part into `result`; whether it was read in full this time (a part
    proven before and unchanged since is not even opened: opening can mean verifying it
    again, after DVC's chmod say: trust.py)."""
    path = store.path / part.name if store.layout == "sharded" else store.path
    entry = _still_proven(earlier, path, part.content_digest)
    if entry is not None:
        result.records += part.count
        result.proven_earlier += part.count
        result.proven[str(path)] = entry
        if progress is not None:
            progress.update(part.count)
        return False
    try:
        file = store.part(part.name)
    except StoreError as exc:
        missing = (
            "shard listed in the index is missing; `dvc pull` or `dvc checkout` brings it back"
        )
        result.fail(part.name, str(exc) if path.exists() else missing)
        return False
    found = _validate_file(file, part, progress)
    proof = _proof(file.path, part.content_digest)
    if not found.failures and proof is not None:
        result.proven[str(file.path)] = proof
    result.records += found.records
    result.bytes_checked += found.bytes_checked
    shard = is_shard_name(part.name)  # failures name the shard as well as the key
    result.failures += [
        {"key": f"{part.name}: {f['key']}" if shard else f["key"], "problem": f["problem"]}
        for f in found.failures
    ]
    return True


def _check_keys_unique(
    store: ImageStore, parts: list[Part], fresh: list[Part], result: Validation
) -> None:
    """No key in two parts. Parts proven together before were checked then: only keys of
    the parts read now are looked up in the others (or, when most parts are new, one
    merged scan of every key)."""
    if len(parts) < 2 or not fresh:
        return
    if sum(p.count for p in fresh) * 10 > sum(p.count for p in parts):
        previous = None
        for key, _raw in store.raw_records():
            if key == previous:
                result.fail(key, "the same key is in two shards")
            previous = key
        return
    for part in fresh:
        others = [p for p in parts if p.name != part.name]
        for key in store.part(part.name):
            if any(p.may_hold(key) and key in store.part(p.name) for p in others):
                result.fail(key, "the same key is in two shards")


def _validate_file(file: StoreFile, part: Part, progress: Progress | None) -> Validation:
    result = Validation()
    problems = trust.problems(file.path)  # offline, before the engine touches a page
    if problems:
        for problem in problems[:20]:
            result.fail("(lmdb)", problem)
        return result  # opening a structurally damaged file through LMDB could crash
    trust.remember_path(file.path)  # verified just now: opening it need not verify again
    try:
        header = file.header
    except StoreError as exc:
        result.fail("(header)", str(exc))
        return result
    content = hashlib.sha256()
    total = 0
    hashes = bytearray()  # each image's SHA-256, in key order: pack's duplicate check
    layout = _Layout(file, header, result) if header.major >= 2 else None
    try:
        for key, raw in file.raw_records():
            result.records += 1
            record = _validate_record(file, key, raw, result)
            if layout is not None:
                layout.add(key, record)
            if record is not None:
                # As the builder did: the record's bytes as stored (build.py).
                content.update(digest_entry(key.encode("utf-8"), raw))
                total += record.stored_bytes
                hashes += bytes.fromhex(record.info.sha256)
            if progress is not None:
                progress.update()
    except (ValueError, KeyError, TypeError, lmdb.Error, StoreError) as exc:
        result.fail("(store)", f"a record does not parse after {result.records} good ones: {exc}")
        return result
    if layout is not None:
        layout.finish()
    _validate_header(file, part, header, (total, content.hexdigest()), result)
    if not result.failures:  # proven: each record's hash is its bytes' hash
        cache.save_bytes(cache.part_hashes_name(part.content_digest), bytes(hashes))
    return result


def _validate_record(file: StoreFile, key: str, raw: bytes, result: Validation) -> Record | None:
    """One record: it parses, a lookup finds it, its bytes are there and match its
    hash. The record if it parses (it counts toward the header's figures)."""
    try:
        record = Record.decode(key, raw)
    except DamagedRecordError as exc:
        result.fail(key, f"record is {exc.problem}")
        return None
    # A scan is no proof that a lookup finds the key (a damaged B-tree branch can hide it
    # from lookups only): every key is looked up, in both databases.
    try:
        found = file.raw_record(key)
    except KeyError:
        found = None
    if found != raw:
        result.fail(key, "record is not reachable by lookup: the store's index is damaged")
        return record
    try:
        data = file.get(key)
    except (KeyError, StoreError):
        result.fail(key, "record has no image bytes, or they are not reachable by lookup")
        return record
    result.bytes_checked += len(data)
    if len(data) != record.info.size:
        result.fail(key, f"image is {len(data)} bytes, its record says {record.info.size}")
    elif hashlib.sha256(data).hexdigest() != record.info.sha256:
        result.fail(key, "image bytes do not match their sha256: the store is corrupt")
    for role in record.roles():
        _validate_paired(file, record, role, result)
    return record


def _validate_paired(file: StoreFile, record: Record, role: str, result: Validation) -> None:
    """One paired image of a record: there, and its bytes match its hash."""
    key, info = record.key, record.paired[role].info
    try:
        data = file.get_paired(key, role)
    except (KeyError, StoreError):
        result.fail(key, f"its paired {role!r} has no bytes, or they are not reachable")
        return
    result.bytes_checked += len(data)
    if len(data) != info.size or hashlib.sha256(data).hexdigest() != info.sha256:
        result.fail(key, f"its paired {role!r} does not match its sha256: the store is corrupt")


def _validate_header(
    file: StoreFile, part: Part, header: Header, seen: tuple[int, str], result: Validation
) -> None:
    """The file as a whole: its layout, its counts, and the header's figures against what
    the records add up to (seen: their total bytes and content digest)."""
    total, digest = seen
    counts = file.stat()
    if counts["images"] != counts["records"]:
        result.fail("(store)", f"{counts['images']} images but {counts['records']} records")
    if header.count != result.records:
        result.fail("(header)", f"header says {header.count} images, the file has {result.records}")
    if header.total_bytes != total:
        result.fail(
            "(header)", f"header says {header.total_bytes} bytes, records add up to {total}"
        )
    if header.content_digest != digest:
        result.fail("(header)", "content digest does not match the records")
    # The shard against its index entry was checked when it was opened (ImageStore.part).
    if is_shard_name(part.name) and shard_name(header.content_digest) != part.name:
        result.fail("(index)", "shard's content does not match its name")


class _Layout:
    """Format 2.x and 3.0: every image lies where the layout rule puts it (chunks filled
    in key order, each image followed by its paired images in role order, none
    overlapping, no bytes between or after; in 2.1 and 3.0, bytes an earlier image has
    at that image's place), and the index holds exactly what the records give. Either
    failing could make reads or filters wrong. Fed each record of the scan in key order
    (None: one that does not parse, reported by the record check); says what is wrong as
    "(layout)" failures, at most 20."""

    def __init__(self, file: StoreFile, header: Header, result: Validation) -> None:
        self.file, self.header, self.result = file, header, result
        self.index = FieldIndex(header.index_asked)
        self.expected: list[int] = []  # each chunk's length, by the rule
        self.shared = header.version in (SHARED_VERSION, PAIRED_VERSION)
        self.first: dict[str, tuple[int, int, int]] = {}  # sha256 -> its place (2.1)
        self.places = file.locations()
        self.paired_places = file.paired_locations()
        self.paired = 0
        self.problems = 0
        self.stopped = False

    def fail(self, problem: str) -> None:
        self.result.fail("(layout)", problem)
        self.problems += 1
        self.stopped = self.stopped or self.problems >= 20

    def add(self, key: str, record: Record | None) -> None:
        if self.stopped:
            return
        try:
            place = next(self.places, None)
        except (StoreError, lmdb.Error) as exc:
            self.fail(str(exc))
            self.stopped = True
            return
        if place is None or place[0] != key:
            self.fail(f"{key}: the locations and the records list other keys")
            self.stopped = True
            return
        if record is None:
            return
        first = self.first if self.shared else None
        problem = _misplaced(record.info, place[1:], self.expected, first)
        if problem:
            self.fail(f"{key}: {problem}")
        for role in record.roles():
            self._add_paired(key, role, record.paired[role].info)
        self.index.add(key.encode("utf-8"), record)

    def _add_paired(self, key: str, role: str, info: ImageInfo) -> None:
        try:
            place = next(self.paired_places, None)
        except (StoreError, lmdb.Error) as exc:
            self.fail(str(exc))
            self.stopped = True
            return
        if place is None or place[:2] != (key, role):
            self.fail(f"{key}: the paired images and the records name other images")
            self.stopped = True
            return
        self.paired += 1
        first = self.first if self.shared else None
        problem = _misplaced(info, place[2:], self.expected, first)
        if problem:
            self.fail(f"{key}: its paired {role!r}: {problem}")

    def finish(self) -> None:
        if self.stopped:
            return
        try:
            self._whole()
        except (StoreError, lmdb.Error) as exc:
            self.fail(str(exc))

    def _whole(self) -> None:
        file, header, index = self.file, self.header, self.index
        extra = next(self.places, None)
        if extra is not None:
            self.fail(f"{extra[0]}: has a location but no record")
        stray = next(self.paired_places, None)
        if stray is not None:
            self.fail(f"{stray[0]}: a paired {stray[1]!r} that its record does not name")
        if header.version == PAIRED_VERSION and not self.paired:
            self.fail("format 3.0, but no paired images (a 2.x file)")
        found = file.chunk_sizes()
        if found != list(enumerate(self.expected)):
            count = len(self.expected)
            self.fail(f"the chunks are not the {count} the records lie in, back to back")
        if header.version == SHARED_VERSION and len(self.first) == header.count:
            self.fail("format 2.1, but no two images share bytes (a 2.0 file)")
        if (index.indexed, index.not_indexed) != (header.indexed, header.not_indexed):
            self.fail("the header names other indexed fields than the records give")
        elif list(file.index_entries()) != list(index.entries()):
            self.fail("the field index does not match the records: filters would be wrong")


def _misplaced(
    info: ImageInfo,
    place: tuple[int, int, int],
    expected: list[int],
    first: dict[str, tuple[int, int, int]] | None,
) -> str | None:
    """Why an image is not where the layout rule puts it (None if it is), the rule
    advanced past it: `expected` holds each chunk's length so far, `first` (2.1, 3.0)
    the place of each content met before."""
    chunk, at, size = place
    wrong = f"its location says {size} bytes, its record {info.size}"
    if first is not None:
        earlier = first.get(info.sha256)
        if earlier is not None:
            if earlier != place:
                return "its bytes are not where the layout puts them"
            return wrong if size != info.size else None
        first[info.sha256] = place
    if expected and expected[-1] and expected[-1] + size > CHUNK_BYTES:
        expected.append(0)
    if not expected:
        expected.append(0)
    at_rule = (len(expected) - 1, expected[-1])
    expected[-1] += size
    if size != info.size:
        return wrong
    return None if (chunk, at) == at_rule else "its bytes are not where the layout puts them"


def validate_catalog(store: ImageStore, catalog: Path, result: Validation) -> None:
    """The catalog folder must list exactly the store's records, file by file (a file
    proven before and unchanged since is not read again)."""
    if not catalog.is_dir():
        result.fail(
            "(catalog)", f"{catalog} is missing; `dvc pull` fetches it, or run pack to write it"
        )
        return
    earlier = _proven(result.full)
    parts = catalog_parts(store)
    for name, part in parts:
        digest = part.content_digest
        path = catalog / name
        if not path.exists():
            result.fail(
                "(catalog)", f"{path} is missing; `dvc pull` fetches it, or run pack to write it"
            )
            continue
        entry = _still_proven(earlier, path, digest)
        if entry is not None:
            result.proven[str(path)] = entry
            continue
        try:
            _count, found = catalog_file_digest(path)
        except (ValueError, KeyError, TypeError) as exc:
            result.fail("(catalog)", f"{path} does not parse: {exc}")
            continue
        proof = _proof(path, digest)
        if found != digest:
            result.fail(
                "(catalog)",
                f"{path} does not match the store; delete it and run `dvc repro` (pack "
                "writes it again)",
            )
        elif proof is not None:
            result.proven[str(path)] = proof
    extra = sorted({p.name for p in catalog.glob("*.jsonl")} - {n for n, _ in parts})
    if extra:
        result.fail(
            "(catalog)", f"{catalog} has files for no part of the store: {', '.join(extra[:3])}"
        )


def _bytes_of(path: Path) -> bytes | None:
    """A columnar file's bytes; None if it is not a regular file (a pipe is not waited on)."""
    try:
        return read_regular_file(path)
    except OSError:
        return None


def validate_columns(store: ImageStore, catalog: Path, result: Validation) -> None:
    """Each part's columnar file must be exactly what its records give (the same records
    give the same bytes: records/columns.py), file by file; one proven before and
    unchanged since is not written again to compare."""
    earlier = _proven(result.full)
    parts = store.parts
    for part in parts:
        path = catalog / columns_name(part)
        again = "delete it and run `dvc repro` (pack writes it again)"
        if not path.exists():
            result.fail("(columns)", f"{path} is missing; run `dvc repro` (pack writes it)")
            continue
        entry = _still_proven(earlier, path, part.content_digest)
        if entry is not None:
            result.proven[str(path)] = entry
            continue
        expected = io.BytesIO()
        write_columns(store.part(part.name).raw_records, part, expected)
        proof = _proof(path, part.content_digest)
        if _bytes_of(path) != expected.getvalue():
            result.fail("(columns)", f"{path} does not hold the store's records; {again}")
        elif proof is not None:
            result.proven[str(path)] = proof
    extra = sorted({p.name for p in catalog.glob("*.parquet")} - {columns_name(p) for p in parts})
    if extra:
        result.fail(
            "(columns)", f"{catalog} has files for no part of the store: {', '.join(extra[:3])}"
        )


def validate_staged(
    store: ImageStore,
    manifest: Path,
    incoming: Path,
    not_packed: dict[str, str],
    result: Validation,
) -> None:
    """Check each staged image is stored, byte-identical to what ingest hashed and to its
    source file (while that file is still there). A source file whose fingerprint is
    the one ingest hashed it with is not read again (but with --full): the stored
    bytes, proven against that hash, are its bytes. Reads each line's key and hash, and
    each stored record's hash, without parsing them as records."""
    damaged = {failure["key"] for failure in result.failures}  # already reported
    skip = damaged | set(not_packed)
    root = os.fspath(incoming)
    lines = read_manifest_infos(manifest)
    with contextlib.ExitStack() as stack:
        probed = None if result.full else stack.enter_context(Probed())
        while batch := list(itertools.islice(lines, STAGED_BATCH)):
            wanted = [line for line in batch if line[0] not in skip]
            staged = {key: info.sha256 for key, info, _paired in wanted}
            sizes = {key: info.size for key, info, _paired in wanted}
            # Looked up together: one pass over the store when they are many of it.
            found = {key: raw for key, raw, _part in store.raw_records_of(staged)}
            stored = {key: peek_sha256_and_split(raw)[0] for key, raw in found.items()}
            for key, sha256 in staged.items():
                found_as = stored.get(key)
                _check_staged(store, key, sha256, sizes[key], found_as, root, probed, result)
            for key, _info, paired in wanted:
                if paired and key in found:
                    _check_staged_paired(key, paired, found[key], result)


STAGED_BATCH = 65_536  # staged lines checked together: validate's memory is bounded by it


def _check_staged_paired(
    key: str, paired: dict[str, Paired], raw: bytes, result: Validation
) -> None:
    """A staged image's paired images are the stored record's (validate_store proved
    the stored ones against their hashes)."""
    stored = Record.decode(key, raw).paired
    for role, staged in sorted(paired.items()):
        held = stored.get(role)
        if held is None or held.info.sha256 != staged.info.sha256:
            result.fail(key, f"its staged {role} ({staged.file}) is not the one stored")


def _unchanged(probed: Probed, root: str, key: str, sha256: str) -> bool:
    """Whether the source file of `key` is a regular file as ingest hashed it."""
    try:
        st = os.stat(os.path.join(root, key))
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and probed.sha256(key, fingerprint_of(st)) == sha256


def _check_staged(
    store: ImageStore,
    key: str,
    sha256: str,
    size: int,
    stored: str | None,
    root: str,
    probed: Probed | None,
    result: Validation,
) -> None:
    """One staged image, whose record in the store has the hash `stored` (None: none).
    Its source is read up to the size ingest staged: a file or an archive replaced
    since may be anything."""
    result.staged_checked += 1
    if stored is None:
        result.fail(key, "staged but missing from the store")
        return
    if stored != sha256:
        result.fail(key, "stored bytes differ from the staged file's")
        return
    if probed is not None and _unchanged(probed, root, key, sha256):
        result.sources_unchanged += 1
        return
    try:
        source_bytes = read_source(root, key, size)[0]  # None: larger now
    except FileNotFoundError:
        return  # moved away since ingest: the manifest's hash still proves the bytes
    except OSError as exc:
        result.fail(key, f"cannot read the source file: {exc.strerror or exc}")
        return
    result.sources_checked += 1
    # The stored bytes were proven against their hash above: compare bytes directly.
    if source_bytes != store.get(key):
        result.fail(key, "source file changed after ingest; run `dvc repro` again")


def run(
    store_path: Path,
    manifest: Path,
    incoming: Path,
    pack_report: Path,
    catalog: Path,
    report: Path,
    progress: Progress | None = None,
    full: bool = False,
) -> Validation:
    """The validate stage: the store, then the catalog (if the store is whole), then the
    staged images; the report is written either way, and `result.check()` raises
    ValidationError naming the first problem."""
    if not store_path.exists():
        raise ValidationError(
            f"{store_path}: no such store; run `dvc repro` to pack one, or "
            f"`dvc pull {store_path}` to fetch the last one"
        )
    store = ImageStore(store_path)
    result = validate_store(store, progress, full)
    not_packed: dict[str, str] = {}
    if pack_report.exists():
        not_packed = json.loads(pack_report.read_text(encoding="utf-8")).get("not_packed", {})
    if not result.failures:
        validate_catalog(store, catalog, result)
        validate_columns(store, catalog, result)
    if manifest.exists():
        validate_staged(store, manifest, incoming, not_packed, result)
    result.store_path, result.report_path = store_path, report
    write_json(report, result.report())
    if not result.failures:
        cache.save(PROVEN, result.proven)  # only what this store is made of now
    return result
