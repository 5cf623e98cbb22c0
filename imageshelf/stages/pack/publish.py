"""Pack's publish: the plan carried out, one step at a time, in the order STEPS declares.

The order is the crash-safety contract. Each step publishes whole files (base/atomic.py) and
is complete before the next starts, so a kill or a failure between two steps leaves
the steps before it done and the rest not begun; the next pack, which plans from the
store and the state, does the rest and arrives where an uninterrupted run would have:

- store: the new version, temp file then fsync then rename (shards first, index.json
  last); nothing else is published before it, so a failure here leaves everything as
  it was. When the plan writes nothing, the store stays byte-identical.
- state: what was published (state/pack.py), and what this run learned for the cache
  (cache.py). Lost to a kill before it, the state names the store before, and the
  next run looks at every record once, and plans nothing.
- catalog: every record of the published store, no bytes. validate refuses a catalog
  that is not the store's, so a failure here is one line and the next run catches up.
- report: reports/pack.json, for people and validate; pack never reads it back.
- ingest: tell ingest's cache where the staged images are now stored (state/seen.py), so the
  next ingest need not look them up.
"""

from __future__ import annotations

import contextlib
import hashlib

from ...base.atomic import json_bytes, write_bytes
from ...base.progress import per_item
from ...errors import ShelfError
from ...images.properties import PROPS_VERSION
from ...records.manifest import read_manifest_keys
from ...state import cache
from ...state.pack import PackState, write_state
from ...state.seen import note_stored
from ...store import Header, ImageStore, Record
from ...versions.catalog import write_catalog
from .cache import remember_folders, remember_tracked
from .changes import PackError
from .inputs import PackInputs
from .measure import ProgressBar
from .outcome import PackOutcome
from .plan import PackPlan
from .write import apply_changes

STEPS = ("store", "state", "catalog", "report", "ingest")  # the contract: see above


def publish(plan: PackPlan, inputs: PackInputs, progress: ProgressBar | None = None) -> PackOutcome:
    """Carry out `plan`, step by step in the order of STEPS; what the run did.
    `progress(total)`, if given, makes the bar (a context manager) the store step
    reports to."""
    steps = _Publish(plan, inputs, progress)
    try:
        for name in STEPS:
            getattr(steps, f"_{name}")()
    finally:
        inputs.close()
        if steps.published is not None:
            steps.published.close()
    assert steps.outcome is not None
    return steps.outcome


class _Publish:
    """The steps of one publish, each a method named after it, sharing what the earlier
    steps made: the outcome (with the published header) and the published store."""

    def __init__(self, plan: PackPlan, inputs: PackInputs, progress: ProgressBar | None) -> None:
        self.plan, self.inputs, self.progress = plan, inputs, progress
        self.outcome: PackOutcome | None = None
        self.published: ImageStore | None = None
        self.report_bytes = b""
        self.rewritten: str | None = None  # the single file's part before, if rewritten

    def _store(self) -> None:
        """The new version, or the store as it is when the plan changes nothing in it.
        The store read so far is closed here: the published one is opened anew."""
        plan, inputs = self.plan, self.inputs
        if inputs.store is not None and not plan.converting and not inputs.store.path.is_dir():
            self.rewritten = inputs.store.parts[0].content_digest
        if plan.writes_store:
            header = self._write()
        else:
            assert inputs.store is not None  # a first pack always writes
            header = inputs.store.header
        inputs.close()
        self.outcome = PackOutcome(plan, header, inputs.params, inputs.paths)
        self.report_bytes = json_bytes(self.outcome.report())

    def _write(self) -> Header:
        plan, inputs, changes = self.plan, self.inputs, self.plan.changes
        store, paths = inputs.store, inputs.paths
        total = len(changes.writes) + (len(store) if store is not None else 0)
        bar = self.progress(total) if self.progress is not None else contextlib.nullcontext()
        with bar as shown:
            return apply_changes(
                paths.store,
                paths.manifest,
                paths.incoming,
                changes,
                inputs.params,
                base=store if plan.converting else None,
                on_item=None if shown is None else per_item(shown),
                held=store,
            )

    def _state(self) -> None:
        """What was published, and what planning and this run learned for the cache."""
        plan, inputs, outcome = self.plan, self.inputs, self.outcome
        assert outcome is not None
        digest = outcome.header.content_digest
        state = PackState(
            inputs.paths.store.as_posix(),
            digest,
            dict(inputs.params.split),
            plan.changes.removal_digest,
            hashlib.md5(self.report_bytes).hexdigest(),
            PROPS_VERSION if plan.all_measured else 0,
        )
        write_state(state, inputs.paths.state)
        for name, data in plan.memos.items():
            cache.save_bytes(name, data)
        remember_tracked(digest, inputs.tracked)
        if inputs.stored_folders is not None:
            changes = plan.changes
            remember_folders(digest, inputs.stored_folders, changes.removed, changes.added)

    def _catalog(self) -> None:
        paths = self.inputs.paths
        self.published = ImageStore(paths.store)
        try:
            write_catalog(self.published, paths.catalog)
        except ShelfError as exc:
            raise PackError(
                f"{paths.store} was published, but its catalog was not: {exc}; "
                "fix that and run pack again"
            ) from None

    def _report(self) -> None:
        write_bytes(self.inputs.paths.report, self.report_bytes)

    def _ingest(self) -> None:
        """Where each staged image (and its paired files) is stored now, by part."""
        published = self.published or ImageStore(self.inputs.paths.store)
        self.published = published
        staged = list(read_manifest_keys(self.inputs.paths.manifest))
        where: dict[str, str] = {}
        for key, raw, part in published.raw_records_of(staged):
            where[key] = part.content_digest
            if b'"paired":' in raw:  # its paired files are as stored as it is
                for paired in Record.decode(key, raw).paired.values():
                    where[paired.file] = part.content_digest
        before = self.rewritten
        note_stored(where, _carried(published, before, self.plan) if before else None)


def _carried(published: ImageStore, before: str, plan: PackPlan) -> tuple[str, dict[str, str]]:
    """(the single file's part before this pack, {file: the part now} for every key
    whose record the plan left as it was, and its paired files): a no-op run just after
    an add need not look every earlier image up again (and report what it said of them:
    reports/ingest.json and dvc.lock would change)."""
    parts = published.parts
    now: dict[str, str] = {}
    if len(parts) != 1 or parts[0].content_digest == before:
        return before, now
    part = parts[0]
    changes = plan.changes
    changed = changes.writes | set(changes.relabeled) | set(changes.retracked)
    changed |= set(changes.resplit) | set(changes.measured)
    for key, raw in published.part(part.name).raw_records():
        if key in changed:
            continue
        now[key] = part.content_digest
        if b'"paired":' in raw:
            for paired in Record.decode(key, raw).paired.values():
                now[paired.file] = part.content_digest
    return before, now
