"""`imageshelf sql`: questions of a version of the dataset in SQL, answered by DuckDB
(the `sql` extra) over the catalog pack writes beside the store, never the image bytes.

The table `images` has a row per image, as the catalog's columnar form holds it
(records/columns.py): the store's columns (`key`, `split`, `format`, `width`,
`height`, `size`, `sha256`), `paired` (the roles of its paired images), `props` (what
its pixels measure, a struct: `props.p99`), `meta` (the whole metadata, as JSON:
`meta->>'label'`) and every field of the metadata as a column of its own (`label`,
`objects`, `text`...). Nested values are DuckDB's: `UNNEST(objects)` gives a row per
box. A field whose values disagree in type is JSON.

Another version is a table too: `--rev before=HEAD~1` names the version at HEAD~1
`before`, beside the workspace's `images`, for questions of change.

Why DuckDB: it reads the Parquet files in place, on every core, skipping the row
groups a filter cannot match, and counts ten million boxes of a million images by
category and split in 0.46 s (benchmarks/results-columnar.md). Polars' DataFrames did
that in 0.13 s, but its SQL has no UNNEST of a list of structs in a FROM (0.92 s with
UNNEST in the SELECT), and the feature is SQL. The workspace's files are
read where they lie, each checked to be of the store's records (its footer names the
part's content digest; `validate` proves it byte for byte); a revision's are read
through DVC as `diff` reads them, each checked against dvc.lock's md5. A version whose
columnar files are missing or stale (one written before they existed) is read from
its JSON Lines instead, and the answer says so.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from ..records.columns import footer_fits
from ..store import ImageStore
from ..versions.catalog import CatalogFolder, catalog_at, catalog_file_digest

STORE_COLUMNS = ("key", "split", "format", "width", "height", "size", "sha256")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SqlError(ShelfError):
    """A question DuckDB could not answer, or no DuckDB: the reason in one line."""


@dataclass
class Version:
    """A version of the catalog as a table: its name in SQL, its folder (the workspace's
    or a revision's), and the content digest of each store part, where known, that its
    columnar files must name."""

    name: str
    folder: CatalogFolder
    local: Path | None = None  # the folder itself, where DuckDB may read it in place
    digests: dict[str, str] | None = None  # catalog file name -> its part's digest
    notes: list[str] = field(default_factory=list)


def connect() -> Any:
    try:
        import duckdb
    except ImportError:
        raise SqlError(
            "imageshelf sql needs DuckDB (the sql extra): pip install 'imageshelf[sql]'"
        ) from None
    return duckdb.connect()


def answer(query: str, versions: list[Version]) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `query` over the versions, each a table."""
    import duckdb

    connection = connect()
    with ExitStack() as stack:
        sources = [stack.enter_context(_files(version)) for version in versions]
        allowed = [path for kind, paths in sources for path in paths]
        connection.sql(f"SET allowed_paths = {_list(allowed)}")
        for version, (kind, paths) in zip(versions, sources, strict=True):
            try:
                if kind == "parquet":
                    _parquet_view(connection, version.name, paths)
                else:
                    _json_view(connection, version.name, paths)
            except duckdb.Error as exc:
                raise SqlError(
                    f"{version.folder.where}: the catalog cannot be read: {_one_line(exc)}"
                ) from None
        # The question reads these files and nothing else: no file read or written, no
        # setting changed back (COPY ... TO, read_csv('/etc/...'), ATTACH are refused).
        connection.sql("SET enable_external_access = false")
        connection.sql("SET lock_configuration = true")
        try:
            result = connection.sql(query)
            if result is None:
                return [], []
            return list(result.columns), result.fetchall()
        except duckdb.Error as exc:
            raise SqlError(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:500]


@contextmanager
def _files(version: Version) -> Iterator[tuple[str, list[str]]]:
    """("parquet" or "json", the files DuckDB reads): in place for the workspace, else
    written from what DVC gave (checked) to a temporary folder removed afterwards."""
    folder = version.folder
    names = sorted(folder.names)
    if not names:
        raise SqlError(f"{folder.where}: the catalog holds no image; nothing to ask")
    columnar = [folder.columns_of(name) for name in names]
    fresh = folder.has_columns and _fresh(version, names)
    if version.local is not None:
        chosen = [version.local / n for n in (columnar if fresh else names)]
        odd = next((path for path in chosen if not path.is_file()), None)
        if odd is not None:  # a pipe or a folder: DuckDB would wait on it, or fail oddly
            raise SqlError(f"{odd}: not a regular file; `dvc checkout` or `dvc repro` puts it back")
        yield ("parquet" if fresh else "json"), [str(path) for path in chosen]
        return
    with tempfile.TemporaryDirectory(prefix="imageshelf-sql-") as scratch:
        files = []
        if fresh:
            assert folder.read_bytes is not None
            for columns in columnar:
                path = Path(scratch) / columns
                path.write_bytes(folder.read_bytes(columns))
                files.append(str(path))
            if not all(footer_fits(Path(f)) for f in files):
                version.notes.append(
                    f"{folder.where}: a Parquet file is not ours; read from the JSON Lines"
                )
                fresh, files = False, []
        if not fresh:
            for name in names:
                path = Path(scratch) / name
                _write_records(folder, name, path)
                files.append(str(path))
        yield ("parquet" if fresh else "json"), files


def _fresh(version: Version, names: list[str]) -> bool:
    """Whether each columnar file of a workspace's catalog names its part's digest: the
    store's, or else its JSON Lines' (read whole). A revision's files are pinned to each
    other by dvc.lock's md5s: fresh. A stale or missing one is a note, and the answer is
    read from the JSON Lines."""
    folder, local = version.folder, version.local
    if local is None:
        return True
    from ..records.columns import columns_digest  # checks the footer's size too

    for name in names:
        path = local / folder.columns_of(name)
        wanted = (version.digests or {}).get(name)
        if wanted is None:
            wanted = catalog_file_digest(local / name)[1]
        if columns_digest(path) != wanted:
            version.notes.append(
                f"{path} is missing or not of the store's records (`dvc repro` writes "
                "it); answered from the JSON Lines, more slowly"
            )
            return False
    return True


def _write_records(folder: CatalogFolder, name: str, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in folder.read(name):
            out.write(json.dumps({"key": record.key, **record.to_json()}) + "\n")


def _parquet_view(connection: Any, name: str, files: list[str]) -> None:
    """The view `name` over columnar files: JSON text columns read as JSON."""
    found = connection.sql(
        f"SELECT value FROM parquet_kv_metadata({_list(files)}) "
        "WHERE key = 'imageshelf.json_columns'"
    ).fetchall()
    as_json = {"meta"}
    for (value,) in found:
        as_json.update(n for n in json.loads(value) if isinstance(n, str))
    replace = ", ".join(f"CAST({_quoted(n)} AS JSON) AS {_quoted(n)}" for n in sorted(as_json))
    source = f"read_parquet({_list(files)}, union_by_name=true)"
    connection.sql(f"CREATE VIEW {name} AS SELECT * REPLACE ({replace}) FROM {source}")


def _json_view(connection: Any, name: str, files: list[str]) -> None:
    """The view `name` over JSON Lines (a version from before the columnar form): the
    store's columns, each metadata field as a column, and `meta` and `props` whole."""
    source = (
        f"read_json({_list(files)}, format='newline_delimited', "
        "sample_size=-1, union_by_name=true, maximum_object_size=16777216)"
    )
    raw = f"raw_{name}"
    connection.sql(f"CREATE TEMP TABLE {raw} AS SELECT * FROM {source}")
    columns = {row[0]: row[1] for row in connection.sql(f"DESCRIBE {raw}").fetchall()}
    fields = _struct_fields(connection, raw, "meta") if "meta" in columns else []
    picked = [_quoted(n) for n in STORE_COLUMNS if n in columns]
    picked += [f"meta.{_quoted(n)} AS {_quoted(n)}" for n in fields if n not in STORE_COLUMNS]
    if "meta" in columns:
        picked.append("CAST(to_json(meta) AS JSON) AS meta")
    if "props" in columns:
        picked.append("props")
    connection.sql(f"CREATE VIEW {name} AS SELECT {', '.join(picked)} FROM {raw}")


def _struct_fields(connection: Any, table: str, column: str) -> list[str]:
    found = connection.sql(f"SELECT {column} FROM {table} LIMIT 0").types[0]
    children = getattr(found, "children", None)
    return [name for name, _type in children] if children else []


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def versions_for(
    revs: tuple[str, ...], folder: Path, given: Path | None, store: Path
) -> list[Version]:
    """The tables to ask: `images`, the workspace's (read in place) or the one `--rev
    REV` names; and each `--rev NAME=REV` as the table NAME."""
    named: dict[str, str] = {}
    for text in revs:
        name, _, rev = text.rpartition("=") if "=" in text else ("images", "", text)
        if not _NAME.match(name):
            raise SqlError(f"--rev {text!r}: a table's name is a letter, then letters, digits, _")
        if name.lower() in {n.lower() for n in named}:
            raise SqlError(f"--rev {text!r}: two versions named {name}")
        named[name] = rev
    versions = [] if "images" in named else [_workspace(folder, store)]
    return versions + [_revision(name, rev, given) for name, rev in named.items()]


def _workspace(folder: Path, store: Path) -> Version:
    if not store.exists():
        return workspace_version(folder, None)
    with ImageStore(store) as opened:
        return workspace_version(folder, opened)


def workspace_version(folder: Path, store: ImageStore | None) -> Version:
    """The workspace's catalog as the table `images`, read in place; its columnar files
    checked against `store`'s parts (None: against its JSON Lines, read whole)."""
    from ..versions.catalog import catalog_parts

    digests = None if store is None else {n: p.content_digest for n, p in catalog_parts(store)}
    return Version("images", catalog_at(None, folder), folder, digests)


def _revision(name: str, rev: str, given: Path | None) -> Version:
    from ..versions.history import resolve_revision

    commit = resolve_revision(rev)
    return Version(name, catalog_at(commit, given, ".", named=rev))


def written(columns: list[str], rows: list[tuple], how: str) -> Iterator[str]:
    """The answer as lines: `table` (aligned, for a terminal), `csv` or `json` (a JSON
    object per row)."""
    if how == "json":
        for row in rows:
            yield json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False)
        return
    if how == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        yield from out.getvalue().splitlines()
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    yield "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    for line in cells:
        yield "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
    yield f"({len(rows)} row{'s' if len(rows) != 1 else ''})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


__all__ = [
    "SqlError",
    "Version",
    "answer",
    "connect",
    "versions_for",
    "workspace_version",
    "written",
]
