"""Stored images whose records lack what their pixels measure: a store packed before
properties (or by an older PROPS_VERSION) whose files have left data/incoming/, or one
merged from such a store. Ingest measures what arrives; these it will never see again,
so pack measures them once, from the bytes the store holds, on every core.

Pack's state remembers a store whose every record is measured (`PackState.measured`), so
later runs do not look at its records; without that (a first run, a lost state) one pass
over the records tells, reading no image.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import orjson

from ...base.progress import Progress
from ...images.properties import PROPS_VERSION, properties
from ...state.pack import PackState
from ...store import ImageStore
from .changes import Changes

ProgressBar = Callable[[int], AbstractContextManager[Progress]]  # made with a total
PARALLEL_FROM = 200  # images; below this a process pool costs more than it saves
CHUNK = 32


def unmeasured(store: ImageStore | None, state: PackState | None, changes: Changes) -> list[str]:
    """The stored keys this run keeps whose records lack this version's props and that
    no staged record brings them to, in key order."""
    if store is None or _all_measured(store, state):
        return []
    skip = set(changes.measured) | set(changes.removed) | set(changes.replaced)
    return [key for key, raw in store.raw_records() if key not in skip and not _measured(raw)]


def _all_measured(store: ImageStore, state: PackState | None) -> bool:
    return (
        state is not None
        and state.content_digest == store.header.content_digest
        and state.measured == PROPS_VERSION
    )


def _measured(raw: bytes) -> bool:
    if b'"props":' not in raw:
        return False
    props = orjson.loads(raw).get("props")
    return isinstance(props, dict) and props.get("v") == PROPS_VERSION


def measure_stored(
    store: ImageStore,
    changes: Changes,
    keys: list[str],
    max_pixels: int,
    progress: ProgressBar | None,
) -> None:
    """Plan the props of each of `keys` (changes.measured), measured from the store's
    bytes, with a progress bar: a million images take minutes, once."""
    bar = progress(len(keys)) if progress is not None and keys else nullcontext()
    with bar as shown:
        for key, props in measure(store, keys, max_pixels):
            changes.measured[key] = props
            if shown is not None:
                shown.update(1)


def measure(store: ImageStore, keys: list[str], max_pixels: int) -> Iterator[tuple[str, Any]]:
    """(key, props) for each of `keys`, its bytes read from `store` in this process and
    measured in forked workers when there are many (they never touch the store)."""
    pairs = ((key, store.get(key)) for key in keys)
    cores = os.cpu_count() or 1
    if cores < 2 or len(keys) < PARALLEL_FROM or "fork" not in mp.get_all_start_methods():
        for key, data in pairs:
            yield key, properties(data, max_pixels)
        return
    global _limit
    _limit = max_pixels
    with mp.get_context("fork").Pool(cores) as pool:
        yield from pool.imap(_measure_in_worker, pairs, chunksize=CHUNK)


_limit = 0  # the pixel limit, inherited by the forked workers


def _measure_in_worker(pair: tuple[str, bytes]) -> tuple[str, Any]:
    return pair[0], properties(pair[1], _limit)
