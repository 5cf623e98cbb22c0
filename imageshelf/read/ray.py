"""Read a store with Ray Data: one read task per part (a shard, or the single file),
filters applied inside each task to the records, only the columns named.

    import ray
    from imageshelf.read.ray import read_store

    ds = read_store("data/images", where="label=cat", columns=["key", "image", "label"])
    ds.map_batches(embed, batch_size=256)

Ray (the `ray` extra: pip install 'imageshelf[ray]') and pyarrow are imported here
only; every node of the cluster needs the store at the same path (a shared file system,
or each node's own `dvc pull`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from ray.data import Dataset, read_datasource
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ..store import ImageStore
from .query import Filter, check_store_fields, rows
from .remote import store_of

BLOCK_ROWS = 1024  # rows per Arrow table a task yields


class StoreDatasource(Datasource):
    """A store as a Ray datasource: its parts are the read tasks. `store`: a path, or an
    ImageStore (one read from a remote fetches each task's shard where the task runs)."""

    def __init__(self, store: ImageStore | str, where: Filter, columns: Sequence[str]) -> None:
        self.store = store if isinstance(store, ImageStore) else ImageStore(store)
        self.where, self.columns = where, list(columns)
        # A field no image has is said here, at once, not in a task on the cluster.
        check_store_fields(self.store, where)
        self.parts = self.store.parts

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(part.total_bytes for part in self.parts) if "image" in self.columns else None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks = []
        for part in self.parts:
            read = functools.partial(_read_part, self.store, part.name, self.where, self.columns)
            size = part.total_bytes if "image" in self.columns else None
            meta = BlockMetadata(num_rows=None, size_bytes=size, exec_stats=None)
            tasks.append(ReadTask(read, meta))
        return tasks


def _read_part(
    store: ImageStore, name: str, where: Filter, columns: list[str]
) -> Iterator[pa.Table]:
    batch: list[dict[str, Any]] = []
    for row in rows(store.part(name), where, columns, check=False):
        batch.append(row)
        if len(batch) == BLOCK_ROWS:
            yield _table(batch, columns)
            batch = []
    if batch:
        yield _table(batch, columns)


def _table(batch: list[dict[str, Any]], columns: list[str]) -> pa.Table:
    arrays = {}
    for name in columns:
        values = [row[name] for row in batch]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # values of several types: as text
            arrays[name] = pa.array([_text(v) for v in values], pa.string())
    return pa.table(arrays)


def _text(value: Any) -> str | None:
    """A value of a field whose values differ in type: text ("cat" stays cat, 7 is "7",
    lists and objects JSON)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def read_store(
    store: str | os.PathLike[str] | ImageStore | None = None,
    *,
    repo: str | os.PathLike[str] | None = None,
    rev: str | None = None,
    cache_limit: int | None = None,
    where: Filter = None,
    columns: Iterable[str] = ("key", "image", "label"),
    **read_args: Any,
) -> Dataset:
    """A `ray.data.Dataset` of the store's records matching `where` (the `--where`
    syntax, or a mapping; see imageshelf/read/query.py), with `columns`: `key`, `image` (the
    original bytes), the store's own fields and any metadata field. One read task per
    part; `read_args` go to `ray.data.read_datasource`. `store`: a path or an
    ImageStore; or, with `repo` (and `rev`), the store in that DVC repository, each task
    fetching its shard (imageshelf.read.remote)."""
    source = StoreDatasource(store_of(store, repo, rev, cache_limit), where, list(columns))
    # One block per part: Ray would otherwise split each task's output into more blocks,
    # which keeps it from fusing the read with the map that follows (measured: 2.9 s
    # against 2.25 s for 5,000 images decoded on 2 CPUs).
    read_args.setdefault("override_num_blocks", max(1, len(source.parts)))
    return read_datasource(source, **read_args)
