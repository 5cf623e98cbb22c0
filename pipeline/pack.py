"""Stage 2 of dvc.yaml: merge the staged images into the store, a new version whole."""

from functools import partial

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.base.progress import bar
from imageshelf.cli.options import CONTEXT, StageCommand, finish, pass_project
from imageshelf.project.params import AnnotationsParams, IngestParams, PackParams
from imageshelf.project.paths import Project
from imageshelf.stages.pack import PackPaths, run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@pass_project(
    "store", "manifest", "incoming", "remove_list", "annotations", "catalog", report="pack_report"
)
def pack(project: Project) -> None:
    """Merge the staged images into the store, each new version published whole.

    Same key with the same bytes: already there (metadata that arrived with it is
    added, never removed). Same key with different bytes: a conflict, handled by
    pack.on_conflict (error: fail and change nothing; replace; skip). Same bytes under
    a new key: a duplicate, by pack.on_duplicate (keep: its own record, the bytes stored
    once in a file; skip). Keys listed in
    data/remove.txt are dropped. Annotations in data/annotations/ and the folder rules
    in params.yaml are applied to every image, stored or new: the only way a field is
    removed. Every image gets a split (train, val, test by pack.split) from a hash of
    its key, unless its metadata names one. When nothing changes, the store is left
    byte-identical, so DVC sees no change.

    A store that is not the version dvc.lock records is refused (`dvc pull` it first)
    unless it holds every image of that version. pack.layout single: one file,
    rewritten whole. sharded: a folder of immutable shards; new images go into new
    shards and the others stay untouched. When pack.store names a new place and
    dvc.lock records the store elsewhere (the layout was switched), that store is
    converted. Also writes the catalog (every record, no image bytes) for `diff`.
    """
    settings, rules = project.settings(PackParams), project.settings(AnnotationsParams)
    ingest = project.settings(IngestParams)  # for images measured from the store, if any
    limit = ingest.max_pixels if ingest.measure else None
    progress = partial(bar, desc="pack")
    finish(run(PackPaths.of(project), settings, rules, progress=progress, max_pixels=limit))


if __name__ == "__main__":
    pack()
