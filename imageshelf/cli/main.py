"""`imageshelf` (also `python -m imageshelf`): the tools to look inside a store and move
images out of it. The pipeline's stages are scripts of their own, in pipeline/."""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..base.progress import Progress, bar, per_item
from ..project.params import PackParams, QualityParams
from ..project.paths import Project
from ..quality.audit import audit, findings_filter, quality_line
from ..quality.findings import KINDS, Findings
from ..read.columnar import select_columnar
from ..read.query import QueryError, check_store_fields, parse_condition, select
from ..store import ImageStore, Record
from .options import CONTEXT, ShelfGroup, pass_project, printable


@click.group(cls=ShelfGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="imageshelf")
def cli() -> None:
    """Look inside an image store and take images out of it.

    The store is the LMDB file (or folder of shards) that `dvc repro` packs from
    data/incoming/ with the stages in pipeline/. These tools read it: list, filter,
    export, audit (what is wrong with the images), compare versions, split it among
    machines.
    """


where_option = click.option(
    "--where",
    "where",
    multiple=True,
    metavar="COND",
    help="Only images whose metadata matches: label=rose, label=rose,tulip, split=val, "
    "width>=256, height=100..200, label!=rose. Repeat: all must hold.",
)
label_option = click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="LABEL",
    help="Only images with this label; repeat for several.",
)
split_option = click.option(
    "--split",
    "splits",
    multiple=True,
    metavar="SPLIT",
    help="Only images in this split (train, val, test); repeat for several.",
)


def _conditions(
    where: tuple[str, ...], labels: tuple[str, ...], splits: tuple[str, ...]
) -> list[str]:
    conditions = list(where)
    if labels:
        conditions.append("label=" + ",".join(labels))
    if splits:
        conditions.append("split=" + ",".join(splits))
    for condition in conditions:
        try:
            parse_condition(condition)
        except QueryError as exc:
            raise click.BadParameter(str(exc), param_hint="--where") from None
    return conditions


def remote_options(command: Any) -> Any:
    """--repo, --rev and --cache-limit: read a version from a DVC repository's remote,
    nothing checked out."""
    for option in reversed(
        [
            click.option(
                "--repo",
                default=None,
                help="Read the store from this DVC repository (a URL or a path) instead of "
                "the workspace: the index and catalog first, then only the shards needed.",
            ),
            click.option("--rev", default=None, help="With --repo: the git revision."),
            click.option(
                "--cache-limit",
                default=None,
                type=click.IntRange(1),
                metavar="MB",
                help="With --repo: keep at most this many MB of fetched shards "
                "(least recently used out first).",
            ),
        ]
    ):
        command = option(command)
    return command


def _open(project: Project, repo: str | None, rev: str | None, limit_mb: int | None) -> ImageStore:
    """The workspace's store, or with `repo` the one at `rev` there, read from DVC (at
    the path --store gives, else the one that revision records)."""
    if repo is None:
        if rev is not None or limit_mb is not None:
            raise click.UsageError("--rev and --cache-limit go with --repo")
        return ImageStore(project.store)
    from ..read.remote import open_store

    given = project.given.get("store")
    limit = limit_mb * 1_000_000 if limit_mb else None
    return open_store(repo, rev, None if given is None else str(given), cache_limit=limit)


def _matching(store: ImageStore, conditions: list[str]) -> Iterator[Record]:
    """The records matching `conditions`, in key order, part by part through
    `part_records`: a store read from a remote answers from its catalog, no shard
    fetched."""
    on_records, keep = findings_filter(store, conditions)  # leaks=false: docs/QUALITY.md
    check_store_fields(store, on_records)  # once: a field only newer shards hold is no typo
    columnar = select_columnar(store, on_records) if on_records else None  # read/columnar.py
    streams: list[Iterator[Record]] = [
        select(store.part_records(p.name), on_records, check=False)
        if columnar is None
        else map(store.part_records(p.name).record, columnar.keys[p.name])
        for p in store.parts
    ]
    merged = heapq.merge(*streams, key=lambda record: record.key)
    return merged if keep is None else (record for record in merged if keep(record.key))


@cli.command("ls")
@pass_project("store")
@remote_options
@where_option
@label_option
@split_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: key, split, size, format, width, height, meta.",
)
def ls_command(
    project: Project,
    repo: str | None,
    rev: str | None,
    cache_limit: int | None,
    where: tuple[str, ...],
    labels: tuple[str, ...],
    splits: tuple[str, ...],
    as_json: bool,
) -> None:
    """List the images in the store, one per line, in key order.

    Columns, separated by tabs: size in bytes, format, split, label, key. Keys with
    control characters are shown escaped. Filters read metadata only, never image
    bytes. A summary goes to stderr.
    """
    store = _open(project, repo, rev, cache_limit)
    shown = total = 0
    for record in _matching(store, _conditions(where, labels, splits)):
        if as_json:
            click.echo(
                json.dumps(
                    {"key": record.key, **record.to_json()}, ensure_ascii=False, sort_keys=True
                )
            )
        else:
            label = record.metadata.get("label", "")
            split = record.effective_split or ""
            click.echo(
                f"{record.info.size}\t{record.info.format}\t{split}\t{label}\t"
                f"{printable(record.key)}"
            )
        shown += 1
        total += record.info.size
    click.echo(f"{shown} of {len(store)} images, {total:,} bytes", err=True)


@cli.command("export")
@pass_project("store")
@remote_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (created if missing).",
)
@where_option
@label_option
@split_option
@click.option(
    "--as",
    "layout",
    type=click.Choice(["imagefolder", "coco", "yolo", "label-studio", "webdataset"]),
    default="imagefolder",
    show_default=True,
    help="imagefolder: the original images under their keys, with the "
    "metadata files Hugging Face's imagefolder reads. coco: with "
    "annotations/instances.json (pycocotools, torchvision). yolo: with label files, "
    "data.yaml and split lists (ultralytics). label-studio: with tasks.json and "
    "label_config.xml, to correct labels in Label Studio (its JSON export, put in "
    "data/annotations/, brings them back). webdataset: tar shards of image + .json "
    "pairs, for streaming training. Ingest reads each back (label-studio: the "
    "project's JSON export, once people have annotated the tasks).",
)
@click.option(
    "--shard-images",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="webdataset: at most this many images per shard.",
)
@click.option(
    "--shard-mb",
    default=1024,
    show_default=True,
    type=click.IntRange(1),
    help="webdataset: at most this many megabytes per shard.",
)
@click.option(
    "--split-folders",
    is_flag=True,
    help="imagefolder: write each image under its split's folder (train/KEY, val/KEY, "
    "test/KEY), where Hugging Face finds splits; without it, keys stay as they are and HF "
    "sees splits only where keys already lie under split folders.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace files of the same name in --out (refused without it). Nothing this "
    "export does not write is ever deleted.",
)
@click.argument("keys", nargs=-1)
def export_command(
    project: Project,
    repo: str | None,
    rev: str | None,
    cache_limit: int | None,
    out_dir: Path,
    where: tuple[str, ...],
    labels: tuple[str, ...],
    splits: tuple[str, ...],
    layout: str,
    shard_images: int,
    shard_mb: int,
    split_folders: bool,
    overwrite: bool,
    keys: tuple[str, ...],
) -> None:
    """Write images back out, byte-identical: with their annotations in the layout a
    peer reads (Hugging Face imagefolder, COCO, YOLO), or as WebDataset shards.

    Exports the KEYS given, or every image that matches the filters (all of them
    without any). Each image lands under its key; a key that would land outside
    --out (an absolute path, '..', or a symlink inside --out) is refused before
    anything is written.
    """
    store = _open(project, repo, rev, cache_limit)
    records = _selected(store, _conditions(where, labels, splits), keys)
    total = sum(r.info.size for r in records)
    with bar(len(records), "export") as progress:
        if layout == "webdataset":
            shards = (shard_images, shard_mb * 1_000_000)
            where_to, notes = _export_webdataset(
                store, records, out_dir, shards, overwrite, progress
            )
        else:
            where_to, notes = _export_files(
                store, records, out_dir, layout, split_folders, overwrite, progress
            )
    click.echo(f"exported {len(records)} images ({total:,} bytes) to {where_to}")
    for note in notes[:10]:
        click.echo(f"  {note}", err=True)
    if len(notes) > 10:
        click.echo(f"  ... and {len(notes) - 10} more notes", err=True)


def _selected(store: ImageStore, conditions: list[str], keys: tuple[str, ...]) -> list[Record]:
    """The records to export: the keys given (each must be in the store), or all that
    match the conditions."""
    if not keys:
        return list(_matching(store, conditions))
    missing = [k for k in keys if k not in store]
    if missing:
        raise click.ClickException(
            f"not in {store.path}: {', '.join(map(repr, missing[:5]))}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    wanted = set(keys)
    return [r for r in _matching(store, conditions) if r.key in wanted]


def _export_webdataset(
    store: ImageStore,
    records: list[Record],
    out_dir: Path,
    limits: tuple[int, int],
    overwrite: bool,
    progress: Progress,
) -> tuple[str, list[str]]:
    from ..export import stale_shards, write_shards

    shards = write_shards(
        store,
        records,
        out_dir,
        max_count=limits[0],
        max_bytes=limits[1],
        on_item=per_item(progress),
        overwrite=overwrite,
    )
    notes = []
    stale = stale_shards(out_dir, shards)
    if stale:
        notes.append(
            f"{len(stale)} older shard file(s) in {out_dir} were not written by this "
            f"export ({stale[0].name}, ...): delete them before reading the folder"
        )
    return f"{len(shards)} WebDataset shard(s) in {out_dir}", notes


def _export_files(
    store: ImageStore,
    records: list[Record],
    out_dir: Path,
    layout: str,
    split_folders: bool,
    overwrite: bool,
    progress: Progress,
) -> tuple[str, list[str]]:
    from ..export import export_files

    exported = export_files(
        store,
        records,
        out_dir,
        on_item=per_item(progress),
        overwrite=overwrite,
        layout=layout,
        split_folders=split_folders,
    )
    written = exported.files
    listed = (
        ", ".join(written)
        if len(written) <= 3
        else f"{len(written)} annotation files ({', '.join(written[:2])}, ...)"
    )
    return f"{out_dir}, with {listed}", exported.notes


@cli.command("audit")
@pass_project("store")
@remote_options
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Only this finding (repeat for several). Default: every one.",
)
@click.option("--json", "as_json", is_flag=True, help="Every finding by key, as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every key, not the first 10 a kind.")
def audit_command(
    project: Project,
    repo: str | None,
    rev: str | None,
    cache_limit: int | None,
    kinds: tuple[str, ...],
    as_json: bool,
    show_all: bool,
) -> None:
    """Say what is wrong with the store's images: exact and near duplicates, leaks
    (a copy or near copy of an image in another split), and images no model should see
    (dark, light, blurry, flat, grayscale, odd size or aspect, unreadable).

    Reads the records only: what each image's pixels measure was kept when it was
    stored. Thresholds: the quality section of params.yaml. Select the images found
    with --where in ls and export (leaks=false, dark=true); act on them in
    data/remove.txt or data/annotations/, or set one aside as not a problem in
    data/reviewed.jsonl (docs/QUALITY.md).
    """
    store = _open(project, repo, rev, cache_limit)
    found = audit(store, project.settings(QualityParams), reviewed=project.reviewed)
    if as_json:
        report = found.report()
        if kinds:
            report = {"near_threshold": report["near_threshold"], **_only(report, kinds)}
        click.echo(json.dumps(report, ensure_ascii=False, sort_keys=True))
        return
    for line in audit_lines(found, kinds or KINDS, None if show_all else 10):
        click.echo(line)
    click.echo(quality_line(found.metrics()), err=True)


def _only(report: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """The parts of an audit's report that `kinds` name, with the reviewed decisions
    on those kinds."""
    out = {kind: report[kind] for kind in kinds if kind in report}
    issues = {kind: keys for kind, keys in report["issues"].items() if kind in kinds}
    out["reviewed"] = _reviewed_of(report["reviewed"], kinds)
    return {**out, "issues": issues} if issues else out


def _reviewed_of(reviewed: dict[str, Any], kinds: Iterable[str]) -> dict[str, Any]:
    """The report's reviewed decisions, those on `kinds` only."""
    wanted = set(kinds)
    return {
        part: value if part == "file" else [d for d in value if d["kind"] in wanted]
        for part, value in reviewed.items()
    }


def audit_lines(found: Findings, kinds: Iterable[str], most: int | None) -> Iterator[str]:
    """What `imageshelf audit` prints: each kind found, then its keys (at most `most` a
    kind), tab-separated where there are several a line; then what was reviewed."""
    report, kinds = found.report(), tuple(kinds)
    for kind in kinds:
        lines = list(_kind_lines(kind, report))
        if not lines:
            continue
        yield f"{kind.replace('_', ' ')}: {len(lines)}"
        for line in lines[:most]:
            yield f"  {line}"
        if most is not None and len(lines) > most:
            yield f"  ... and {len(lines) - most} more (--all, or --json)"
    yield from _reviewed_lines(_reviewed_of(report["reviewed"], kinds), most)


def _reviewed_lines(reviewed: dict[str, Any], most: int | None) -> Iterator[str]:
    """How many findings the reviewed file set aside, naming it, and its stale lines
    (keys the store does not hold: to clean from the file)."""
    applied, stale = reviewed["applied"], reviewed["stale"]
    if not (applied or stale):
        return
    file = reviewed["file"]
    yield f"reviewed: {len(applied)} set aside as not a problem ({file})"
    for decision in stale[:most]:
        keys = "\t".join(map(printable, decision["keys"]))
        yield f"  stale: line {decision['line']} names a key the store does not hold: {keys}"
    if most is not None and len(stale) > most:
        yield f"  ... and {len(stale) - most} more stale (--json)"


def _kind_lines(kind: str, report: dict[str, Any]) -> Iterator[str]:
    if kind == "exact_duplicates":
        yield from ("\t".join(map(printable, group)) for group in report["exact_duplicates"])
    elif kind == "near_duplicates":
        for group in report["near_duplicates"]:
            yield "\t".join(map(printable, group["keys"]))
    elif kind == "leaks":
        for leak in report["leaks"]:
            a, b = printable(leak["key_a"]), printable(leak["key_b"])
            how = "same bytes" if leak["kind"] == "exact" else f"{leak['distance']} bits apart"
            yield f"{leak['split_a']}\t{a}\t{leak['split_b']}\t{b}\t{how}"
    else:
        yield from map(printable, report["issues"].get(kind, ()))


@cli.command("sql")
@click.argument("query")
@pass_project("catalog", "store")
@click.option(
    "--rev",
    "revs",
    multiple=True,
    metavar="[NAME=]REV",
    help="Ask the version at this git revision (read through DVC, as diff reads it) as "
    "`images`, instead of the workspace's; NAME=REV adds it as the table NAME beside "
    "`images`, for questions of change (--rev before=HEAD~1). Repeatable.",
)
@click.option(
    "--format",
    "how",
    type=click.Choice(["table", "csv", "json"]),
    default=None,
    help="table (aligned), csv, or json (an object per row); default: table on a "
    "terminal, csv otherwise.",
)
def sql_command(query: str, project: Project, revs: tuple[str, ...], how: str | None) -> None:
    """Ask the dataset in SQL: the table `images`, a row per image (DuckDB: the sql extra).

    Its columns: key, split, format, width, height, size, sha256; each metadata field
    as a column of its own (label, objects, text...); meta whole as JSON
    (meta->>'label'), props as a struct (props.p99), paired (the roles of its paired
    images). Only the catalog pack writes beside the store is read, no image. Examples:

    \b
      imageshelf sql "SELECT split, label, count(*) AS n FROM images GROUP BY ALL ORDER BY ALL"
      imageshelf sql "SELECT o.category, count(*) FROM images, UNNEST(objects) AS t(o) GROUP BY 1"
      imageshelf sql --rev before=HEAD~1 "SELECT key, b.label AS was, i.label AS now
          FROM images i JOIN before b USING (key) WHERE i.label IS DISTINCT FROM b.label"
    """
    from ..sql import answer, versions_for, written

    versions = versions_for(revs, project.catalog, project.given.get("catalog"), project.store)
    columns, rows = answer(query, versions)
    for version in versions:
        for note in version.notes:
            click.echo(f"note: {note}", err=True)
    chosen = how or ("table" if sys.stdout.isatty() else "csv")
    for line in written(columns, rows, chosen):
        click.echo(line)


@cli.command("diff")
@click.argument("rev_a", default="HEAD")
@click.argument("rev_b", default="workspace")
@pass_project("catalog")
@click.option(
    "--repo",
    default=".",
    show_default=True,
    help="The git repository whose revisions to compare: a path or URL (the one "
    "a store was imported from, say).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff_command(rev_a: str, rev_b: str, project: Project, repo: str, as_json: bool) -> None:
    """Images added, removed, changed and relabeled between two versions of the store.

    REV_A and REV_B are git revisions (a commit, branch or tag, HEAD~N or HEAD@{N};
    default HEAD and the workspace). Only the small catalogs DVC versions beside the
    store are read (from DVC's cache, or fetched from the remote), each where its
    revision's dvc.yaml puts it: no image bytes are downloaded. changed: the same key
    with different bytes. relabeled: the same bytes, different metadata or split.
    """
    from ..versions.catalog import catalog_at, diff_catalog_folders, field_changes
    from ..versions.history import resolve_revision

    if repo != "." and "workspace" in (rev_a, rev_b):
        raise click.UsageError(
            "with --repo, give two git revisions: another repository's workspace cannot be read"
        )
    commits = [
        None if rev == "workspace" else resolve_revision(rev, repo) for rev in (rev_a, rev_b)
    ]
    folders = []
    given = project.given.get("catalog")  # else where each revision's dvc.yaml puts it
    for rev, commit in zip((rev_a, rev_b), commits, strict=True):
        folder = catalog_at(commit, project.catalog if commit is None else given, repo, named=rev)
        if not folder.names:
            click.echo(
                f"note: no catalog in {folder.where} at {rev}: counted as an empty store",
                err=True,
            )
        folders.append(folder)
    result = diff_catalog_folders(*folders)
    if as_json:
        click.echo(
            json.dumps({"a": rev_a, "b": rev_b, **result.to_json()}, indent=2, ensure_ascii=False)
        )
        return
    for record in result.added:
        click.echo(f"added\t{printable(record.key)}")
    for record in result.removed:
        click.echo(f"removed\t{printable(record.key)}")
    for _old, record in result.changed:
        click.echo(f"changed\t{printable(record.key)}")
    for before, after in result.relabeled:
        fields = "; ".join(
            f"{name}: {json.dumps(a, ensure_ascii=False)} -> {json.dumps(b, ensure_ascii=False)}"
            for name, (a, b) in field_changes(before, after).items()
        )
        click.echo(f"relabeled\t{printable(after.key)}\t{fields}")
    click.echo(
        f"{rev_a} -> {rev_b}: {len(result.added)} added, {len(result.removed)} "
        f"removed, {len(result.changed)} changed, {len(result.relabeled)} relabeled",
        err=True,
    )


@cli.command("shards")
@pass_project("store")
@click.option(
    "--rank",
    type=click.IntRange(0),
    default=None,
    help="Only the shards this rank reads (with --world-size).",
)
@click.option(
    "--world-size",
    type=click.IntRange(1),
    default=None,
    help="How many ranks (machines or processes) share the store.",
)
def shards_command(project: Project, rank: int | None, world_size: int | None) -> None:
    """List a sharded store's shard files, one path per line (for `dvc pull`).

    With --rank and --world-size, only the whole shards that rank reads, balanced by
    image count: the same answer on every machine. A training node pulls just those:

      dvc pull data/images/index.json

      dvc pull $(imageshelf shards --rank 3 --world-size 8)

    The counts go to stderr.
    """
    from ..read.dataset import shards_for_rank

    if rank is None or world_size is None:
        if (rank is None) != (world_size is None):
            raise click.UsageError("give --rank and --world-size together")
    elif rank >= world_size:
        raise click.UsageError(f"--rank must be below --world-size ({world_size})")
    store_path = project.store
    store = ImageStore(store_path)
    if store.layout != "sharded":
        raise click.ClickException(
            f"{store_path} is a single file, not a folder of shards "
            "(set pack.layout: sharded in params.yaml)"
        )
    parts = store.parts
    if rank is not None and world_size is not None:
        wanted = set(shards_for_rank(store, rank, world_size))
        parts = [part for part in parts if part.name in wanted]
    for part in parts:
        click.echo(str(store_path / part.name))
    images = sum(part.count for part in parts)
    click.echo(
        f"{len(parts)} of {len(store.parts)} shards, {images} of {len(store)} images", err=True
    )


@cli.command("compact")
@pass_project("store", "catalog")
def compact_command(project: Project) -> None:
    """Rewrite a sharded store into full shards, in key order.

    Packing adds a shard per batch, so many small batches leave many small shards.
    This rewrites every image into shards of pack.shard_mb, published at once (the
    old shards stay until the new index is in place). The next `dvc push` uploads
    every shard again: compact rarely. Then record it: `dvc commit -f pack && dvc
    repro`.
    """
    from ..tools.compact import compact

    store_path, settings = project.store, project.settings(PackParams)
    with bar(None, "compact") as progress:
        result = compact(store_path, project.catalog, settings, progress)
    if result is None:
        click.echo(f"compact: {store_path} is a single file, always compact: nothing to do")
        return
    before, after = result
    click.echo(
        f"compact: {len(after)} images in {len(after.parts)} shard(s), from "
        f"{before}. Record it: dvc commit -f pack && dvc repro"
    )


@cli.command("merge")
@click.argument("rev")
@pass_project("store", "catalog")
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "keep", "take"]),
    default="error",
    show_default=True,
    help="A key with different images in the two versions: error (change "
    "nothing), keep (this store's image) or take (REV's).",
)
def merge_command(rev: str, project: Project, on_conflict: str) -> None:
    """Add every image of the store at git revision REV to the store in the workspace.

    For two teammates who packed at the same time. When `git pull` stops on a
    conflict in dvc.lock and reports/, take your teammate's side, fetch their store,
    and merge yours (your last commit, HEAD) into it:

      git checkout --theirs dvc.lock reports && dvc pull

      imageshelf merge HEAD && dvc repro

    then commit and push. REV's store comes from DVC's cache (or its remote). Removals
    and annotations need nothing here: git merges data/remove.txt and data/annotations/,
    and `dvc repro` applies them.
    """
    import os
    import tempfile

    from ..tools.merge import merge
    from ..versions.history import store_at

    store_path, settings = project.store, project.settings(PackParams)
    if not store_path.exists():
        raise click.ClickException(
            f"{store_path}: no store in the workspace; `dvc pull "
            f"{store_path}` fetches the one dvc.lock records"
        )
    # Beside the store (the same disk), named like every temporary file (.*.tmp-*), which
    # git and DVC ignore.
    scratch = tempfile.mkdtemp(prefix=f".merge.tmp-{os.getpid()}-", dir=store_path.parent)
    try:
        with store_at(rev, store_path, Path(scratch)) as other, bar(None, "merge") as progress:
            result = merge(
                store_path,
                other,
                settings,
                project.catalog,
                on_conflict,  # type: ignore[arg-type]
                progress,
            )
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    assert result.header is not None
    parts = [f"{len(result.added)} added from {rev}"]
    if result.relabeled:
        parts.append(f"{len(result.relabeled)} with metadata combined")
    if result.conflicts:
        kept = len(result.conflicts) - len(result.taken)
        parts.append(f"{len(result.conflicts)} conflicts ({len(result.taken)} taken, {kept} kept)")
    click.echo(
        f"merge: {', '.join(parts)}; {store_path} holds {result.header.count} images. "
        "Record it: dvc repro, then commit dvc.lock and reports/"
    )


@cli.command("view")
@pass_project("store")
@click.option(
    "--rev",
    default=None,
    help="Show the store at this git revision (a commit, branch or tag), read from "
    "DVC's cache, or fetched from the remote; default: the workspace's.",
)
@click.option(
    "--diff",
    nargs=2,
    default=None,
    metavar="REV_A REV_B",
    help="Open on what changed from REV_A to REV_B (`workspace` for the workspace): "
    "added, removed, changed and relabeled images, as pictures.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one)."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (an IPv6 one too: ::1, ::). Anything but loopback lets "
    "others on the network see every image (there is no login): it warns.",
)
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Beyond loopback, answer requests for this host name too (repeatable); the "
    "machine's own name and the address listened on are answered, any other refused.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="$XDG_CACHE_HOME/imageshelf/thumbnails",
    help="Where thumbnails are kept, by content hash.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="No forms: nothing can be decided from the pages (for a shared screen).",
)
def view_command(
    project: Project,
    rev: str | None,
    diff: tuple[str, str] | None,
    port: int,
    host: str,
    allowed_hosts: tuple[str, ...],
    open_browser: bool,
    cache: Path | None,
    read_only: bool,
) -> None:
    """Look at the store in a web browser: a local page over any version.

    A gallery of thumbnails (filter with the --where syntax: `label=cat; width>=256`;
    counts per label and split; sort by key, size or label), each image with its
    metadata and its boxes, polygons and keypoints drawn, what is wrong with the data
    (Quality: duplicates and leaks side by side, the worst images of each issue first),
    and the difference between two versions as pictures (--diff, or Compare on the
    page). Fix what you see there: a label, a field, a split, an object's category, an
    object or an image dropped, a finding marked reviewed. Each decision is a change to
    data/annotations/viewer.jsonl, data/remove.txt or data/reviewed.jsonl (see them at
    /decisions, as `git diff` shows them); `dvc repro` applies them, nothing else on
    disk changes. Serves on 127.0.0.1 at a free port until Ctrl+C. Needs the `view`
    extra: pip install 'imageshelf[view]'.
    """
    try:
        from ..viewer.serve import is_loopback, serve, start, stop_on_sigterm
        from ..viewer.thumbs import default_cache
    except ImportError as exc:
        raise click.ClickException(
            f"imageshelf view needs the view extra ({exc.name} is missing): "
            "pip install 'imageshelf[view]'"
        ) from None
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: anyone who can reach this machine can see every "
            "image in the store; there is no login",
            err=True,
        )
    say = lambda text: click.echo(text, err=True)  # noqa: E731
    stop_on_sigterm()
    server, versions, address = start(
        project.store,
        rev,
        diff,
        host,
        port,
        cache or default_cache(),
        say,
        allowed_hosts,
        catalog=project.catalog,
        desk=None if read_only else _desk(project),
    )
    serve(server, versions, address, open_browser)


def _desk(project: Project) -> Any:
    """Where the viewer writes decisions: the project's own files (viewer/decide.py)."""
    from ..project.decisions import VIEWER_TABLE
    from ..viewer.decide import Desk

    table = project.annotations / VIEWER_TABLE
    return Desk(table, project.remove_list, project.reviewed, project.root)


@cli.command("demo")
@click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The project's repository.",
)
@click.option("--keep-clone", is_flag=True, help="Keep the teammate's clone to look around.")
def demo_command(repo: Path, keep_clone: bool) -> None:
    """Run the whole flow on built-in sample images (what `make demo` does).

    In a project of its own, in a temporary folder (this project's pipeline, none of its
    data, a DVC remote beside it): writes deterministic samples (several formats,
    folders, labels, boxes, text and a few broken files) into data/incoming/samples/,
    runs `dvc repro`, commits and `dvc push`es, clones that project as a teammate would,
    runs `dvc pull` there and compares the pulled images with the originals, byte for
    byte. Your project, its store and its remote are never touched.
    """
    from ..demo import run_demo

    run_demo(repo, keep_clone)


def main() -> None:
    cli(prog_name="imageshelf")
