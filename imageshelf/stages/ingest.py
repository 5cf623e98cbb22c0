"""Ingest: find what arrived in the incoming folder, check it, hash it, read its metadata.

Every file is staged (it goes into the manifest that pack merges), read as annotations
(annotations.py: tables, sidecars, COCO, YOLO, VOC), ignored by a pattern of
`annotations.ignore` (listed in the report), or rejected with a reason in the report.
Whether a file is an image is decided by its content. The metadata staged with an image
is what arrived with it; pack merges it into the store and never removes a field for it.
An annotation file that does not parse fails the stage, naming it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotations import Annotations, KeyIndex, read_place
from ..atomic import write_json
from ..errors import ShelfError
from ..images import NotAnImageError, describe
from ..manifest import write_manifest
from ..params import AnnotationsParams, IngestParams
from ..progress import Progress
from ..store import InvalidKeyError, Record, encode_key
from ..store.format import canonical_json
from ..walk import Reject, shown, walk


@dataclass
class IngestResult:
    staged: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unused_metadata: list[str] = field(default_factory=list)
    annotation_files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
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
            "annotation_files": self.annotation_files,
            "unused_metadata": self.unused_metadata,
            "ignored": self.ignored,
        }


class IngestError(ShelfError):
    """The incoming folder is missing, or strict mode found files it could not use."""


class _Examiner:
    """Turns one candidate file into a Record or a Reject. Runs in worker processes."""

    def __init__(self, root: str, params: IngestParams, annotations: Annotations) -> None:
        self.root = root
        self.params = params
        self.annotations = annotations

    def __call__(self, rel: str) -> Record | Reject:
        try:
            encode_key(rel)
        except InvalidKeyError as exc:
            code = "key_too_long" if "at most" in str(exc) else "bad_key"
            return Reject(shown(rel), code, str(exc))
        broken = self.annotations.broken.get(rel)
        if broken is not None:
            return Reject(shown(rel), "bad_metadata", broken)
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
            record = describe(rel, data, None, self.params.max_pixels)
        except NotAnImageError as exc:
            return Reject(shown(rel), exc.code, exc.reason)
        metadata = self.annotations.for_image(rel, record.info.width, record.info.height)
        if len(canonical_json(metadata)) > self.params.max_metadata_bytes:
            return Reject(
                shown(rel),
                "bad_metadata",
                f"metadata is over {self.params.max_metadata_bytes:,} bytes "
                "(ingest.max_metadata_bytes)",
            )
        return Record(rel, record.info, metadata)


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


def ingest(
    incoming: Path,
    params: IngestParams,
    rules: AnnotationsParams | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Examine everything under `incoming`; return staged records (sorted) and rejects.

    `progress`, if given, is reset to the number of files, then updated per file.
    """
    rules = rules or AnnotationsParams()
    root = str(incoming)
    found = walk(root, rules.ignore)
    if progress is not None:
        progress.reset(total=len(found.files))
    annotations = read_place(
        root, found.annotations, KeyIndex(found.files), params.max_metadata_bytes
    )
    examine = _Examiner(root, params, annotations)
    result = IngestResult(
        rejects=list(found.rejects),
        scanned=len(found.files),
        annotation_files=[shown(f) for f in annotations.files],
        unused_metadata=[shown(u) for u in annotations.unused],
        ignored=found.ignored,
    )
    for outcome in _examine_all(examine, found.files):
        if isinstance(outcome, Reject):
            result.rejects.append(outcome)
        else:
            result.staged.append(outcome)
        if progress is not None:
            progress.update()
    result.staged.sort(key=lambda r: r.key.encode("utf-8"))
    result.rejects.sort(key=lambda r: r.path)
    return result


def run(
    incoming: Path,
    manifest: Path,
    report: Path,
    params: IngestParams,
    rules: AnnotationsParams | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """The ingest stage: examine the incoming folder, write the staged manifest and the
    report. Strict mode (`ingest.strict`) is the caller's to enforce, after it has told
    the user what was rejected: `result.check_strict()`."""
    if not incoming.is_dir():
        raise IngestError(f"{incoming}: no such folder; new images go there")
    result = ingest(incoming, params, rules, progress)
    write_manifest(manifest, result.staged)
    write_json(report, result.report())
    return result
