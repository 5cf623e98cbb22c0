"""Stage 1 of dvc.yaml: find, check, hash and describe what arrived in data/incoming/."""

from pathlib import Path

import _env  # noqa: F401  (before any package: the project's environment)
import click

from imageshelf.commands import (
    CONTEXT,
    StageCommand,
    finish,
    incoming_option,
    manifest_option,
    params_option,
    report_option,
    store_option,
)
from imageshelf.params import AnnotationsParams, IngestParams, load_params
from imageshelf.progress import bar
from imageshelf.stages.ingest import run


@click.command(cls=StageCommand, context_settings=CONTEXT)
@incoming_option
@manifest_option
@report_option("reports/ingest.json")
@store_option
@params_option
def ingest(incoming: Path, manifest: Path, report: Path, store_path: Path, params: Path) -> None:
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
    settings = load_params(IngestParams, params)
    rules = load_params(AnnotationsParams, params)
    with bar(None, "ingest") as progress:
        result = run(incoming, manifest, report, settings, rules, progress, store_path)
    result.params_path = params
    finish(result)


if __name__ == "__main__":
    ingest()
