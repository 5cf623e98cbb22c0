"""Tables: CSV, TSV, JSON Lines and Parquet, read as Hugging Face's imagefolder reads its
`metadata.*` files: a Table, its columns and its rows, for the readers that place it
(imagetables.py for rows that name images by path, openimages.py, labelstudio_min.py).

The image column of a table (`image_column`): `file_name`, `image_file_name`, else the
first `*_file_name` (HF: `picture_file_name`), else a `file_names` or `*_file_names`
list whose images each get the row's fields; older names are read too: `path`, `file`,
`filename`, `image`, `image_path`, `key`, in any case; `annotations.image_column` before
all of them, where a table has it. A CSV or TSV cell is typed by its column
(values.typed_column); JSON Lines and Parquet keep their own types. Paths are relative
to the table's folder.

A Parquet file is read a batch of rows at a time, its size as JSON counted before a batch
becomes Python values: dictionary and run-length encoding let a file of 1 KB stand for
gigabytes of rows, so what it decodes to is bounded (`decoded_limit`), first by what its
footer declares, then row by row, and a file past the bound is an AnnotationError that
says so. So are a schema whose `imageshelf.json_columns` is not a list of column names
and a cell of such a column that is not JSON text.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
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
# What a Parquet file's rows may decode to, as JSON: this many times the file's size (a
# real table of labels and captions decodes to 2 to 50 times its size; the same text in
# every row, to more), at least PARQUET_FLOOR, at most annotations.max_file_bytes (what
# the same rows in a JSON Lines file may take).
PARQUET_RATIO = 1000
PARQUET_FLOOR = 64 << 20
PARQUET_BATCH = 4096  # rows decoded at once

Cells = dict[str, Any]  # a row's typed values, by column
Rows = Iterator[tuple[int, Cells]]  # (line or row number, cells) of each row


@dataclass
class Table:
    """A table's columns (a CSV's or Parquet's header; the keys of a JSON Lines file's
    first row) and its rows, read once, in order: (number, cells typed)."""

    rel: str
    columns: list[str]
    rows: Rows
    # JSON Lines: each row has its own keys, and may name its image by another column
    per_row: bool = False
    header: list[str] = field(default_factory=list)  # a CSV's header cells as written


def read_table(rel: str, data: bytes, max_row: int = 1 << 20, max_file: int = 2 << 30) -> Table:
    """A CSV, TSV, JSONL or Parquet file as a Table. A JSON Lines row over `max_row`
    bytes (one image's metadata limit) is refused before it is parsed; a Parquet file
    whose rows decode to more than `decoded_limit(len(data), max_file)` bytes, before
    they are."""
    lowered = rel.lower()
    if lowered.endswith(".parquet"):
        return _parquet_table(rel, data, max_file)
    if lowered.endswith(".jsonl"):
        rows = _jsonl_rows(rel, data, max_row)
        first = next(rows, None)
        if first is None:
            return Table(rel, [], iter(()), per_row=True)
        return Table(rel, list(first[1]), itertools.chain([first], rows), per_row=True)
    return _csv_table(rel, text_of(rel, data))


def image_column(names: list[str], chosen: str = "") -> tuple[str | None, bool]:
    """Which of the column `names` names the image, and whether it holds a list:
    `chosen` (annotations.image_column) where a column has that name; else Hugging
    Face's first image column (`file_name`, then `image_file_name`, which HF also calls
    `image`, then the first `*_file_name`), a `file_names` list, an older name."""
    if chosen and chosen in names:
        return chosen, False
    lowered = {name.lower(): name for name in names}
    for known in ("file_name", "image_file_name"):
        if known in lowered:
            return lowered[known], False
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


def paths_of(rel: str, number: int, column: str, value: Any, many: bool) -> list[str]:
    """The image paths a row's cell in the image column gives: one, or a list."""
    if many:
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return [v.strip() for v in value]
        raise AnnotationError(f"{rel}:{number}: {column} is not a list of image paths")
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    raise AnnotationError(f"{rel}:{number}: no image in the {column!r} column")


def _csv_table(rel: str, text: str) -> Table:
    header = text.split("\n", 1)[0]
    delimiter = (
        "\t"
        if rel.lower().endswith(".tsv")
        else max((",", ";", "\t"), key=lambda sep: (header.count(sep), sep == ","))
    )
    written = [c.strip() for c in next(csv.reader(io.StringIO(header), delimiter=delimiter), [])]
    columns = [c.lower() if c.lower() in KNOWN_FIELDS else c for c in written]
    return Table(rel, columns, _csv_rows(rel, text, delimiter, columns), header=written)


def _csv_rows(rel: str, text: str, delimiter: str, columns: list[str]) -> Rows:
    """Two passes over the text: the first checks every row and decides each column's
    type, the second yields the rows typed. No row is kept between them."""
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
        yield (
            number,
            {
                columns[i]: convert[i](cell)
                for i, cell in enumerate(row)
                if columns[i] and cell.strip()
            },
        )


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


def _jsonl_rows(rel: str, data: bytes, max_row: int) -> Rows:
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
        yield number, obj


def decoded_limit(size: int, max_file: int) -> int:
    """How many bytes, as JSON, the rows of a Parquet file of `size` bytes may decode to."""
    return min(max_file, max(PARQUET_FLOOR, PARQUET_RATIO * size))


def _parquet_table(rel: str, data: bytes, max_file: int) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AnnotationError(
            f"{rel}: reading Parquet needs pyarrow: pip install 'imageshelf[parquet]'"
        ) from None
    limit = decoded_limit(len(data), max_file)
    try:
        source = pq.ParquetFile(io.BytesIO(data))
        schema = source.metadata.schema
        _check_footer(rel, source.metadata, len(data), limit)
        # Strings stay dictionary-encoded as they are read, counted, then expanded.
        leaves = [schema.column(i) for i in range(len(schema))]
        texts = [leaf.path for leaf in leaves if leaf.physical_type == "BYTE_ARRAY"]
        source = pq.ParquetFile(io.BytesIO(data), read_dictionary=texts)
    except AnnotationError:
        raise
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise AnnotationError(f"{rel}: not a Parquet file pyarrow reads: {exc}") from None
    as_json = _json_columns(rel, source.schema_arrow.metadata)
    columns = [name for name in source.schema_arrow.names if name != EXACT]
    return Table(rel, columns, _parquet_rows(rel, source, len(data), limit, as_json))


def _parquet_rows(rel: str, source: Any, size: int, limit: int, as_json: set[str]) -> Rows:
    number, spent = 0, 0
    for batch, decoded in _batches(rel, source):
        spent += decoded
        if spent > limit:
            raise _bomb(rel, size, limit, f"rows up to {number + batch.num_rows:,}")
        for row in batch.to_pylist():
            number += 1
            yield number, _parquet_values(rel, number, row, as_json)


def _bomb(rel: str, size: int, limit: int, what: str) -> AnnotationError:
    return AnnotationError(
        f"{rel}: a Parquet file of {size:,} bytes whose {what} decode to more than "
        f"{limit:,} bytes, as a compression bomb does; a real table this repetitive "
        "reads as JSON Lines (within annotations.max_file_bytes)"
    )


def _check_footer(rel: str, meta: Any, size: int, limit: int) -> None:
    """Refuse a file whose footer declares more than `limit` bytes once uncompressed,
    or more values than `limit` allows at 8 bytes each (what Arrow spends on one)."""
    unpacked = values = 0
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for i in range(row_group.num_columns):
            chunk = row_group.column(i)
            unpacked += max(0, chunk.total_uncompressed_size)
            values += max(0, chunk.num_values)
    if unpacked > limit:
        raise _bomb(rel, size, limit, f"pages ({unpacked:,} bytes uncompressed)")
    if values * 8 > limit:
        raise _bomb(rel, size, limit, f"{values:,} values")


def _batches(rel: str, source: Any) -> Iterator[tuple[Any, int]]:
    """The record batches of a Parquet file, each with its decoded_size; a file pyarrow
    fails on is an AnnotationError."""
    batches = source.iter_batches(batch_size=PARQUET_BATCH, use_threads=False)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            size = decoded_size(batch)
        except Exception as exc:  # pyarrow's errors have no common base worth naming
            raise AnnotationError(f"{rel}: not a Parquet file pyarrow reads: {exc}") from None
        yield batch, size


def decoded_size(batch: Any) -> int:
    """About how many bytes the rows of a record batch take as JSON, counted on the
    Arrow arrays as read (a dictionary's values once, by how often each is used)."""
    return sum(
        _json_size(column) + (len(name) + 4) * batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    )


def _json_size(array: Any) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind, nulls = array.type, array.null_count
    if pa.types.is_dictionary(kind):
        used = pc.take(_value_sizes(array.dictionary), array.indices)
        return int(pc.sum(used).as_py() or 0) + 4 * nulls
    if pa.types.is_struct(kind):
        fields = zip(kind, array.flatten(), strict=True)
        return sum(_json_size(child) + len(f.name) + 4 for f, child in fields) + 2 * len(array)
    if _is_list(kind):
        return _json_size(pc.list_flatten(array)) + 2 * len(array) + 2 * nulls
    return int(pc.sum(_value_sizes(array)).as_py() or 0) + 4 * nulls


def _value_sizes(array: Any) -> Any:
    """Each value's size as JSON, for values that are not nested (a dictionary's)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if _is_text(kind):
        return pc.add(pc.binary_length(array).cast(pa.int64()), 2)
    if pa.types.is_dictionary(kind):
        return pc.take(_value_sizes(array.dictionary), array.indices)
    if _is_list(kind) or pa.types.is_struct(kind):
        raise ValueError(f"a dictionary of {kind} values")
    # numbers, booleans, dates, times, decimals: at most about this long as text
    return pc.if_else(pc.is_valid(array), 24, None).cast(pa.int64())


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_map(kind)
    )


def _json_columns(rel: str, metadata: dict[bytes, bytes] | None) -> set[str]:
    """The columns the schema's `imageshelf.json_columns` names: a JSON list of names."""
    marked = (metadata or {}).get(JSON_COLUMNS)
    if marked is None:
        return set()
    try:
        names = strict_json(marked)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise AnnotationError(
            f"{rel}: its schema's {JSON_COLUMNS.decode()} is not a JSON list of column "
            "names; write the file again, or drop that entry"
        )
    return set(names)


def _parquet_values(
    rel: str, number: int, row: dict[str, Any], as_json: set[str]
) -> dict[str, Any]:
    values = {}
    for name, value in row.items():
        if value is None:
            continue  # Arrow's empty cell: no field
        values[name] = (
            _json_cell(rel, number, name, value) if name in as_json else _plain(rel, name, value)
        )
    exact = values.pop(EXACT, None) if EXACT in as_json else None
    if isinstance(exact, dict):  # an export's exact values win over its typed cells
        values.update(exact)
    try:
        check_json_value(values)
    except ValueError as exc:
        raise AnnotationError(f"{rel}: row {number}: {exc}") from None
    return values


def _json_cell(rel: str, number: int, name: str, value: Any) -> Any:
    """A cell of a column the schema names as JSON text: the value it holds."""
    try:
        if not isinstance(value, str):
            raise ValueError(f"a {type(value).__name__}, not text")
        return strict_json(value)
    except ValueError as exc:
        raise AnnotationError(
            f"{rel}: row {number}: column {name!r}, which {JSON_COLUMNS.decode()} names "
            f"as JSON text, holds a cell that is not JSON ({exc})"
        ) from None


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
