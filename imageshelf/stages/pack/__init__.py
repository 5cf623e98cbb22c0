"""Pack: merge the staged manifest into the store, by the policies in params.yaml
(changes.py says them). If nothing changes, the store is not rewritten: it stays
byte-identical.

The layout (pack.layout) decides how a new version is written; when pack.store names a
new place and dvc.lock records the store elsewhere (the layout was switched), that
store is converted. Pack also writes the catalog (every record, no image bytes) that
`imageshelf diff` compares.

A run reads, then decides, then publishes, each in its own module:

- inputs.py: what pack decides from (the store, data/remove.txt, data/annotations/,
  its own state in state/pack.py, what it cached in cache.py). Reads only.
- plan.py: everything the run will do (changes.py: record by record), as a
  value. Writes nothing.
- publish.py: the plan carried out in a declared order (store, state, catalog,
  report, ingest) that a kill or a failure at any point leaves safe to run again.
  write.py writes the store; outcome.py is what the user is told.
"""

from __future__ import annotations

from ...project.params import AnnotationsParams, IngestParams, PackParams
from ...state.pack import read_state
from ...store.writer import tidy, writer_lock
from ...versions.history import check_recorded, previous_store, recorded_md5
from .changes import ConflictError, PackError
from .inputs import PackPaths, gather, read_removals
from .measure import ProgressBar
from .outcome import PackOutcome
from .plan import PackPlan, plan_pack
from .publish import STEPS, publish

__all__ = [
    "STEPS",
    "ConflictError",
    "PackError",
    "PackOutcome",
    "PackPaths",
    "PackPlan",
    "plan_pack",
    "read_removals",
    "run",
]


def run(
    paths: PackPaths,
    params: PackParams,
    rules: AnnotationsParams | None = None,
    progress: ProgressBar | None = None,
    max_pixels: int | None = IngestParams().max_pixels,
) -> PackOutcome:
    """The pack stage: check the store is the version dvc.lock records, then, under the
    writer's lock, read the inputs, plan, and publish the plan.

    rules: params.yaml's `annotations` section, applied with the tracked annotations
    (paths.annotations) to every record, stored or new. `progress(total)`, if given,
    makes the bar (a context manager) the store's write reports to. `max_pixels`:
    ingest's limit, for the stored images pack measures (measure.py); None: ingest
    measures nothing (`ingest.measure: false`), nor does pack.
    """
    if not paths.manifest.exists():
        raise PackError(f"{paths.manifest}: no staged manifest; run ingest first")
    previous = previous_store(paths.store)
    check_recorded(paths.store, recorded_digest(paths))
    paths.store.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(paths.store):  # held from before the inputs are read to the end
        if paths.store.is_dir():
            tidy(paths.store)  # what a killed pack left: DVC must not track it
        inputs = gather(paths, params, rules or AnnotationsParams(), previous, max_pixels)
        with inputs:
            return publish(plan_pack(inputs, progress), inputs, progress)


def recorded_digest(paths: PackPaths) -> str | None:
    """The content digest of the store dvc.lock records, if pack's state tells it: the
    state names this store, and dvc.lock records the report written with it (by its
    md5), so DVC recorded the store that run published. None otherwise (DVC is asked)."""
    state = read_state(paths.state)
    if state is None or state.store != paths.store.as_posix():
        return None
    return state.content_digest if recorded_md5(paths.report) == state.report_md5 else None
