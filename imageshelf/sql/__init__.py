"""`imageshelf sql`: questions of a version of the dataset in SQL, answered by DuckDB
(the `sql` extra) over the catalog, the records pack writes beside the store, never the
image bytes.

The table `images` has a row per image: the store's own columns (`key`, `split`,
`format`, `width`, `height`, `size`, `sha256`), every field of its metadata as a column
of its own (`label`, `objects`, `text`...: a field named as a store column stays in
`meta` only), the whole metadata as the struct `meta` and the pixels' measures as the
struct `props`. Nested values are DuckDB's: `UNNEST(objects)` gives a row per box.

Why DuckDB over the catalog's JSON Lines: it reads them in parallel, infers nested types
(`objects` becomes a list of structs) and answers a group-by over a million rows in a
fraction of a second; Polars' SQL has no UNNEST of a list of structs in a FROM. The
workspace's catalog is read where it lies (pack wrote it; `validate` proves it equal to
the records); a revision's is read through DVC as `diff` reads it, each file checked
against dvc.lock's md5 (versions/catalog.py), and handed to DuckDB as validated records.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from ..versions.catalog import CatalogFolder, catalog_at

STORE_COLUMNS = ("key", "split", "format", "width", "height", "size", "sha256")


class SqlError(ShelfError):
    """A question DuckDB could not answer, or no DuckDB: the reason in one line."""


def connect() -> Any:
    try:
        import duckdb
    except ImportError:
        raise SqlError(
            "imageshelf sql needs DuckDB (the sql extra): pip install 'imageshelf[sql]'"
        ) from None
    return duckdb.connect()


def answer(query: str, folder: CatalogFolder, local: Path | None) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `query` over the catalog `folder`; `local`: the folder
    itself where DuckDB may read it in place (the workspace's)."""
    import duckdb

    connection = connect()
    with _json_files(folder, local) as files:
        if not files:
            raise SqlError(f"{folder.where}: the catalog holds no image; nothing to ask")
        try:
            _images_view(connection, files)
        except duckdb.Error as exc:
            raise SqlError(
                f"{folder.where}: the catalog cannot be read: {_one_line(exc)}"
            ) from None
        try:
            result = connection.sql(query)
        except duckdb.Error as exc:
            raise SqlError(_one_line(exc)) from None
        if result is None:
            return [], []
        try:
            return list(result.columns), result.fetchall()
        except duckdb.Error as exc:
            raise SqlError(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:500]


@contextmanager
def _json_files(folder: CatalogFolder, local: Path | None) -> Iterator[list[str]]:
    """The catalog's files as DuckDB reads them: in place, or written from its validated
    records to a temporary folder removed afterwards."""
    names = sorted(folder.names)
    if local is not None:
        yield [str(local / name) for name in names]
        return
    with tempfile.TemporaryDirectory(prefix="imageshelf-sql-") as scratch:
        files = []
        for name in names:
            path = Path(scratch) / name
            with path.open("w", encoding="utf-8") as out:
                for record in folder.read(name):
                    out.write(json.dumps({"key": record.key, **record.to_json()}) + "\n")
            files.append(str(path))
        yield files


def _images_view(connection: Any, files: list[str]) -> None:
    """The view `images` over the catalog files: the store's columns, each metadata
    field as a column, and `meta` and `props` whole."""
    source = (
        f"read_json({_list(files)}, format='newline_delimited', "
        "sample_size=-1, union_by_name=true, maximum_object_size=16777216)"
    )
    connection.sql(f"CREATE TEMP TABLE raw AS SELECT * FROM {source}")
    columns = {row[0]: row[1] for row in connection.sql("DESCRIBE raw").fetchall()}
    fields = _struct_fields(connection, "meta") if "meta" in columns else []
    picked = [_quoted(name) for name in STORE_COLUMNS if name in columns]
    picked += [
        f"meta.{_quoted(name)} AS {_quoted(name)}" for name in fields if name not in STORE_COLUMNS
    ]
    picked += [name for name in ("meta", "props") if name in columns]
    connection.sql(f"CREATE VIEW images AS SELECT {', '.join(picked)} FROM raw")
    # The question reads the catalog and nothing else: no file read or written, no
    # setting changed back (COPY ... TO, read_csv('/etc/...'), ATTACH are refused).
    connection.sql("SET enable_external_access = false")
    connection.sql("SET lock_configuration = true")


def _struct_fields(connection: Any, column: str) -> list[str]:
    found = connection.sql(f"SELECT {column} FROM raw LIMIT 0").types[0]
    children = getattr(found, "children", None)
    return [name for name, _type in children] if children else []


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def catalog_for(
    rev: str | None, folder: Path, given: Path | None
) -> tuple[CatalogFolder, Path | None]:
    """The catalog to ask: the workspace's (read in place) or the one at `rev`."""
    if rev is None:
        return catalog_at(None, folder), folder
    from ..versions.history import resolve_revision

    commit = resolve_revision(rev)
    return catalog_at(commit, given, ".", named=rev), None


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


__all__ = ["SqlError", "answer", "catalog_for", "connect", "written"]
