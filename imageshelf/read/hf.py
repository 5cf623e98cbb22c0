"""A Hugging Face `datasets.IterableDataset` over a store's parts, so that
`datasets.distributed.split_dataset_by_node` gives each node whole shards.

    from datasets.distributed import split_dataset_by_node
    from imageshelf.read.hf import iterable_dataset

    ds = iterable_dataset("data/images", where="split=train", columns=["image", "label"])
    ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)

The parts are the generator's `shards` (gen_kwargs), so `ds.n_shards` is the number of
shards; `image` holds the original bytes. `datasets` is imported here only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from ..store import ImageStore
from .query import Filter, check_store_fields, rows
from .remote import store_of


def _generate(
    store: ImageStore, shards: list[str], where: Filter, columns: tuple[str, ...]
) -> Iterator[Any]:
    for name in shards:
        yield from rows(store.part(name), where, columns, check=False)


def iterable_dataset(
    store: str | os.PathLike[str] | ImageStore | None = None,
    *,
    repo: str | os.PathLike[str] | None = None,
    rev: str | None = None,
    cache_limit: int | None = None,
    where: Filter = None,
    columns: Iterable[str] = ("key", "image", "label"),
) -> Any:
    """`datasets.IterableDataset.from_generator` over the store's parts, each a shard of
    the dataset; rows as `imageshelf.read.ray.read_store` gives them, from the same stores (a
    path, an ImageStore, or `repo` and `rev`: each shard fetched where it is read)."""
    from datasets import IterableDataset

    opened = store_of(store, repo, rev, cache_limit)
    check_store_fields(opened, where)
    shards = [part.name for part in opened.parts]
    # datasets shards every list among gen_kwargs: only `shards` may be one.
    where = tuple(where) if isinstance(where, list) else where
    kwargs = {"store": opened, "shards": shards, "where": where, "columns": tuple(columns)}
    return IterableDataset.from_generator(_generate, gen_kwargs=kwargs)
