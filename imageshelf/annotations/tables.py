"""Tables: CSV, TSV, JSON Lines and Parquet, one row per image (or per group of images),
as Hugging Face's imagefolder reads its `metadata.*` files.

The image is named by a column `file_name`, or any `*_file_name` (HF: `picture_file_name`);
a row naming several images by a `file_names` or `*_file_names` list gives its fields to
each. Older names are read too: `path`, `file`, `filename`, `image`, `image_path`, `key`,
in any case. A CSV or TSV cell is typed by its column (values.typed_column); JSON Lines
and Parquet keep their own types. Paths are relative to the table's folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from .base import AnnotationError, text_of
from .values import ColumnType, check_json_value, strict_json

LEGACY_PATH_COLUMNS = ("path", "file", "filename", "image", "image_path", "key")
PATH_COLUMNS = ("file_name", "*_file_name", "file_names", *LEGACY_PATH_COLUMNS)
# Fields the project gives a meaning to (stats, splits, the dataset's classes): a column
# named so in any case (Excel's "Label") is that field.
KNOWN_FIELDS = ("label", "split", "text")
# Parquet files this project writes name, in the schema's metadata, the columns it had
# to store as JSON text (their values mix types Arrow cannot put in one column).
JSON_COLUMNS = b"imageshelf.json_columns"
# A column of an export's metadata.parquet: per row, the exact values of the columns
# whose typed cells (what Hugging Face reads) would read back otherwise: these win.
EXACT = "imageshelf_exact"

Row = tuple[int, list[str], dict[str, Any]]  # line number, image paths, fields


def image_column(names: list[str]) -> tuple[str | None, bool]:
    """Which of the column `names` names the image, and whether it holds a list."""
    lowered = {name.lower(): name for name in names}
    if "file_name" in lowered:
        return lowered["file_name"], False
    for name in names:
        if name.lower().endswith("_file_name"):
            return name, False
    for name in names:
        low = name.lower()
        if low == "file_names" or low.endswith("_file_names"):
            return name, True
    for low in LEGACY_PATH_COLUMNS:
        if low in lowered:
            return lowered[low], False
    return None, False


def _no_column(rel: str, columns: list[str]) -> AnnotationError:
    return AnnotationError(
        f"{rel}: no column names the image (one of file_name, *_file_name, file_names, "
        f"{', '.join(LEGACY_PATH_COLUMNS)}); its columns are "
        f"{', '.join(repr(c) for c in columns[:8]) or 'none'}"
    )


def table_rows(rel: str, data: bytes, max_row: int = 1 << 20) -> Iterator[Row]:
    """(line number, image paths, fields) for each row of a CSV, TSV, JSONL or Parquet
    file. A JSON Lines row over `max_row` bytes (one image's metadata limit) is refused
    before it is parsed."""
    lowered = rel.lower()
    if lowered.endswith(".parquet"):
        yield from _parquet_rows(rel, data)
    elif lowered.endswith(".jsonl"):
        yield from _jsonl_rows(rel, data, max_row)
    else:
        yield from _csv_rows(rel, text_of(rel, data))


def _paths(rel: str, number: int, column: str, value: Any, many: bool) -> list[str]:
    if many:
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return [v.strip() for v in value]
        raise AnnotationError(f"{rel}:{number}: {column} is not a list of image paths")
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    raise AnnotationError(f"{rel}:{number}: no image in the {column!r} column")


def _csv_rows(rel: str, text: str) -> Iterator[Row]:
    """Two passes over the text: the first checks every row and decides each column's
    type, the second yields the rows typed. No row is kept between them."""
    header = text.split("\n", 1)[0]
    delimiter = (
        "\t"
        if rel.lower().endswith(".tsv")
        else max((",", ";", "\t"), key=lambda sep: (header.count(sep), sep == ","))
    )
    columns = [c.strip() for c in next(csv.reader(io.StringIO(header), delimiter=delimiter), [])]
    columns = [c.lower() if c.lower() in KNOWN_FIELDS else c for c in columns]
    column, many = image_column(columns)
    if column is None:
        raise _no_column(rel, columns)
    types = [ColumnType() for _ in columns]
    undecided = [i for i, name in enumerate(columns) if name]  # text is decided for good
    for _number, row in _csv_cells(rel, text, delimiter, len(columns)):
        if undecided:
            for i in [i for i in undecided if i < len(row) and row[i].strip()]:
                types[i].see(row[i])
                if not types[i].kinds:
                    undecided.remove(i)
    convert = [kind.converter() for kind in types]
    for number, row in _csv_cells(rel, text, delimiter, len(columns)):
        values = {
            columns[i]: convert[i](cell)
            for i, cell in enumerate(row)
            if columns[i] and cell.strip()
        }
        yield number, _paths(rel, number, column, values.pop(column, None), many), values


def _csv_cells(rel: str, text: str, delimiter: str, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each row that is not blank, the header skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        next(reader, None)
        for row in reader:
            if not any(row) or not "".join(row).strip():
                continue
            if len(row) > width:
                raise AnnotationError(
                    f"{rel}:{reader.line_num}: {len(row)} cells, the header names {width} columns"
                )
            yield reader.line_num, row
    except csv.Error as exc:
        raise AnnotationError(f"{rel}:{reader.line_num}: not valid CSV: {exc}") from None


def _jsonl_rows(rel: str, data: bytes, max_row: int) -> Iterator[Row]:
    for number, raw in enumerate(io.BytesIO(data), 1):
        if len(raw) > max_row:
            raise AnnotationError(
                f"{rel}:{number}: a row of {len(raw):,} bytes, over {max_row:,} "
                "(ingest.max_metadata_bytes)"
            )
        line = text_of(f"{rel}:{number}", raw)
        if not line.strip():
            continue
        try:
            obj = strict_json(line)
        except ValueError as exc:
            raise AnnotationError(f"{rel}:{number}: invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise AnnotationError(f"{rel}:{number}: a JSON {type(obj).__name__}, not an object")
        column, many = image_column(list(obj))
        if column is None:
            raise _no_column(rel, list(obj))
        yield number, _paths(rel, number, column, obj.pop(column), many), obj


def _parquet_rows(rel: str, data: bytes) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AnnotationError(
            f"{rel}: reading Parquet needs pyarrow: pip install 'imageshelf[parquet]'"
        ) from None
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise AnnotationError(f"{rel}: not a Parquet file pyarrow reads: {exc}") from None
    marked = (table.schema.metadata or {}).get(JSON_COLUMNS)
    as_json = set(strict_json(marked)) if marked else set()
    column, many = image_column(table.column_names)
    if column is None:
        raise _no_column(rel, table.column_names)
    for number, row in enumerate(table.to_pylist(), 1):
        values = {}
        for name, value in row.items():
            if value is None:
                continue  # Arrow's empty cell: no field
            values[name] = strict_json(value) if name in as_json else _plain(rel, name, value)
        exact = values.pop(EXACT, None) if EXACT in as_json else None
        if isinstance(exact, dict):
            values.update(exact)
        try:
            check_json_value(values)
        except ValueError as exc:
            raise AnnotationError(f"{rel}: row {number}: {exc}") from None
        yield number, _paths(rel, number, column, values.pop(column, None), many), values


def _plain(rel: str, name: str, value: Any) -> Any:
    """A value pyarrow gives as JSON: dates and times as ISO text, decimals as text."""
    if isinstance(value, dict):
        return {k: _plain(rel, name, v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(rel, name, v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        raise AnnotationError(f"{rel}: column {name!r} holds bytes, not metadata")
    return str(value)
