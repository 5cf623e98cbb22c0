"""`imageshelf compact`: rewrite a sharded store into full shards, in key order."""

from __future__ import annotations

from pathlib import Path

from ..base.progress import Progress, per_item
from ..errors import ShelfError
from ..project.params import PackParams
from ..store import ImageStore
from ..store.writer import write_sharded, writer_lock
from ..versions.catalog import write_catalog


def compact(
    store_path: Path, catalog: Path, params: PackParams, progress: Progress | None = None
) -> tuple[int, ImageStore] | None:
    """Rewrite a sharded store into full shards in key order, and its catalog; return
    how many shards it had and the new store. None for a single file: nothing to do."""
    if not store_path.exists():
        raise ShelfError(f"{store_path}: no such store")
    with writer_lock(store_path):
        store = ImageStore(store_path)
        if store.layout != "sharded":
            return None
        before = len(store.parts)
        if progress is not None:
            progress.reset(total=len(store))
        write_sharded(
            store_path,
            base=store,
            rewrite=True,
            shard_bytes=params.shard_bytes,
            on_item=None if progress is None else per_item(progress),
        )
        after = ImageStore(store_path)
        write_catalog(after, catalog)
    return before, after
