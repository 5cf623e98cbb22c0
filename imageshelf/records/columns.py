"""The catalog's columnar form: a Parquet file per part of the store, beside its JSON
Lines file (data/catalog/images.parquet beside images.jsonl), for questions over every
record at once: `imageshelf sql`, broad `--where` filters, stats' aggregates.

It is never the source of truth. It is written from the store's records, pack keeps it
with the catalog (a shard's is written once, as the shard is), and validate proves it:
the same records must give the same bytes. Its footer names the part's content digest,
so a reader that finds one for other records (stale, or another store's) ignores it.

Why Parquet, not Arrow's own file format: every engine reads it in place (DuckDB,
Polars, pandas, Spark, Hugging Face datasets), it is compressed (a tenth of the JSON
Lines: it is pushed and pulled with each version), and the statistics of its row groups
let an engine skip what a filter cannot match. Arrow's file maps faster, but is larger
and read by fewer engines.

Columns, a row per image in key order:
  key, split (the effective split), format, width, height, size, sha256;
  paired: the roles of its paired images (["mask"]);
  props: what its pixels measure, a struct (docs/QUALITY.md);
  meta: the whole metadata as its canonical JSON text (exact: a missing field and a
      null differ there, and nowhere else);
  one column per field of the metadata, typed by the part's values: text, boolean,
      whole number, number (whole numbers and decimals together), or lists and structs
      of those (`objects` is a list of structs), as Arrow infers them. Where the values
      disagree (a label that is text in one image and a number in another), or a whole
      number past 64 bits, or 2**53 beside decimals, the column holds each value's JSON
      text, marked `imageshelf.json` in the field's metadata. A field named as a column
      above, or as another field but for case (Label, label), stays in `meta` only, as
      do fields past the 256th by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..base.userfile import open_regular
from ..store import Part
from ..store.format import canonical_json, record_object

VERSION = "1"
STORE_COLUMNS = ("key", "split", "format", "width", "height", "size", "sha256")
RESERVED = frozenset({*STORE_COLUMNS, "paired", "props", "meta"})
MAX_FIELDS = 256
ROW_GROUP = 131072  # rows per group: a million records make 8, scanned on 8 cores
JSON_MARK = b"imageshelf.json"  # a field's metadata: its column holds JSON text
JSON_COLUMNS = b"imageshelf.json_columns"  # the file's: the names of those columns


def columns_name(part: Part) -> str:
    """The columnar file of a part: `images.parquet` for `images.lmdb`."""
    return Path(part.name).stem + ".parquet"


def has_pyarrow() -> bool:
    """Whether this installation writes the columnar form (pyarrow: the pipeline extra)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


MAX_FOOTER = 16 << 20  # a million records' footer is about 60 KB


def footer_fits(path: Path) -> bool:
    """Whether `path` ends as a Parquet file does, with a footer of at most MAX_FOOTER
    bytes: checked before an engine reads one from elsewhere, which would otherwise
    allocate whatever its last eight bytes say."""
    try:
        with open_regular(path) as file:  # a pipe where the file belongs: False, never a wait
            size = file.seek(0, 2)
            if size < 12:
                return False
            file.seek(size - 8)
            tail = file.read(8)
    except OSError:
        return False
    length = int.from_bytes(tail[:4], "little")
    return tail[4:] == b"PAR1" and length <= min(MAX_FOOTER, size - 12)


def columns_digest(path: Path) -> str | None:
    """The content digest of the part a columnar file says it was written from; None if
    there is no such file or it does not say (damaged, or not ours). Reads its footer."""
    if not footer_fits(path):
        return None
    try:
        import pyarrow.parquet as pq

        found = pq.read_metadata(path).metadata or {}
    except (ImportError, OSError, ValueError):
        return None
    if found.get(b"imageshelf.columns") != VERSION.encode():
        return None
    digest = found.get(b"imageshelf.digest", b"")
    return digest.decode("ascii", "replace") or None


def write_columns(records: Callable[[], Iterable[tuple[str, bytes]]], part: Part, out: Any) -> None:
    """Write the Parquet form of a part to the binary file `out`, from its records (key,
    the record as stored) in key order, given twice by `records()`: once to type the
    columns, once to write them a row group at a time (memory flat in the part's size).
    The same records always give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types, count = _types(records())
    names = field_columns(types)
    while True:
        start = out.tell()
        schema = pa.schema(_fields(types, names), metadata=_footer(part, count, types, names))
        try:
            with pq.ParquetWriter(out, schema, compression="zstd") as writer:
                for chunk in _chunks(records(), ROW_GROUP):
                    writer.write_table(_table(chunk, schema, names), row_group_size=ROW_GROUP)
            return
        except _Unwritable as exc:  # a whole number no double holds exactly beside decimals
            types[exc.name] = None
        except pa.ArrowException:  # a type Parquet cannot write: every field as JSON text
            if all(kind is None for kind in types.values()):
                raise
            types = dict.fromkeys(types)
        out.seek(start)
        out.truncate()


class _Unwritable(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _types(records: Iterable[tuple[str, bytes]]) -> tuple[dict[str, Any], int]:
    """Each metadata field's Arrow type as Arrow infers it from the part's values, chunk
    by chunk, the chunks' types unified (whole numbers and decimals: decimals); None
    where they cannot be (text and numbers in one field) or where DuckDB could not read
    it (a struct's fields named alike but for case). props' type is under "" (no field
    is so named)."""
    types: dict[str, Any] = {}
    count = 0
    for chunk in _chunks(records, ROW_GROUP):
        count += len(chunk)
        values: dict[str, list[Any]] = {"": [obj.get("props") for _, obj in chunk]}
        for at, (_key, obj) in enumerate(chunk):
            for name, value in (obj.get("meta") or {}).items():
                if name not in values:
                    values[name] = [None] * len(chunk)
                values[name][at] = value
        for name, column in values.items():
            types[name] = _unified(types.get(name, _UNSEEN), _inferred(column))
    return types, count


_UNSEEN = object()


def _inferred(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        found = pa.array(values).type
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    return found if _readable(found) else None


def _readable(kind: Any) -> bool:
    """Whether every struct inside has fields (Parquet writes none without), named
    apart ignoring case (DuckDB does)."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        if not names or "" in names or len({n.lower() for n in names}) != len(names):
            return False
        return all(_readable(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind):
        return _readable(kind.value_type)
    return True


def _unified(before: Any, found: Any) -> Any:
    import pyarrow as pa

    if before is _UNSEEN:
        return found
    if before is None or found is None:
        return None
    try:
        schema = pa.unify_schemas(
            [pa.schema([("x", before)]), pa.schema([("x", found)])], promote_options="permissive"
        )
    except (pa.ArrowException, TypeError, ValueError):
        return None
    kind = schema.field("x").type
    return kind if _readable(kind) else None


def _fields(types: dict[str, Any], names: list[str]) -> list[Any]:
    import pyarrow as pa

    fields = [
        pa.field("key", pa.string()),
        pa.field("split", pa.string()),
        pa.field("format", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("size", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("paired", pa.list_(pa.string())),
        _field("props", types.get("", pa.null())),
        pa.field("meta", pa.string()),
    ]
    return fields + [_field(name, types[name]) for name in names]


def _field(name: str, kind: Any) -> Any:
    import pyarrow as pa

    if kind is None:
        return pa.field(name, pa.string(), metadata={JSON_MARK: b"1"})
    if pa.types.is_null(kind):
        kind = pa.string()  # no image has a value: text, as DuckDB reads it
    return pa.field(name, kind)


def _chunks(records: Iterable[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, Any]]]:
    chunk: list[tuple[str, Any]] = []
    for key, raw in records:
        chunk.append((key, record_object(key, raw)))  # whole numbers past 64 bits too
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _table(rows: list[tuple[str, Any]], schema: Any, names: list[str]) -> Any:
    import pyarrow as pa

    metas = [obj.get("meta") or {} for _, obj in rows]
    values: dict[str, list[Any]] = {
        "key": [key for key, _ in rows],
        "split": [_split(obj) for _, obj in rows],
        **{
            name: [obj[name] for _, obj in rows]
            for name in ("format", "width", "height", "size", "sha256")
        },
        "paired": [sorted(obj.get("paired") or ()) for _, obj in rows],
        "props": [obj.get("props") for _, obj in rows],
        "meta": [_json(meta) for meta in metas],
        **{name: [meta.get(name) for meta in metas] for name in names},
    }
    arrays = []
    for field in schema:
        column = values[field.name]
        if field.metadata and JSON_MARK in field.metadata:
            column = [None if v is None else _json(v) for v in column]
        try:
            arrays.append(pa.array(column, field.type))
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            raise _Unwritable("" if field.name == "props" else field.name) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _footer(part: Part, count: int, types: dict[str, Any], names: list[str]) -> dict[bytes, bytes]:
    """The file's own metadata: what it was written from, and which columns hold JSON
    text (for an engine that reads no field's metadata, as DuckDB's SQL)."""
    json_columns = [name for name in ["", *names] if name in types and types[name] is None]
    return {
        b"imageshelf.columns": VERSION.encode(),
        b"imageshelf.part": part.name.encode("utf-8"),
        b"imageshelf.digest": part.content_digest.encode(),
        b"imageshelf.count": str(count).encode(),
        JSON_COLUMNS: orjson.dumps([name or "props" for name in json_columns]),
    }


def _json(value: Any) -> str:
    """A value's JSON text, keys sorted: orjson's, or the store's own canonical form
    where orjson cannot write it (a whole number past 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return canonical_json(value).decode("utf-8")


def _split(obj: dict[str, Any]) -> Any:
    split = obj.get("split")
    if split is None and isinstance(obj.get("meta"), dict):
        split = obj["meta"].get("split")
    return split if isinstance(split, str) else None


def field_columns(names: Iterable[str]) -> list[str]:
    """The metadata fields given a column of their own, by name."""
    names = set(names) - {""}
    lowered: dict[str, int] = {}
    for name in names:
        lowered[name.lower()] = lowered.get(name.lower(), 0) + 1
    kept = [
        name
        for name in names
        if name and name.lower() not in RESERVED and lowered[name.lower()] == 1
    ]
    return sorted(kept, key=lambda name: name.encode("utf-8"))[:MAX_FIELDS]
