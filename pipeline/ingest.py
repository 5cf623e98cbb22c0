"""Stage 1 of dvc.yaml: find, check, hash and describe what arrived in data/incoming/."""

from pathlib import Path

import click

from imageshelf.commands import (
    CONTEXT,
    ShelfCommand,
    incoming_option,
    manifest_option,
    mb,
    params_option,
    report_option,
)
from imageshelf.params import AnnotationsParams, IngestParams, load_params
from imageshelf.progress import bar
from imageshelf.stages.ingest import run


@click.command(cls=ShelfCommand, context_settings=CONTEXT)
@incoming_option
@manifest_option
@report_option("reports/ingest.json")
@params_option
def ingest(incoming: Path, manifest: Path, report: Path, params: Path) -> None:
    """Find, check, hash and describe the files in the incoming folder.

    Walks the folder recursively and decides "image or not" from each file's content.
    Metadata arrives in the formats datasets ship in: CSV, TSV and JSONL tables (a
    file_name or path column, relative to the table's folder), sidecars NAME.json or
    NAME.EXT.json, COCO instances JSON, YOLO labels/*.txt with data.yaml, Pascal VOC
    XML. Files matching annotations.ignore are listed in the report and not read.
    Writes the staged manifest for pack, and a report with one line and a reason for
    every file that cannot be used. With ingest.strict: true, any such file fails the
    stage; an annotation file that does not parse always does.
    """
    settings = load_params(IngestParams, params)
    rules = load_params(AnnotationsParams, params)
    with bar(None, "ingest") as progress:
        result = run(incoming, manifest, report, settings, rules, progress)
    rejects = result.rejects
    click.echo(
        f"ingest: {len(result.staged)} images staged ({mb(result.staged_bytes)}), "
        f"{len(rejects)} rejected" + (f" (see {report})" if rejects else "")
    )
    for reject in rejects[:10]:
        click.echo(f"  rejected {reject.path}: {reject.reason}", err=True)
    if len(rejects) > 10:
        click.echo(f"  ... and {len(rejects) - 10} more in {report}", err=True)
    if result.ignored:
        click.echo(
            f"  {len(result.ignored)} file(s) ignored by annotations.ignore (see {report})",
            err=True,
        )
    if result.unused_metadata:
        click.echo(
            f"  {len(result.unused_metadata)} metadata file(s) or row(s) matched no "
            f"image (see {report})",
            err=True,
        )
    result.check_strict(settings, params)


if __name__ == "__main__":
    ingest()
