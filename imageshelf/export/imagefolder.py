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
from ..annotations.tables import JSON_COLUMNS
from ..store import Record
from .columns import Conflict, arrow_type, column_signature
from .files import ExportError
from .text import json_bytes

Rows = dict[str, list[dict[str, Any]]]  # metadata file's folder -> its rows


def metadata_rows(records: Sequence[Record], paths: Sequence[str]) -> Rows:
    """The rows of each metadata file: a record's metadata and its `file_name` (its
    path in the export), relative to the nearest folder Hugging Face takes for a split
    ("" where there is none)."""
    groups: Rows = defaultdict(list)
    for record, path in sorted(zip(records, paths, strict=True), key=lambda p: p[1].encode()):
        folders = path.split("/")[:-1]
        at = next((i for i in range(len(folders) - 1, -1, -1) if split_of_name(folders[i])), -1)
        group = "/".join(folders[: at + 1])
        name = path[len(group) + 1 :] if group else path
        groups[group].append({**record.metadata, "file_name": name})
    return dict(groups)


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
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "this metadata needs metadata.parquet (its columns mix types JSON Lines files "
            "cannot give Hugging Face), and writing Parquet needs pyarrow: "
            "pip install 'imageshelf[parquet]'"
        ) from None
    every: dict[str, list[Any]] = defaultdict(list)
    for group_rows in rows.values():
        for name, values in _columns(group_rows).items():
            every[name] += values
    fields, as_json = [], []
    for name in sorted(every, key=lambda n: (n != "file_name", n)):
        try:
            fields.append(pa.field(name, arrow_type(column_signature(every[name], strict=True))))
        except Conflict:
            fields.append(pa.field(name, pa.string()))
            as_json.append(name)
    schema = pa.schema(fields, metadata={JSON_COLUMNS: json.dumps(as_json).encode()})
    out = {}
    for group, group_rows in rows.items():
        cells = [
            {k: json.dumps(v, sort_keys=True) if k in as_json else v for k, v in row.items()}
            for row in group_rows
        ]
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(cells, schema=schema), buffer)
        out[_path(group, "metadata.parquet")] = buffer.getvalue()
    return out
