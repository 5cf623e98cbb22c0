"""Hugging Face's imagefolder layout: each image under its key, and beside them the
metadata files `datasets.load_dataset("imagefolder", data_dir=...)` reads, which ingest
reads back as they are.

- Where keys lie under folders Hugging Face takes for splits (`train/`, `val2017/`,
  `test-images/`: annotations.folders.split_of_name), each such folder gets its own
  metadata file, with paths relative to it: HF reads a split's metadata from the split's
  own folders only. Keys under no split folder go in one file at the top (HF then sees
  them only if no key lies under a split folder).
- `metadata.jsonl` where every file's columns have one type each and all files have the
  same columns (HF refuses files whose features differ); else `metadata.parquet` for
  every file, with one schema, and any column whose values no Arrow column holds exactly
  (polygons beside RLE masks, text beside numbers) stored as JSON text, named in the
  schema's metadata so ingest reads it back as it was (HF gives it as text).
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..annotations.folders import split_of_name
from ..annotations.tables import EXACT, JSON_COLUMNS
from ..store import Record
from ..store.format import canonical_json
from .columns import JSON, Conflict, arrow_type, column_signature, typed_signature, typed_value
from .targets import ExportError, Paired
from .text import json_bytes

Rows = dict[str, list[dict[str, Any]]]  # metadata file's folder -> its rows


def metadata_rows(
    records: Sequence[Record], paths: Sequence[str], paired: Paired
) -> tuple[Rows, list[str]]:
    """The rows of each metadata file: a record's metadata and its `file_name` (its
    path in the export), relative to the nearest folder Hugging Face takes for a split
    ("" where there is none); and ROLE_file_name for each of its paired images (HF:
    `image` and `mask`, two image columns of one row), where HF can link it: inside
    that folder. Notes on those it cannot."""
    groups: Rows = defaultdict(list)
    outside: dict[str, str] = {}  # role -> the first key whose paired image is outside
    for record, path in sorted(zip(records, paths, strict=True), key=lambda p: p[1].encode()):
        folders = path.split("/")[:-1]
        at = next((i for i in range(len(folders) - 1, -1, -1) if split_of_name(folders[i])), -1)
        group = "/".join(folders[: at + 1])
        row = {**record.metadata, "file_name": path[len(group) + 1 :] if group else path}
        for role in record.roles():
            target = paired[(record.key, role)][0] if (record.key, role) in paired else None
            if target is not None and (not group or target.startswith(group + "/")):
                row[f"{role}_file_name"] = target[len(group) + 1 :] if group else target
            else:
                outside.setdefault(role, record.key)
        groups[group].append(row)
    notes = [
        f"paired images ({role}) outside their image's split folder (first: {key}'s) are "
        "written where they came from, but Hugging Face links a metadata file only to "
        f"files under its folder: no {role}_file_name column for them (--split-folders "
        "puts each beside its image)"
        for role, key in sorted(outside.items())
    ]
    return dict(groups), notes


def split_paths(records: Sequence[Record]) -> tuple[list[str], list[str]]:
    """Each image's path under its split's folder (`train/KEY`, `val/KEY`, `test/KEY`),
    where Hugging Face finds splits; and notes on splits it would not see."""
    paths = [f"{record.effective_split or 'train'}/{record.key}" for record in records]
    unknown = sorted({p.split("/", 1)[0] for p in paths} - {"train", "val", "test"})
    notes = [f"split {name}/ is not a name Hugging Face reads as a split" for name in unknown]
    return paths, notes


def metadata_files(rows: Rows) -> dict[str, bytes]:
    """Each metadata file's path (relative to the export) and bytes."""
    if _jsonl_carries(rows):
        return {_path(group, "metadata.jsonl"): _jsonl(lines) for group, lines in rows.items()}
    return _parquet(rows)


def _path(group: str, name: str) -> str:
    return f"{group}/{name}" if group else name


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json_bytes(row) + b"\n" for row in rows)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        for name, value in row.items():
            columns[name].append(value)
    return columns


def _jsonl_carries(rows: Rows) -> bool:
    """Whether JSON Lines files load in HF as they are: each column of one type, and the
    same columns of the same types in every file."""
    seen = None
    for group_rows in rows.values():
        try:
            kinds = {
                name: column_signature(values, strict=False)
                for name, values in _columns(group_rows).items()
            }
        except Conflict:
            return False
        if seen is not None and kinds != seen:
            return False
        seen = kinds
    return True


def _parquet(rows: Rows) -> dict[str, bytes]:
    """One schema for every file: each column typed as Hugging Face reads it best (ints
    beside floats as floats; where values conflict, only the part that does as JSON
    text), and, for the rows whose typed cells would read back otherwise, the exact
    values in one more column (EXACT), which ingest reads instead."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "this metadata needs metadata.parquet (its columns mix types JSON Lines files "
            "cannot give Hugging Face), and writing Parquet needs pyarrow: "
            "pip install 'imageshelf[pipeline]'"
        ) from None
    every: dict[str, list[Any]] = defaultdict(list)
    for group_rows in rows.values():
        for name, values in _columns(group_rows).items():
            every[name] += values
    names = sorted(every, key=lambda n: (n != "file_name", n))
    kinds = {name: typed_signature(every[name]) for name in names}
    cells = {
        group: [_typed_row(row, kinds) for row in group_rows] for group, group_rows in rows.items()
    }
    exact = any(EXACT in row for group in cells.values() for row in group)
    fields = [pa.field(name, arrow_type(kinds[name])) for name in names]
    as_json = [name for name in names if kinds[name] == JSON]
    if exact:
        fields.append(pa.field(EXACT, pa.string()))
        as_json.append(EXACT)
    schema = pa.schema(fields, metadata={JSON_COLUMNS: json.dumps(as_json).encode()})
    out = {}
    for group, group_cells in cells.items():
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(group_cells, schema=schema), buffer)
        out[_path(group, "metadata.parquet")] = buffer.getvalue()
    return out


def _typed_row(row: dict[str, Any], kinds: dict[str, Any]) -> dict[str, Any]:
    """A row's cells as the schema holds them, and EXACT: the original values of those
    that would read back otherwise (a whole number written as a float, a conflicting
    part as text, a field another row has filled with null), as JSON text."""
    cells: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    for name, kind in kinds.items():
        if name not in row:
            cells[name] = None  # no such field: an empty cell, read back as none
            continue
        value = row[name]
        cells[name] = typed_value(value, kind)
        # a null would read back as no field; a typed cell, maybe as another value
        if value is None or (kind != JSON and _read_back(cells[name]) != canonical_json(value)):
            exact[name] = value
    if exact:
        cells[EXACT] = json.dumps(exact, sort_keys=True, ensure_ascii=True)
    return cells


def _read_back(cell: Any) -> bytes:
    """What ingest reads from a typed cell (tables.py drops an object's null fields)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return canonical_json(plain(cell))
