"""The catalog: every record of the store (no image bytes), one JSON line per image.

Pack writes it beside the store, in data/catalog/, and DVC versions it with the store, so
two versions of the dataset can be compared (`imageshelf diff`) by fetching small files
instead of whole stores: one file per part of the store (one for a single file, one per
shard), named after the part. Lines are sorted by key and canonical, so the same store
always gives the same catalog, byte for byte.
"""

from __future__ import annotations

import filecmp
import hashlib
import heapq
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..base.atomic import publish, temporary, write_error
from ..errors import ShelfError
from ..project.paths import revision_catalog
from ..records.columns import columns_digest, columns_name, has_pyarrow, write_columns
from ..records.manifest import encode_stored_line, parse_records, read_manifest, read_stored_lines
from ..store import ImageStore, Part, Record
from ..store.format import digest_entry


class CatalogError(ShelfError):
    """A catalog that cannot be read, here or at a git revision."""


def catalog_name(part: Part) -> str:
    """The catalog file of a part: `images.jsonl` for `images.lmdb`, `shard-....jsonl`
    for a shard, so adding a shard adds a catalog file and changes none."""
    return Path(part.name).stem + ".jsonl"


def catalog_parts(store: ImageStore) -> list[tuple[str, Part]]:
    """(catalog file name, the part it lists), for every part. Opens none of them."""
    return [(catalog_name(part), part) for part in store.parts]


def write_catalog(store: ImageStore, folder: Path) -> bool:
    """Bring the catalog folder in line with the store; True if anything changed.

    Each file is written beside, then renamed into place, and only when its content
    differs; files of parts that are gone are removed.
    """
    try:
        return _write_catalog(store, folder)
    except OSError as exc:
        raise write_error(folder, exc) from None


def _write_catalog(store: ImageStore, folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    changed = False
    wanted = set()
    for name, part in catalog_parts(store):
        wanted.add(name)
        source = store.part(part.name)
        path = folder / name
        if not (part.named_by_content and path.exists()):  # a shard's: exactly this already
            changed |= _written(path, partial(_write_lines, source.raw_records))
        columns = folder / columns_name(part)
        wanted.add(columns.name)
        if columns_digest(columns) != part.content_digest and has_pyarrow():
            changed |= _written(columns, partial(write_columns, source.raw_records, part))
    for old in [*folder.glob("*.jsonl"), *folder.glob("*.parquet")]:
        if old.name not in wanted:
            old.unlink()
            changed = True
    return changed


def _write_lines(records: Callable[[], Iterable[tuple[str, bytes]]], out: Any) -> None:
    for key, raw in records():
        out.write(encode_stored_line(key, raw))


def _written(path: Path, write: Callable[[Any], None]) -> bool:
    """Write a file beside `path` and rename it into place, unless it holds exactly
    what `path` holds already; True if it was replaced."""
    with temporary(path) as temp:
        with open(temp, "w+b") as out:
            write(out)
        if path.is_file() and filecmp.cmp(temp, path, shallow=False):  # a pipe: replaced
            return False
        publish(temp, path, durable=False)
        return True


def catalog_file_digest(path: Path) -> tuple[int, str]:
    """Count and content digest of a catalog file's records, computed as the store's
    header does, from each line's bytes (a line not written as pack writes it gives a
    digest that matches nothing); ManifestError naming the line if one is not a record."""
    content = hashlib.sha256()
    count = 0
    for key, raw in read_stored_lines(path):
        content.update(digest_entry(key.encode("utf-8"), raw))
        count += 1
    return count, content.hexdigest()


# ------------------------------------------------------------------------ diff


@dataclass
class CatalogDiff:
    added: list[Record] = field(default_factory=list)
    removed: list[Record] = field(default_factory=list)
    changed: list[tuple[Record, Record]] = field(default_factory=list)  # bytes differ
    relabeled: list[tuple[Record, Record]] = field(default_factory=list)  # metadata only

    def to_json(self) -> dict[str, Any]:
        def entry(record: Record) -> dict[str, Any]:
            return {"key": record.key, "sha256": record.info.sha256, "size": record.info.size}

        def pair(old: Record, new: Record) -> dict[str, Any]:
            return {
                "key": new.key,
                "old_sha256": old.info.sha256,
                "new_sha256": new.info.sha256,
                "fields": field_changes(old, new),
            }

        return {
            "added": [entry(r) for r in self.added],
            "removed": [entry(r) for r in self.removed],
            "changed": [pair(a, b) for a, b in self.changed],
            "relabeled": [pair(a, b) for a, b in self.relabeled],
            "summary": {
                "added": len(self.added),
                "removed": len(self.removed),
                "changed": len(self.changed),
                "relabeled": len(self.relabeled),
            },
        }


def field_changes(old: Record, new: Record) -> dict[str, list[Any]]:
    """Metadata fields (and the split, and each paired image: `paired.mask`, by its
    sha256) that differ: name -> [old, new]; absent is None."""
    before = {**old.metadata, "split": old.split, **_paired_fields(old)}
    after = {**new.metadata, "split": new.split, **_paired_fields(new)}
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def _paired_fields(record: Record) -> dict[str, str]:
    return {f"paired.{role}": p.info.sha256 for role, p in record.paired.items()}


def diff_catalogs(old: Iterable[Record], new: Iterable[Record]) -> CatalogDiff:
    """Walk two key-sorted catalogs side by side."""
    result = CatalogDiff()
    a_iter, b_iter = iter(old), iter(new)
    a, b = next(a_iter, None), next(b_iter, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key.encode() < b.key.encode()):
            assert a is not None
            result.removed.append(a)
            a = next(a_iter, None)
        elif a is None or b.key.encode() < a.key.encode():
            result.added.append(b)
            b = next(b_iter, None)
        else:
            if a.info != b.info:
                result.changed.append((a, b))
            elif a.metadata != b.metadata or a.split != b.split or a.paired != b.paired:
                result.relabeled.append((a, b))
            a, b = next(a_iter, None), next(b_iter, None)
    return result


class CatalogFolder:
    """The files of a catalog folder (in the workspace or at a git revision), read only
    when asked: a diff never reads the shards' catalogs that both versions share."""

    def __init__(
        self,
        names: Iterable[str],
        read: Callable[[str], list[Record]],
        where: str,
        columns: Iterable[str] = (),
        read_bytes: Callable[[str], bytes] | None = None,
    ) -> None:
        self.names = set(names)
        self.read = read
        self.where = where  # the folder, as its repository names it
        self.columns = set(columns)  # its columnar files (records/columns.py)
        self.read_bytes = read_bytes  # a file's bytes, as checked as `read` checks them

    def columns_of(self, name: str) -> str:
        """The columnar file of the catalog file `name`: images.parquet for images.jsonl."""
        return name[: -len(".jsonl")] + ".parquet"

    @property
    def has_columns(self) -> bool:
        """Whether every catalog file has its columnar file beside it."""
        return bool(self.names) and all(self.columns_of(n) in self.columns for n in self.names)

    @classmethod
    def local(cls, folder: Path) -> CatalogFolder:
        def read(name: str) -> list[Record]:
            return list(read_manifest(folder / name))

        def read_bytes(name: str) -> bytes:
            return (folder / name).read_bytes()

        names = [p.name for p in folder.glob("*.jsonl")]
        columns = [p.name for p in folder.glob("*.parquet")]
        return cls(names, read, str(folder), columns, read_bytes)


def catalog_at(
    rev: str | None,
    folder: str | os.PathLike[str] | None,
    repo: str | os.PathLike[str] = ".",
    named: str | None = None,
) -> CatalogFolder:
    """The catalog folder as it was at git revision `rev` (None: `folder` as it is now in
    the workspace), read through DVC from its cache or remote, file by file on demand;
    `folder` None: where that revision's dvc.yaml puts it. A revision without a catalog
    had no store yet: no files (its `names` are empty). `named`: the revision as the user
    gave it (HEAD~2), for a message."""
    if rev is None:
        if folder is None:
            raise TypeError("the workspace's catalog is read from the folder given")
        folder = Path(folder)
        if not folder.is_dir():
            raise CatalogError(
                f"{folder}: no catalog in the workspace; run `dvc repro` (or `dvc pull`) first"
            )
        return CatalogFolder.local(folder)
    # Read as dvc.lock records it, each file checked against its md5 and bounded by its
    # recorded size: a revision (here or in another repository) is someone else's
    # commit, and its `.dir` manifest could name any file (repo/source.py).
    from ..repo.source import Source  # only diff needs DVC, and only here

    source = Source(os.fspath(repo), rev, shown=named)
    where = Path(folder).as_posix() if folder is not None else revision_catalog(source)
    files = source.listing(where) if source.holds(where) else None
    names = [name for name in files or () if "/" not in name and name.endswith(".jsonl")]
    columns = [name for name in files or () if "/" not in name and name.endswith(".parquet")]

    def read(name: str) -> list[Record]:
        path = f"{where}/{name}"
        return list(parse_records(source.read(path).splitlines(), path))

    def read_bytes(name: str) -> bytes:
        return bytes(source.read(f"{where}/{name}"))

    return CatalogFolder(names, read, where, columns, read_bytes)


def diff_catalog_folders(old: CatalogFolder, new: CatalogFolder) -> CatalogDiff:
    """Diff two versions. A shard's catalog is named by the shard's content, so a name in
    both versions means the same records on both sides: skipped unread. Keys are unique
    within a version, so none of the skipped keys can appear among the rest."""
    shared = {name for name in old.names & new.names if name.startswith("shard-")}

    def records(folder: CatalogFolder) -> list[Record]:
        streams = [folder.read(name) for name in sorted(folder.names - shared)]
        return list(heapq.merge(*streams, key=lambda record: record.key))

    return diff_catalogs(records(old), records(new))
