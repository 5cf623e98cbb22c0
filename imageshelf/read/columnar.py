"""Broad filters at columnar speed: `--where` answered from the catalog's columnar form
(records/columns.py) by DuckDB, where both are there.

A filter that most records match (`split=train`, `width>=256`) costs little through
the field index only when it is selective; otherwise every record is read and parsed.
The columnar files hold the same fields as columns: DuckDB answers the same
conditions over them on every core and gives the matching keys, part by part.

It answers only where it gives exactly what reading the records gives
(`select`): each condition on a column of one plain type in every file (text, whole
number, number, boolean), written as `FIELD OP VALUE` (or a mapping of a field to a
value or values of its column's type); a file whose footer names another content than
its part's (stale, or another store's) is not read. Anything else, and any install
without DuckDB (the `sql` extra), is answered as before, record by record: the reading
core stays lmdb and orjson. A missing field and a null are one NULL in a column, so
conditions that tell them apart (`label=`, `label=null`) are answered from the records.
"""

from __future__ import annotations

import json
import operator
import os
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records.columns import ROW_GROUP, columns_name, footer_fits
from ..store import ImageStore
from .query import _COMPARE, _CONDITION, STORE_FIELDS, Filter

_PLAIN = {"VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN"}
_NUMBERS = {"BIGINT", "DOUBLE"}
_NULLISH = {"", "null", "none"}
_local = threading.local()


@dataclass
class Selection:
    """What the columnar files answered: the matching keys of each part, in key order,
    and each one's label where asked (None where it has none)."""

    keys: dict[str, list[str]]
    labels: dict[str, list[Any]]  # aligned with the keys, or each label once (`labels=`)


class _Unanswerable(Exception):
    """A condition the columns cannot answer exactly: the records answer it."""


def beside(store: ImageStore) -> Path:
    """Where pack puts the catalog for a store at its default path (data/images.lmdb or
    data/images: data/catalog)."""
    return store.path.parent / "catalog"


def select_columnar(
    store: ImageStore,
    where: Filter,
    catalog: Path | None = None,
    parts: list[str] | None = None,
    paired: tuple[str, ...] = (),
    labels: str = "",
) -> Selection | None:
    """The keys of `parts` (default: all) matching `where`, and having each `paired`
    role, from the columnar files in `catalog` (default: `beside(store)`); None where
    they cannot answer exactly, for the caller to read the records. `labels`: "each"
    gives each key's label, "distinct" each label of the selection once."""
    try:
        import duckdb
    except ImportError:
        return None
    names = parts if parts is not None else [part.name for part in store.parts]
    if not names:
        return None
    folder = catalog if catalog is not None else beside(store)
    by_name = {part.name: part for part in store.parts}
    files = {name: folder / columns_name(by_name[name]) for name in names}
    if not all(path.is_file() for path in files.values()):
        return None
    connection = _connection(sum(by_name[n].count for n in names) <= ROW_GROUP)
    try:
        described = {name: _describe(connection, path) for name, path in files.items()}
        if any(one.digest != by_name[name].content_digest for name, one in described.items()):
            return None  # stale, or another store's
        types = _types(list(described.values()))
        clause, values = _clause(where, types, paired)
        named = any("label" in one.kinds for one in described.values())  # a nested one too
        if labels and named and types.get("label") not in {"VARCHAR", "BIGINT", "BOOLEAN"}:
            return None  # labels of mixed or nested types: as the records give them
        return _run(connection, files, clause, values, labels if named else "")
    except (_Unanswerable, duckdb.Error, ValueError, OSError):  # ValueError: a footer not ours
        return None


def _connection(single: bool) -> Any:
    """This thread's DuckDB connection: one per thread (a connection is not shared) and
    per process (one made before a fork is never used after it: its threads are gone).
    `single`: one that scans on one thread, for files of one row group, where starting
    more costs more than they save (2.05 against 2.64 ms at 20,000 records)."""
    import duckdb

    made = getattr(_local, "made", None)
    if made is None or made[0] != os.getpid():
        made = _local.made = (os.getpid(), {})
    connections: dict[bool, Any] = made[1]
    if single not in connections:
        connection = connections[single] = duckdb.connect()
        connection.execute("SET parquet_metadata_cache = true")  # checked against its mtime
        if single:
            connection.execute("SET threads = 1")
    return connections[single]


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


_DIGEST, _JSON = "imageshelf.digest", "imageshelf.json_columns"


@dataclass(frozen=True)
class _Described:
    """What a columnar file says of itself: the digest of the part it was written from,
    each column's types by name, and the names that are nested or JSON text."""

    digest: str | None
    kinds: dict[str, frozenset[str]]
    nested: frozenset[str]


_described: dict[tuple[Any, ...], _Described] = {}  # by the file's identity and stamp


def _describe(connection: Any, path: Path) -> _Described:
    """The file's footer and schema, read once per process while the file is unchanged
    (its device, inode, size and modification time)."""
    info = path.stat()
    stamp = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    found = _described.get(stamp)
    if found is None and not footer_fits(path):
        raise ValueError(f"{path}: not a Parquet file of ours")  # never handed to DuckDB
    if found is None:
        if len(_described) >= 1024:
            _described.clear()
        found = _described[stamp] = _read_description(connection, path)
    return found


def _read_description(connection: Any, path: Path) -> _Described:
    said = dict(
        connection.execute(
            f"SELECT decode(key), decode(value) FROM parquet_kv_metadata({_files_sql([path])}) "
            f"WHERE decode(key) IN ('{_DIGEST}', '{_JSON}')"
        ).fetchall()
    )
    listed = json.loads(said.get(_JSON, "[]"))
    nested = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    kinds: dict[str, set[str]] = {}
    for name, kind, children in connection.execute(
        f"SELECT name, duckdb_type, num_children FROM parquet_schema({_files_sql([path])})"
    ).fetchall():
        if children is not None:
            nested.add(name)
        kinds.setdefault(name, set()).add(kind)
    frozen = {name: frozenset(found) for name, found in kinds.items()}
    return _Described(said.get(_DIGEST), frozen, frozenset(nested))


def _types(described: list[_Described]) -> dict[str, str]:
    """Each column's DuckDB type where it is one plain type in every file: not a column
    of JSON text, and not a name any list or struct has (a nested field of that name
    could pass for it)."""
    kinds: dict[str, set[str]] = {}
    nested: set[str] = set()
    for one in described:
        nested |= one.nested
        for name, found in one.kinds.items():
            kinds.setdefault(name, set()).update(found)
    return {
        name: next(iter(found))
        for name, found in kinds.items()
        if len(found) == 1 and found <= _PLAIN and name not in nested
    }


def _run(
    connection: Any, files: dict[str, Path], clause: str, values: list[Any], labels: str
) -> Selection:
    """The keys of each file's rows that match, in key order, and the labels asked for:
    "each" (aligned with the keys), "distinct" (the set), or "" (none). Keys come back
    as one text joined by NUL (no key holds one: store/format.py), sorted here: Python
    orders text as the store orders its UTF-8 bytes. That is a third of the time of a
    row per key at 20,000 records."""
    selection = Selection({}, {})
    for name, path in files.items():
        source = f"read_parquet({_files_sql([path])}) WHERE {clause}"
        if labels == "each":
            found = connection.execute(f"SELECT key, label FROM {source}", values).fetchall()
            selection.keys[name] = [row[0] for row in found]
            selection.labels[name] = [row[1] for row in found]
            continue
        extra = ", list(DISTINCT label)" if labels else ""
        row = connection.execute(f"SELECT string_agg(key, chr(0)){extra} FROM {source}", values)
        joined, *distinct = row.fetchone()
        selection.keys[name] = sorted(joined.split("\0")) if joined is not None else []
        if labels:
            selection.labels[name] = [label for label in distinct[0] or () if label is not None]
    return selection


def _clause(where: Filter, types: dict[str, str], paired: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The SQL condition of `where` and its values; _Unanswerable if not exact."""
    parts: list[str] = []
    values: list[Any] = []
    if where is not None:
        if isinstance(where, Mapping):
            for name, wanted in where.items():
                parts.append(_mapped(str(name), wanted, types, values))
        else:
            for text in [where] if isinstance(where, str) else where:
                parts.append(_condition(text, types, values))
    for role in paired:
        values.append(role)
        parts.append(f"list_contains(paired, ${len(values)})")
    return (" AND ".join(f"({p})" for p in parts) or "true"), values


def _column(name: str, types: dict[str, str]) -> tuple[str, str]:
    """The column a condition's field reads, and its type."""
    if name.startswith("meta."):
        name = name[5:]
        if name in STORE_FIELDS:
            raise _Unanswerable(name)  # the metadata's own split, width...: in `meta` only
    if name.startswith("props."):
        raise _Unanswerable(name)
    if name not in types or name in ("meta", "paired", "props"):
        raise _Unanswerable(name)  # no such column: the records say why
    return '"' + name.replace('"', '""') + '"', types[name]


def _condition(text: str, types: dict[str, str], values: list[Any]) -> str:
    match = _CONDITION.match(text)
    if not match:
        raise _Unanswerable(text)
    name, op, raw = match.groups()
    column, kind = _column(name, types)
    if op in ("=", "!=") and not (op == "=" and ".." in raw and raw.count("..") == 1):
        options = raw.split(",")
        if any(o.lower() in _NULLISH for o in options):
            raise _Unanswerable(text)
        typed = [v for v in (_typed(o, kind) for o in options) if v is not None]
        inside = _member(column, typed, values)
        return inside if op == "=" else f"{column} IS NULL OR NOT ({inside})"
    if op in _COMPARE:
        return _compared(column, kind, _COMPARE[op], raw, values)
    low, high = raw.split("..")
    ends = [_compared(column, kind, operator.ge, low, values)] if low else []
    ends += [_compared(column, kind, operator.le, high, values)] if high else []
    if not ends:
        raise _Unanswerable(text)  # `..`: any value, a null too, which a column cannot tell
    return " AND ".join(ends)


_SQL_OP = {operator.ge: ">=", operator.le: "<=", operator.gt: ">", operator.lt: "<"}


def _compared(column: str, kind: str, op: Any, raw: str, values: list[Any]) -> str:
    if kind == "BOOLEAN":
        raise _Unanswerable(raw)
    value = _typed(raw, kind)
    if value is None:
        raise _Unanswerable(raw)  # a word against numbers: the records raise the error
    values.append(value)
    return f"{column} {_SQL_OP[op]} ${len(values)}"


def _member(column: str, typed: list[Any], values: list[Any]) -> str:
    if not typed:
        return "false"
    start = len(values)
    values.extend(typed)
    return f"{column} IN ({', '.join(f'${start + i + 1}' for i in range(len(typed)))})"


def _typed(text: str, kind: str) -> Any:
    """`text` as a value of the column's type, as the records' filter reads it (None:
    it can equal no value of that type)."""
    if kind == "VARCHAR":
        return text
    if kind == "BOOLEAN":
        lowered = text.lower()
        return (
            True
            if lowered in ("true", "yes", "1")
            else False
            if lowered in ("false", "no", "0")
            else None
        )
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number else None  # NaN equals nothing


def _mapped(name: str, wanted: Any, types: dict[str, str], values: list[Any]) -> str:
    """A mapping's condition: a value, or a collection of values, of the column's type."""
    column, kind = _column(name, types)
    options = (
        list(wanted)
        if isinstance(wanted, Collection) and not isinstance(wanted, str | bytes)
        else [wanted]
    )
    if callable(wanted) or not all(_of_kind(v, kind) for v in options):
        raise _Unanswerable(name)
    return _member(column, options, values)


def _of_kind(value: Any, kind: str) -> bool:
    if kind == "VARCHAR":
        return isinstance(value, str)
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
