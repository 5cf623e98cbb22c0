"""Stage 1 of dvc.yaml: find, check, hash and describe what arrived in data/incoming/."""

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.base.progress import bar
from imageshelf.cli.options import CONTEXT, StageCommand, finish, pass_project
from imageshelf.project.params import AnnotationsParams, IngestParams
from imageshelf.project.paths import Project
from imageshelf.stages.ingest import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@pass_project("incoming", "manifest", "store", report="ingest_report")
def ingest(project: Project) -> None:
    """Find, check, hash and describe the files in the incoming folder.

    Walks the folder recursively and decides "image or not" from each file's content.
    Metadata arrives in the formats datasets ship in: CSV, TSV and JSONL tables (a
    file_name or path column, relative to the table's folder), sidecars NAME.json or
    NAME.EXT.json, COCO instances JSON, Label Studio's JSON export, YOLO labels/*.txt
    with data.yaml, Pascal VOC and CVAT XML. Files matching annotations.ignore are
    listed in the report and not read. Stages, in the manifest pack reads, every image
    whose packing would change the store: new, different, or arriving with metadata the
    store lacks; images the store already holds as they are are counted, not staged, so
    a run costs what changed. A file unchanged since an earlier run (device, inode,
    size, mtime) is not read again. The report has one line and a reason for every file
    that cannot be used. With ingest.strict: true, any such file fails the stage; an
    annotation file that does not parse always does. dvc.yaml runs this stage on every
    `dvc repro` (always_changed): DVC never walks data/incoming/ itself.
    """
    settings = project.settings(IngestParams)
    rules = project.settings(AnnotationsParams)
    paths = (project.incoming, project.manifest, project.ingest_report)
    with bar(None, "ingest") as progress:
        result = run(*paths, settings, rules, progress, project.store)
    result.params_path = project.params_file
    finish(result)


if __name__ == "__main__":
    ingest()
