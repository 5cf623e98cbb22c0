"""Ingest: find what arrived in the incoming folder, check it, hash it, read its metadata.

Every file is either staged (it goes into the manifest that pack merges) or rejected with
a reason in the report. Metadata comes from, in increasing precedence:
`labels.csv`, then `metadata.jsonl` in any folder (rows keyed by path relative to that
folder; outer folders first), then a sidecar `NAME.json`, then `NAME.EXT.json` beside
the image. These metadata files are never images themselves.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import stat
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..atomic import write_json
from ..errors import ShelfError
from ..images import NotAnImageError, describe
from ..manifest import write_manifest
from ..params import IngestParams
from ..progress import Progress
from ..store import InvalidKeyError, Record, encode_key
from ..store.format import canonical_json

LABELS_CSV = "labels.csv"
METADATA_JSONL = "metadata.jsonl"
PATH_COLUMNS = ("path", "file", "filename", "image", "key")
IGNORED_NAMES = {".gitkeep", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Reject:
    path: str
    code: str
    reason: str


@dataclass
class IngestResult:
    staged: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unused_metadata: list[str] = field(default_factory=list)
    scanned: int = 0

    @property
    def staged_bytes(self) -> int:
        return sum(r.info.size for r in self.staged)

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
            "staged": len(self.staged),
            "staged_bytes": self.staged_bytes,
            "rejected": len(self.rejects),
            "rejected_by_reason": dict(sorted(by_code.items())),
            "rejects": [{"path": r.path, "code": r.code, "reason": r.reason} for r in self.rejects],
            "unused_metadata": self.unused_metadata,
        }


def shown(relpath: str) -> str:
    """A path as it can be printed and stored in JSON, even if the name is not UTF-8."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")


@dataclass
class _Found:
    """What the walk found: image candidates and metadata files, by relative path."""

    files: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # labels.csv / metadata.jsonl
    sidecars: set[str] = field(default_factory=set)
    rejects: list[Reject] = field(default_factory=list)


class IngestError(ShelfError):
    """The incoming folder is missing, or strict mode found files it could not use."""


def _walk(root: str) -> _Found:
    found = _Found()
    real_root = os.path.realpath(root)
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder)) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            found.rejects.append(
                Reject(shown(folder), "unreadable", f"cannot list folder: {exc.strerror}")
            )
            continue
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.name in IGNORED_NAMES:
                continue
            try:
                if entry.is_symlink():
                    problem = _symlink_problem(entry.path, real_root)
                    if problem:
                        found.rejects.append(Reject(shown(rel), problem[0], problem[1]))
                        continue
                    mode = os.stat(entry.path).st_mode
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                found.rejects.append(
                    Reject(shown(rel), "unreadable", f"cannot stat: {exc.strerror}")
                )
                continue
            if stat.S_ISDIR(mode):
                pending.append(rel)
            elif not stat.S_ISREG(mode):
                found.rejects.append(
                    Reject(shown(rel), "not_file", "not a regular file (a pipe, socket or device)")
                )
            elif entry.name in (LABELS_CSV, METADATA_JSONL):
                found.tables.append(rel)
            elif entry.name.endswith(".json"):
                found.sidecars.add(rel)
            else:
                found.files.append(rel)
    return found


def _symlink_problem(path: str, real_root: str) -> tuple[str, str] | None:
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return ("symlink", "symlink loop")
        return ("symlink", f"broken symlink ({exc.strerror})")
    if target != real_root and not target.startswith(real_root + os.sep):
        return ("symlink", f"symlink leads outside the incoming folder (to {target})")
    if os.path.isdir(target):
        return ("symlink", "symlink to a folder: not followed, so nothing is counted twice")
    return None


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _read_tables(root: str, found: _Found) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Metadata rows from labels.csv and metadata.jsonl files, keyed by image key."""
    rows: dict[str, dict[str, Any]] = defaultdict(dict)
    origins: set[str] = set()
    # Outer folders first, CSV before JSONL: inner and later sources win field by field.
    order = sorted(found.tables, key=lambda rel: (rel.count("/"), rel.endswith(".jsonl"), rel))
    for rel in order:
        folder = rel.rpartition("/")[0]
        prefix = f"{folder}/" if folder else ""
        try:
            with open(os.path.join(root, rel), encoding="utf-8", newline="") as fh:
                entries = list(_table_rows(rel, fh, found))
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            found.rejects.append(Reject(shown(rel), "bad_metadata", f"cannot read: {reason}"))
            continue
        for path, fields in entries:
            path = path.replace("\\", "/")
            while path.startswith("./"):
                path = path[2:]
            key = prefix + path
            rows[key].update(fields)
            origins.add(key)
    return rows, origins


def _table_rows(rel: str, fh: TextIO, found: _Found) -> Iterator[tuple[str, dict[str, Any]]]:
    if rel.endswith(".csv"):
        reader = csv.DictReader(fh)
        column = next((c for c in PATH_COLUMNS if c in (reader.fieldnames or [])), None)
        if column is None:
            found.rejects.append(
                Reject(
                    shown(rel), "bad_metadata", f"no path column (one of {', '.join(PATH_COLUMNS)})"
                )
            )
            return
        for row in reader:
            path = (row.pop(column) or "").strip()
            if path:
                yield path, {k: v for k, v in row.items() if k and v not in (None, "")}
        return
    for number, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            obj = _strict_json(line)
        except ValueError as exc:
            found.rejects.append(
                Reject(f"{shown(rel)}:{number}", "bad_metadata", f"invalid JSON: {exc}")
            )
            continue
        column = next((c for c in PATH_COLUMNS if isinstance(obj, dict) and c in obj), None)
        if column is None:
            found.rejects.append(
                Reject(
                    f"{shown(rel)}:{number}", "bad_metadata", "not a JSON object with a path field"
                )
            )
            continue
        yield str(obj.pop(column)), obj


class _Examiner:
    """Turns one candidate file into a Record or a Reject. Runs in worker threads."""

    def __init__(
        self, root: str, params: IngestParams, found: _Found, rows: dict[str, dict[str, Any]]
    ) -> None:
        self.root = root
        self.params = params
        self.sidecars = found.sidecars
        self.rows = rows

    def sidecars_of(self, rel: str) -> list[str]:
        stem = rel.rsplit(".", 1)[0] if "." in rel.rpartition("/")[2] else rel
        return [p for p in (f"{stem}.json", f"{rel}.json") if p in self.sidecars]

    def __call__(self, rel: str) -> Record | Reject:
        try:
            encode_key(rel)
        except InvalidKeyError as exc:
            code = "key_too_long" if "at most" in str(exc) else "bad_key"
            return Reject(shown(rel), code, str(exc))
        metadata = dict(self.rows.get(rel, {}))
        for sidecar in self.sidecars_of(rel):
            problem = self._merge_sidecar(sidecar, metadata)
            if problem:
                return Reject(shown(rel), "bad_metadata", problem)
        if len(canonical_json(metadata)) > self.params.max_metadata_bytes:
            return Reject(
                shown(rel),
                "bad_metadata",
                f"metadata is over {self.params.max_metadata_bytes:,} bytes "
                "(ingest.max_metadata_bytes)",
            )
        path = os.path.join(self.root, rel)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > self.params.max_file_bytes:
                    return Reject(
                        shown(rel),
                        "too_large",
                        f"file is {size:,} bytes, over ingest.max_file_bytes",
                    )
                data = fh.read()
        except OSError as exc:
            return Reject(shown(rel), "unreadable", f"cannot read: {exc.strerror}")
        try:
            return describe(rel, data, metadata, self.params.max_pixels)
        except NotAnImageError as exc:
            return Reject(shown(rel), exc.code, exc.reason)

    def _merge_sidecar(self, sidecar: str, metadata: dict[str, Any]) -> str | None:
        path = os.path.join(self.root, sidecar)
        name = sidecar.rpartition("/")[2]
        try:
            if os.path.getsize(path) > self.params.max_metadata_bytes:
                return (
                    f"metadata file {name} is over "
                    f"{self.params.max_metadata_bytes:,} bytes (ingest.max_metadata_bytes)"
                )
            with open(path, encoding="utf-8") as fh:
                obj = _strict_json(fh.read())
        except OSError as exc:
            return f"cannot read metadata file {name}: {exc.strerror}"
        except (ValueError, UnicodeDecodeError) as exc:
            return f"invalid metadata JSON in {name}: {exc}"
        if not isinstance(obj, dict):
            return f"metadata in {name} is a JSON {type(obj).__name__}, not an object"
        metadata.update(obj)
        return None


PARALLEL_FROM = 2000  # files; below this a process pool costs more than it saves
CHUNK = 256


def _examine_all(examine: _Examiner, files: list[str]) -> Iterator[Record | Reject]:
    """Examine files in order, on every core when there are many.

    The per-file work is mostly Python (header parsing, checks), so threads would queue
    on the GIL: forked processes take chunks of files and send back small records.
    """
    cores = os.cpu_count() or 1
    if cores < 2 or len(files) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        yield from map(examine, files)
        return
    global _worker_examine
    _worker_examine = examine  # inherited by the forked workers, never pickled
    try:
        with mp.get_context("fork").Pool(cores) as pool:
            yield from pool.imap(_examine_in_worker, files, chunksize=CHUNK)
    finally:
        _worker_examine = None


_worker_examine: _Examiner | None = None


def _examine_in_worker(rel: str) -> Record | Reject:
    assert _worker_examine is not None
    return _worker_examine(rel)


def ingest(incoming: Path, params: IngestParams, progress: Progress | None = None) -> IngestResult:
    """Examine everything under `incoming`; return staged records (sorted) and rejects.

    `progress`, if given, is reset to the number of files, then updated per file.
    """
    root = str(incoming)
    found = _walk(root)
    if progress is not None:
        progress.reset(total=len(found.files))
    rows, row_keys = _read_tables(root, found)
    examine = _Examiner(root, params, found, rows)
    result = IngestResult(rejects=list(found.rejects), scanned=len(found.files))
    for outcome in _examine_all(examine, found.files):
        if isinstance(outcome, Reject):
            result.rejects.append(outcome)
        else:
            result.staged.append(outcome)
        if progress is not None:
            progress.update()
    result.staged.sort(key=lambda r: r.key.encode("utf-8"))
    result.rejects.sort(key=lambda r: r.path)
    used = {r.key for r in result.staged} | {r.path for r in result.rejects}
    used_sidecars = {s for rel in found.files for s in examine.sidecars_of(rel)}
    result.unused_metadata = sorted(
        [shown(s) for s in found.sidecars - used_sidecars]
        + [f"row for {shown(k)}" for k in row_keys if k not in used and k not in found.files]
    )
    return result


def run(
    incoming: Path,
    manifest: Path,
    report: Path,
    params: IngestParams,
    progress: Progress | None = None,
) -> IngestResult:
    """The ingest stage: examine the incoming folder, write the staged manifest and the
    report. Strict mode (`ingest.strict`) is the caller's to enforce, after it has told
    the user what was rejected: `result.check_strict()`."""
    if not incoming.is_dir():
        raise IngestError(f"{incoming}: no such folder; new images go there")
    result = ingest(incoming, params, progress)
    write_manifest(manifest, result.staged)
    write_json(report, result.report())
    return result
