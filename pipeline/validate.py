"""Validate: prove every record in the store is intact, and every staged image is in it.

Reads the store read-only. Recomputes each image's hash and size, parses each record,
recomputes the header's count, byte total and content digest, and checks each staged
image (unless pack reported why it was not packed) against the store and against its
source file, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import lmdb.verify as lmdb_verify

from .catalog import catalog_digest, catalog_parts
from .manifest import read_manifest
from .store import ImageStore, ShardedImageStore, StoreError
from .store.format import digest_entry
from .store.sharded import shard_name


@dataclass
class Validation:
    records: int = 0
    bytes_checked: int = 0
    staged_checked: int = 0
    sources_checked: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def fail(self, key: str, problem: str) -> None:
        self.failures.append({"key": key, "problem": problem})

    def report(self) -> dict[str, Any]:
        return {
            "ok": not self.failures,
            "records": self.records,
            "bytes_checked": self.bytes_checked,
            "staged_checked": self.staged_checked,
            "sources_checked": self.sources_checked,
            "failures": self.failures,
        }


def verify_structure(path: Path) -> list[str]:
    """LMDB's own invariants, checked by py-lmdb's offline verifier.

    It reads the file as bytes and never hands it to the engine, so damage to LMDB's
    pages is reported here instead of crashing whatever opens the file next.
    """
    try:
        return list(lmdb_verify.verify(str(path), subdir=False))
    except lmdb_verify.VerifyError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"cannot read: {exc.strerror}"]


def validate_store(store: ImageStore, progress=None) -> Validation:
    """Check the file's structure, then every record against its bytes and the header.
    A sharded store: every shard so, then the index against the shards.

    `progress`, if given, is a tqdm-like bar: reset to the record count, then updated.
    """
    if isinstance(store, ShardedImageStore):
        return _validate_sharded(store, progress)
    return _validate_file(store, progress)


def _validate_sharded(store: ShardedImageStore, progress=None) -> Validation:
    result = Validation()
    try:
        index, shards = store.index, store.shards
    except StoreError as exc:
        result.fail("(index)", str(exc))
        return result
    if progress is not None:
        progress.reset(total=index["count"])
    for entry in shards:
        name = entry["name"]
        path = store.path / name
        if not path.exists():
            result.fail(name, "shard listed in the index is missing; `dvc pull` or "
                              "`dvc checkout` brings it back")
            continue
        part = _validate_file(store.shard(name), progress, reset=False)
        result.records += part.records
        result.bytes_checked += part.bytes_checked
        result.failures += [{"key": f"{name}: {f['key']}", "problem": f["problem"]}
                            for f in part.failures]
        if part.failures:
            continue
        header = store.shard(name).header
        if shard_name(header["content_digest"]) != name:
            result.fail(name, "shard's content does not match its name")
        for field_name in ("count", "total_bytes", "content_digest"):
            if header[field_name] != entry[field_name]:
                result.fail(name, f"index says {field_name} {entry[field_name]}, the shard "
                                  f"has {header[field_name]}")
    listed = {entry["name"] for entry in shards}
    strays = sorted(p.name for p in store.path.glob("shard-*.lmdb") if p.name not in listed)
    if strays:
        result.fail("(index)", f"{len(strays)} shard file(s) not in the index, left by an "
                               f"interrupted pack ({strays[0]}...): run pack to remove them")
    if result.failures:
        return result
    if index["count"] != result.records:
        result.fail("(index)", f"index says {index['count']} images, the shards hold "
                               f"{result.records}")
    previous = None
    for key, _raw in store.raw_records():
        if key == previous:
            result.fail(key, "the same key is in two shards")
        previous = key
    return result


def _validate_file(store: ImageStore, progress=None, reset: bool = True) -> Validation:
    result = Validation()
    problems = verify_structure(store.path)
    if problems:
        for problem in problems[:20]:
            result.fail("(lmdb)", problem)
        return result  # opening a structurally damaged file through LMDB could crash
    if progress is not None and reset:
        progress.reset(total=len(store))
    header = store.header
    content = hashlib.sha256()
    total = 0
    try:
        for record in store.records():
            key = record.key
            result.records += 1
            content.update(digest_entry(key.encode("utf-8"), record.encode()))
            if not isinstance(record.metadata, dict):
                result.fail(key, "metadata is not a JSON object")
                continue
            total += record.info.size
            try:
                data = store.get(key)
            except KeyError:
                result.fail(key, "record has no image bytes")
                continue
            result.bytes_checked += len(data)
            if len(data) != record.info.size:
                result.fail(key, f"image is {len(data)} bytes, its record says {record.info.size}")
            elif hashlib.sha256(data).hexdigest() != record.info.sha256:
                result.fail(key, "image bytes do not match their sha256: the store is corrupt")
            if progress is not None:
                progress.update()
    except (ValueError, KeyError, TypeError, lmdb.Error) as exc:
        result.fail("(store)", f"a record does not parse after {result.records} good ones: {exc}")
        return result
    counts = store.stat()
    if counts["images"] != counts["records"]:
        result.fail("(store)", f"{counts['images']} images but {counts['records']} records")
    if header["count"] != result.records:
        result.fail("(header)", f"header says {header['count']} images, the store has "
                                f"{result.records}")
    if header["total_bytes"] != total:
        result.fail("(header)", f"header says {header['total_bytes']} bytes, records add up "
                                f"to {total}")
    if header["content_digest"] != content.hexdigest():
        result.fail("(header)", "content digest does not match the records")
    return result


def validate_catalog(store: ImageStore, catalog: Path, result: Validation) -> None:
    """The catalog folder must list exactly the store's records, file by file."""
    if not catalog.is_dir():
        result.fail("(catalog)", f"{catalog} is missing; run pack to write it")
        return
    parts = catalog_parts(store)
    for name, _part, digest in parts:
        path = catalog / name
        if not path.exists():
            result.fail("(catalog)", f"{path} is missing; run pack to rewrite it")
            continue
        try:
            _count, found = catalog_digest(read_manifest(path))
        except (ValueError, KeyError, TypeError) as exc:
            result.fail("(catalog)", f"{path} does not parse: {exc}")
            continue
        if found != digest:
            result.fail("(catalog)", f"{path} does not match the store; run pack to "
                                     "rewrite it")
    extra = sorted({p.name for p in catalog.glob("*.jsonl")} - {n for n, _, _ in parts})
    if extra:
        result.fail("(catalog)", f"{catalog} has files for no part of the store: "
                                 f"{', '.join(extra[:3])}")


def validate_staged(store: ImageStore, manifest: Path, incoming: Path,
                    not_packed: dict[str, str], result: Validation) -> None:
    """Check each staged image is stored, byte-identical to what ingest hashed and to its
    source file (while that file is still there)."""
    damaged = {failure["key"] for failure in result.failures}  # already reported
    for staged in read_manifest(manifest):
        key = staged.key
        if key in not_packed or key in damaged:
            continue
        result.staged_checked += 1
        try:
            stored = store.info(key)
        except KeyError:
            result.fail(key, "staged but missing from the store")
            continue
        if stored.sha256 != staged.info.sha256:
            result.fail(key, "stored bytes differ from the staged file's")
            continue
        source = os.path.join(incoming, key)
        try:
            with open(source, "rb") as fh:
                source_bytes = fh.read()
        except FileNotFoundError:
            continue  # moved away since ingest: the manifest's hash still proves the bytes
        except OSError as exc:
            result.fail(key, f"cannot read the source file: {exc.strerror}")
            continue
        result.sources_checked += 1
        # The stored bytes were proven against their hash above: compare bytes directly.
        if source_bytes != store.get(key):
            result.fail(key, "source file changed after ingest; run `dvc repro` again")
