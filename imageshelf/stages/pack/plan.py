"""Pack's plan: everything a run will do, decided from its inputs (inputs.py) before
anything is written. A value: print it, test it, then hand it to publish.

It holds the changes record by record (changes.py), the store they were planned
against, whether the store is written at all (changes, a conversion, an outdated
format) and whether the removal list changed since the last pack. What planning learns
for the cache (the image hashes of a part, a shard's header) rides along as `memos`,
saved by publish: planning itself writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ...base.userfile import fingerprint
from ...project.params import PackParams
from ...state import cache
from ...store import Header, ImageStore, Part, StoreError
from .cache import changed_keys
from .changes import Changes, Memos, Since, plan_changes
from .inputs import PackInputs
from .measure import ProgressBar, measure_stored, unmeasured


@dataclass(frozen=True)
class PackPlan:
    """What a pack run will do, decided before anything is written."""

    changes: Changes
    source: Path | None  # the store planned against; None: a first pack
    converting: bool  # the store is written in its new place (the layout was switched)
    upgrade: str | None  # why the store is written again although nothing in it changes
    removals_changed: bool  # the removal list says other than at the last pack
    memos: Memos = field(default_factory=dict)  # cache entries learned while planning
    all_measured: bool = False  # every record of the new store carries this version's props

    @property
    def writes_store(self) -> bool:
        """A new version is published; else the store stays byte-identical."""
        return (
            self.source is None
            or self.changes.changes_store
            or self.converting
            or self.upgrade is not None
        )


def plan_pack(inputs: PackInputs, progress: ProgressBar | None = None) -> PackPlan:
    """Decide everything a pack run does, from its inputs alone (measuring, once, the
    stored images whose records lack props: measure.py, with `progress`)."""
    store, params = inputs.store, inputs.params
    memos: Memos = {}
    changes = plan_changes(
        store,
        inputs.paths.manifest,
        inputs.removals,
        params,
        inputs.tracked,
        since_last(inputs),
        memos,
    )
    upgrade = outdated(store, params, memos) if store is not None else None
    state = inputs.state
    if store is not None and inputs.max_pixels is not None:  # None: ingest.measure false
        keys = unmeasured(store, state, changes)
        measure_stored(store, changes, keys, inputs.max_pixels, progress)
    removals_changed = state is None or state.removal_list != changes.removal_digest
    measured = inputs.max_pixels is not None and changes.unmeasured_new == 0
    return PackPlan(
        changes, inputs.source, inputs.converting, upgrade, removals_changed, memos, measured
    )


def since_last(inputs: PackInputs) -> Since:
    """What the last pack of this very store settled: pack's state (for the ratios) and
    the cache (for the annotation files), each trusted only if it names this store."""
    store, state = inputs.store, inputs.state
    if store is None:
        return Since()
    same_ratios = (
        state is not None
        and state.content_digest == store.header.content_digest
        and state.split == dict(inputs.params.split)
    )
    return Since(same_ratios, changed_keys(store, inputs.tracked))


def outdated(store: ImageStore, params: PackParams, memos: Memos) -> str | None:
    """Why the store must be written again although nothing in it changes: a part in an
    older format version, or indexing other fields than params.yaml names."""
    for part in store.parts:
        why = _part_header(store, part, memos).outdated(params.index)
        if why is not None:
            return why
    return None


def _part_header(store: ImageStore, part: Part, memos: Memos) -> Header:
    """A part's header, kept in the cache by the shard's content and file fingerprint:
    asking it of every shard on each run would open them all (and after DVC's chmod,
    verify them all again: trust.py)."""
    if store.layout == "single":
        return store.part(part.name).header
    path = store.path / part.name
    stamp = list(fingerprint(path) or ())
    name = f"parts/{part.content_digest}.header"
    cached = cache.load(name)
    if isinstance(cached, dict) and cached.get("stamp") == stamp and stamp:
        try:
            return Header.decode(str(cached.get("header")).encode(), str(path))
        except StoreError:
            pass  # the cache is ours but may be damaged: ask the file
    header = store.part(part.name).header
    memos[name] = orjson.dumps({"stamp": stamp, "header": header.encode().decode()})
    return header
