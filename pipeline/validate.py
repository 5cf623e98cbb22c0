"""Stage 3 of dvc.yaml: prove every record intact and every staged image present."""

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.base.progress import bar
from imageshelf.cli.options import CONTEXT, StageCommand, finish, pass_project
from imageshelf.project.paths import Project
from imageshelf.stages.validate import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@pass_project("store", "manifest", "incoming", "pack_report", "catalog", report="validate_report")
@click.option(
    "--full",
    is_flag=True,
    help="Re-hash every part, also those proven before and unchanged since, and read "
    "every staged image's source file, also those as ingest hashed them.",
)
def validate(project: Project, full: bool) -> None:
    """Prove every record in the store is intact and every staged image is in it.

    Proves what changed: every part (the single file, or a shard) that is new or
    rewritten is read in full: LMDB's structure, every image re-hashed, every record
    parsed, the header's count and digest. A part proven before on this machine and
    unchanged since (the same content digest and file fingerprint: device, inode, size,
    mtime) is not read again; --full reads every part, for damage a fingerprint does not
    show. Then the catalog, and each staged image against the store and its source
    file. Any failure exits non-zero, so `dvc repro` stops before a bad store is pushed.
    """
    paths = (project.store, project.manifest, project.incoming, project.pack_report)
    outputs = (project.catalog, project.validate_report)
    with bar(None, "validate") as progress:
        result = run(*paths, *outputs, progress, full)
    finish(result)


if __name__ == "__main__":
    validate()
