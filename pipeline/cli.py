"""`python -m pipeline`: the pipeline's stages and the tools to look inside a store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import yaml

from . import __version__
from .params import default_store, load_params
from .progress import bar, track
from .store import ImageStore, StoreError, writer_lock


class _Cli(click.Group):
    """A group that turns a store's errors into one line for a person, not a traceback."""

    ORDER = ("ingest", "pack", "validate", "stats", "ls", "export", "diff", "shards",
             "compact", "demo")

    def list_commands(self, ctx: click.Context) -> list[str]:
        # The stages in pipeline order, then the tools; not alphabetical.
        known = [name for name in self.ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline")
def cli() -> None:
    """Version and serve an image dataset as one LMDB file tracked by DVC.

    Drop images (and their metadata) into data/incoming/ and run `dvc repro`; the
    stages below do the work. `ls`, `export` and `diff` look inside the store.
    """


store_option = click.option(
    "--store", "store_path", default=default_store, show_default="pack.store in "
    "params.yaml, else data/images.lmdb", type=click.Path(path_type=Path),
    help="The store: a .lmdb file, or a folder of shards.",
)


catalog_option = click.option(
    "--catalog", default="data/catalog", show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The catalog folder pack writes beside the store: every record, no image bytes.",
)


def _printable(key: str) -> str:
    # Keys are file names: a newline or tab in one must not break the listing's lines.
    return key.encode("unicode_escape").decode("ascii") if not key.isprintable() else key


where_option = click.option(
    "--where", "where", multiple=True, metavar="COND",
    help="Only images whose metadata matches: label=rose, label=rose,tulip, split=val, "
         "width>=256, height=100..200, label!=rose. Repeat: all must hold.")
label_option = click.option("--label", "labels", multiple=True, metavar="LABEL",
                            help="Only images with this label; repeat for several.")
split_option = click.option("--split", "splits", multiple=True, metavar="SPLIT",
                            help="Only images in this split (train, val, test); repeat "
                                 "for several.")


def _conditions(where: tuple[str, ...], labels: tuple[str, ...],
                splits: tuple[str, ...]) -> list[str]:
    from .query import QueryError, parse_condition

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


@cli.command("ls")
@store_option
@where_option
@label_option
@split_option
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: key, split, size, format, width, height, meta.")
def ls_command(store_path: Path, where: tuple[str, ...], labels: tuple[str, ...],
               splits: tuple[str, ...], as_json: bool) -> None:
    """List the images in the store, one per line, in key order.

    Columns, separated by tabs: size in bytes, format, split, label, key. Keys with
    control characters are shown escaped. Filters read metadata only, never image
    bytes. A summary goes to stderr.
    """
    from .query import select

    store = ImageStore(store_path)
    shown = total = 0
    for record in select(store, _conditions(where, labels, splits)):
        if as_json:
            click.echo(json.dumps({"key": record.key, **record.to_json()},
                                  ensure_ascii=False, sort_keys=True))
        else:
            label = record.metadata.get("label", "")
            split = record.effective_split or ""
            click.echo(f"{record.info.size}\t{record.info.format}\t{split}\t{label}\t"
                       f"{_printable(record.key)}")
        shown += 1
        total += record.info.size
    click.echo(f"{shown} of {len(store)} images, {total:,} bytes", err=True)


@cli.command("export")
@store_option
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (created if missing).")
@where_option
@label_option
@split_option
@click.option("--as", "layout", type=click.Choice(["files", "webdataset"]), default="files",
              show_default=True,
              help="files: the original images under their keys. webdataset: tar shards "
                   "of image + .json pairs, for streaming training.")
@click.option("--shard-images", default=10_000, show_default=True, type=click.IntRange(1),
              help="webdataset: at most this many images per shard.")
@click.option("--shard-mb", default=1024, show_default=True, type=click.IntRange(1),
              help="webdataset: at most this many megabytes per shard.")
@click.argument("keys", nargs=-1)
def export_command(store_path: Path, out_dir: Path, where: tuple[str, ...],
                   labels: tuple[str, ...], splits: tuple[str, ...], layout: str,
                   shard_images: int, shard_mb: int, keys: tuple[str, ...]) -> None:
    """Write images back out, byte-identical: as files, or as WebDataset shards.

    Exports the KEYS given, or every image that matches the filters (all of them
    without any). As files, each image lands under its key; a key that would land
    outside --out (an absolute path, '..', or a symlink inside --out) is refused
    before anything is written.
    """
    from .query import select

    store = ImageStore(store_path)
    conditions = _conditions(where, labels, splits)
    if keys:
        missing = [k for k in keys if k not in store]
        if missing:
            raise click.ClickException(
                f"not in {store_path}: {', '.join(map(repr, missing[:5]))}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        wanted = set(keys)
        records = [r for r in select(store, conditions) if r.key in wanted]
    else:
        records = list(select(store, conditions))
    if layout == "webdataset":
        from .webdataset import write_shards

        with bar(len(records), "export") as progress:
            shards = write_shards(store, records, out_dir, max_count=shard_images,
                                  max_bytes=shard_mb * 1_000_000,
                                  on_item=lambda _record: progress.update())
        total = sum(r.info.size for r in records)
        click.echo(f"exported {len(records)} images ({total:,} bytes) to {len(shards)} "
                   f"WebDataset shard(s) in {out_dir}")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(out_dir)
    targets = [(r.key, _target_inside(root, r.key)) for r in records]
    escaping = [key for key, target in targets if target is None]
    if escaping:
        raise click.ClickException(
            f"refusing keys that would be written outside {out_dir}: "
            + ", ".join(map(repr, escaping[:5]))
        )
    total = 0
    for key, target in track(targets, len(targets), "export"):
        assert target is not None
        data = store.get(key)
        _write_file(target, data)
        total += len(data)
    click.echo(f"exported {len(targets)} images ({total:,} bytes) to {out_dir}")


@cli.command("diff")
@click.argument("rev_a", default="HEAD")
@click.argument("rev_b", default="workspace")
@catalog_option
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff_command(rev_a: str, rev_b: str, catalog: Path, as_json: bool) -> None:
    """Images added, removed, changed and relabeled between two versions of the store.

    REV_A and REV_B are git revisions (a commit, branch or tag; default HEAD and the
    workspace). Only the small catalogs DVC versions beside the store are read (from
    DVC's cache, or fetched from the remote): no image bytes are downloaded. changed:
    the same key with different bytes. relabeled: the same bytes, different metadata
    or split.
    """
    from .catalog import diff_catalog_folders

    result = diff_catalog_folders(_catalog_at(rev_a, catalog), _catalog_at(rev_b, catalog))
    if as_json:
        click.echo(json.dumps({"a": rev_a, "b": rev_b, **result.to_json()}, indent=2,
                              ensure_ascii=False))
        return
    from .catalog import field_changes

    for record in result.added:
        click.echo(f"added\t{_printable(record.key)}")
    for record in result.removed:
        click.echo(f"removed\t{_printable(record.key)}")
    for _old, record in result.changed:
        click.echo(f"changed\t{_printable(record.key)}")
    for before, after in result.relabeled:
        fields = "; ".join(f"{name}: {json.dumps(a, ensure_ascii=False)} -> "
                           f"{json.dumps(b, ensure_ascii=False)}"
                           for name, (a, b) in field_changes(before, after).items())
        click.echo(f"relabeled\t{_printable(after.key)}\t{fields}")
    click.echo(f"{rev_a} -> {rev_b}: {len(result.added)} added, {len(result.removed)} "
               f"removed, {len(result.changed)} changed, {len(result.relabeled)} relabeled",
               err=True)


def _catalog_at(rev: str, catalog: Path):
    """The catalog folder as it was at git revision `rev` ("workspace": as it is now): a
    CatalogFolder that reads its files on demand. A revision with no catalog had no
    store yet: no files."""
    from .catalog import CatalogFolder

    if rev == "workspace":
        if not catalog.is_dir():
            raise click.ClickException(f"{catalog}: no catalog in the workspace; run "
                                       "`dvc repro` (or `dvc pull`) first")
        return CatalogFolder.local(catalog)
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    def failed(exc: Exception) -> click.ClickException:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        return click.ClickException(f"cannot read {catalog} at {rev}: {reason}")

    try:
        fs = DVCFileSystem(".", rev=rev)
        names = []
        if fs.isdir(str(catalog)):
            names = [Path(entry).name for entry in fs.ls(str(catalog), detail=False)
                     if str(entry).endswith(".jsonl")]
    except (DvcException, SCMError, OSError) as exc:
        raise failed(exc) from None
    if not names:
        click.echo(f"note: no catalog in {catalog} at {rev}: counted as an empty store",
                   err=True)

    def read(name: str):
        from .manifest import parse_records

        try:
            with fs.open(f"{catalog}/{name}", mode="r", encoding="utf-8") as lines:
                return list(parse_records(lines))
        except (DvcException, SCMError, OSError) as exc:
            raise failed(exc) from None
    return CatalogFolder({name: None for name in names}, read)


def _target_inside(root: str, key: str) -> str | None:
    """Where `key` lands under `root`, or None if it would escape it."""
    if os.path.isabs(key) or "\0" in key:
        return None
    target = os.path.normpath(os.path.join(root, key))
    if not target.startswith(root + os.sep):
        return None
    # An existing symlinked folder inside root could still lead outside it.
    parent = os.path.realpath(os.path.dirname(target))
    if parent != root and not parent.startswith(root + os.sep):
        return None
    return target


def _write_file(target: str, data: bytes) -> None:
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".export-{os.getpid()}.tmp")
    with open(temp, "wb") as fh:
        fh.write(data)
    os.replace(temp, target)


# ---------------------------------------------------------------- the pipeline's stages

INCOMING = "data/incoming"
MANIFEST = "data/staged.jsonl"
REMOVE_LIST = "data/remove.txt"
PARAMS = "params.yaml"


def _path_option(name: str, default: str, help_text: str, **kwargs):
    return click.option(name, default=default, show_default=True,
                        type=click.Path(path_type=Path, **kwargs), help=help_text)


params_option = _path_option("--params", PARAMS, "The parameters file.", dir_okay=False)
incoming_option = _path_option("--incoming", INCOMING, "Folder where new images arrive.",
                               file_okay=False)
manifest_option = _path_option("--manifest", MANIFEST,
                               "The staged manifest ingest writes and pack reads.",
                               dir_okay=False)


def write_json(path: Path, value: object) -> None:
    """Write a report whole (temp file + rename), so a killed stage leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, path)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


@cli.command("ingest")
@incoming_option
@manifest_option
@_path_option("--report", "reports/ingest.json", "Where to write the report.", dir_okay=False)
@params_option
def ingest_command(incoming: Path, manifest: Path, report: Path, params: Path) -> None:
    """Find, check, hash and describe the files in the incoming folder.

    Walks the folder recursively and decides "image or not" from each file's content.
    Metadata comes from labels.csv and metadata.jsonl files in any folder (rows keyed
    by path relative to that folder) and from sidecars NAME.json or NAME.EXT.json.
    Writes the staged manifest for pack, and a report with one line and a reason for
    every file that cannot be used. With ingest.strict: true, any such file fails the
    stage.
    """
    from .ingest import ingest
    from .manifest import write_manifest

    settings = load_params("ingest", params)
    if not incoming.is_dir():
        raise click.ClickException(f"{incoming}: no such folder; new images go there")
    with bar(None, "ingest") as progress:
        result = ingest(incoming, settings, progress)
    write_manifest(manifest, result.staged)
    summary = result.report()
    write_json(report, summary)
    click.echo(f"ingest: {summary['staged']} images staged ({_mb(summary['staged_bytes'])}), "
               f"{summary['rejected']} rejected" + (f" (see {report})" if result.rejects else ""))
    for reject in result.rejects[:10]:
        click.echo(f"  rejected {reject.path}: {reject.reason}", err=True)
    if len(result.rejects) > 10:
        click.echo(f"  ... and {len(result.rejects) - 10} more in {report}", err=True)
    if result.unused_metadata:
        click.echo(f"  {len(result.unused_metadata)} metadata file(s) or row(s) matched no "
                   f"image (see {report})", err=True)
    if settings["strict"] and result.rejects:
        raise click.ClickException(
            f"{len(result.rejects)} file(s) rejected and ingest.strict is true in {params}")


@cli.command("pack")
@click.option("--store", "store_path", default=None, type=click.Path(path_type=Path),
              help="The store: a .lmdb file (single layout) or a folder (sharded).  "
                   "[default: pack.store in params.yaml]")
@manifest_option
@incoming_option
@_path_option("--remove-list", REMOVE_LIST, "Keys to drop from the store, one per line.",
              dir_okay=False)
@catalog_option
@_path_option("--report", "reports/pack.json", "Where to write the report.", dir_okay=False)
@params_option
def pack_command(store_path: Path | None, manifest: Path, incoming: Path, remove_list: Path,
                 catalog: Path, report: Path, params: Path) -> None:
    """Merge the staged images into the store, each new version published whole.

    Same key with the same bytes: already there. Same key with different bytes: a
    conflict, handled by pack.on_conflict (error: fail and change nothing; replace;
    skip). Same bytes under a new key: a duplicate, by pack.on_duplicate (keep, skip).
    Keys listed in data/remove.txt are dropped. Every image gets a split (train, val,
    test by pack.split) from a hash of its key, unless its metadata names one. When
    nothing changes, the store is left byte-identical, so DVC sees no change.

    pack.layout single: one file, rewritten whole. sharded: a folder of immutable
    shards; new images go into new shards and the others stay untouched. When
    pack.store names a new place and dvc.lock records the store elsewhere (the layout
    was switched), that store is converted. Also writes the catalog (every record, no
    image bytes) for `diff`.
    """
    from .catalog import write_catalog
    from .pack import ConflictError, apply_plan, plan_pack, plan_report, read_removals
    from .store.sharded import tidy

    settings = load_params("pack", params)
    store_path = store_path or Path(settings["store"])
    if not manifest.exists():
        raise click.ClickException(f"{manifest}: no staged manifest; run ingest first")
    previous = _previous_store(store_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(store_path):
        if store_path.is_dir():
            tidy(store_path)  # what a killed pack left: DVC must not track it
        source = store_path if store_path.exists() else previous
        store = ImageStore(source) if source is not None else None
        if store is not None:
            try:
                len(store)
            except StoreError as exc:
                raise click.ClickException(
                    f"{exc}. Restore the last good version with `dvc checkout {source}`"
                ) from None
        try:
            plan = plan_pack(store, manifest, read_removals(remove_list), settings)
        except ConflictError as exc:
            raise click.ClickException(str(exc)) from None
        converting = source is not None and source != store_path
        written = store is None or plan.changes_store or converting
        if written:
            total = len(plan.writes) + (len(store) if store is not None else 0)
            with bar(total, "pack") as progress:
                header = apply_plan(store_path, manifest, incoming, plan, settings,
                                    base=store, rewrite=converting,
                                    on_item=lambda _record: progress.update())
        else:
            header = store.header
            store.close()
        write_catalog(ImageStore(store_path), catalog)
    write_json(report, plan_report(plan, settings, header, written))
    parts = [f"{len(plan.added)} added"]
    for count, what in ((len(plan.replaced), "replaced"), (len(plan.relabeled), "relabeled"),
                        (len(plan.removed), "removed"),
                        (len(plan.resplit), "moved to another split"),
                        (plan.unchanged, "already there"),
                        (len(plan.duplicates), "duplicates " + settings["on_duplicate"]
                         .replace("keep", "kept").replace("skip", "skipped")),
                        (len(plan.conflicts) - len(plan.replaced), "conflicts skipped")):
        if count:
            parts.append(f"{count} {what}")
    state = "written" if written else "unchanged, not rewritten"
    if converting:
        state = f"converted from {source}"
    click.echo(f"pack: {', '.join(parts)}; {store_path} holds {header['count']} images "
               f"({_mb(header['total_bytes'])}), {state}")
    if converting:
        click.echo(f"  {source} is no longer used; delete it when you like (its versions "
                   "stay in DVC's cache and remote)", err=True)
    if plan.removal_not_found:
        click.echo(f"  {len(plan.removal_not_found)} key(s) in {remove_list} are not in the "
                   f"store (see {report})", err=True)


def _previous_store(store_path: Path) -> Path | None:
    """The store to start from when `store_path` does not exist yet: the one dvc.lock
    records in another place (the layout was switched), if it is here.

    A missing store that dvc.lock knows of was not pulled: packing now would start a new
    store without every image packed before, and pushing it would drop them: refused.
    """
    lock = Path("dvc.lock")
    if store_path.exists() or not lock.exists():
        return None
    try:
        outs = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]["pack"]["outs"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    # pack's outputs: the store, the catalog folder and its report
    stores = [o for o in outs if o.get("path") != "data/catalog"
              and not str(o.get("path", "")).startswith("reports/")]
    for recorded in stores:
        path = Path(recorded["path"])
        if path != store_path and path.exists():
            return path  # switching layouts: convert this one
    if stores:
        recorded = stores[0]
        raise click.ClickException(
            f"{store_path} is missing, but dvc.lock records the store at {recorded['path']} "
            f"({recorded.get('size', '?'):,} bytes). Run `dvc pull {recorded['path']}` (or "
            f"`dvc checkout {recorded['path']}`) first, so new images join it. To start a "
            "new store on purpose, delete dvc.lock.")
    return None


@cli.command("shards")
@store_option
@click.option("--rank", type=click.IntRange(0), default=None,
              help="Only the shards this rank reads (with --world-size).")
@click.option("--world-size", type=click.IntRange(1), default=None,
              help="How many ranks (machines or processes) share the store.")
def shards_command(store_path: Path, rank: int | None, world_size: int | None) -> None:
    """List a sharded store's shard files, one path per line (for `dvc pull`).

    With --rank and --world-size, only the whole shards that rank reads, balanced by
    image count: the same answer on every machine. A training node pulls just those:

      dvc pull data/images/index.json

      dvc pull $(python -m pipeline shards --rank 3 --world-size 8)

    The counts go to stderr.
    """
    from .dataset import shards_for_rank
    from .store import ShardedImageStore

    if (rank is None) != (world_size is None):
        raise click.UsageError("give --rank and --world-size together")
    if rank is not None and rank >= world_size:
        raise click.UsageError(f"--rank must be below --world-size ({world_size})")
    store = ImageStore(store_path)
    if not isinstance(store, ShardedImageStore):
        raise click.ClickException(f"{store_path} is a single file, not a folder of shards "
                                   "(set pack.layout: sharded in params.yaml)")
    entries = store.shards
    if rank is not None:
        wanted = set(shards_for_rank(store, rank, world_size))
        entries = [e for e in entries if e["name"] in wanted]
    for entry in entries:
        click.echo(str(store_path / entry["name"]))
    images = sum(e["count"] for e in entries)
    click.echo(f"{len(entries)} of {len(store.shards)} shards, {images} of {len(store)} "
               "images", err=True)


@cli.command("compact")
@click.option("--store", "store_path", default=None, type=click.Path(path_type=Path),
              help="The sharded store.  [default: pack.store in params.yaml]")
@catalog_option
@params_option
def compact_command(store_path: Path | None, catalog: Path, params: Path) -> None:
    """Rewrite a sharded store into full shards, in key order.

    Packing adds a shard per batch, so many small batches leave many small shards.
    This rewrites every image into shards of pack.shard_mb, published at once (the
    old shards stay until the new index is in place). The next `dvc push` uploads
    every shard again: compact rarely. Then record it: `dvc commit -f pack && dvc
    repro`.
    """
    from .catalog import write_catalog
    from .store import ShardedImageStore, write_sharded

    settings = load_params("pack", params)
    store_path = store_path or Path(settings["store"])
    if not store_path.exists():
        raise click.ClickException(f"{store_path}: no such store")
    with writer_lock(store_path):
        store = ImageStore(store_path)
        if not isinstance(store, ShardedImageStore):
            click.echo(f"compact: {store_path} is a single file, always compact: nothing to do")
            return
        before = len(store.shards)
        with bar(len(store), "compact") as progress:
            index = write_sharded(store_path, base=store, rewrite=True,
                                  shard_bytes=settings["shard_mb"] * 1_000_000,
                                  on_item=lambda _record: progress.update())
        write_catalog(ImageStore(store_path), catalog)
    click.echo(f"compact: {index['count']} images in {len(index['shards'])} shard(s), "
               f"from {before}. Record it: dvc commit -f pack && dvc repro")


@cli.command("validate")
@store_option
@manifest_option
@incoming_option
@_path_option("--pack-report", "reports/pack.json",
              "Pack's report: which staged images it did not pack, and why.", dir_okay=False)
@catalog_option
@_path_option("--report", "reports/validate.json", "Where to write the report.",
              dir_okay=False)
def validate_command(store_path: Path, manifest: Path, incoming: Path, pack_report: Path,
                     catalog: Path, report: Path) -> None:
    """Prove every record in the store is intact and every staged image is in it.

    Re-hashes every stored image, parses every record, checks the header's count and
    digest, checks the catalog lists exactly the store's records, and compares each
    staged image with the store and with its source file. Any failure exits non-zero,
    so `dvc repro` stops before a bad store is pushed.
    """
    from .validate import validate_catalog, validate_staged, validate_store

    if not store_path.exists():
        raise click.ClickException(f"{store_path}: no such store file; run pack first")
    store = ImageStore(store_path)
    with bar(None, "validate") as progress:
        result = validate_store(store, progress)
    not_packed = {}
    if pack_report.exists():
        not_packed = json.loads(pack_report.read_text(encoding="utf-8")).get("not_packed", {})
    if not result.failures:
        validate_catalog(store, catalog, result)
    if manifest.exists():
        validate_staged(store, manifest, incoming, not_packed, result)
    write_json(report, result.report())
    if result.failures:
        first = result.failures[0]
        raise click.ClickException(
            f"validate: {len(result.failures)} problem(s) in {store_path}, first: "
            f"{first['key']}: {first['problem']} (all in {report})")
    click.echo(f"validate: {result.records} records intact ({_mb(result.bytes_checked)} "
               f"re-hashed); {result.staged_checked} staged images present and "
               f"byte-identical")


@cli.command("stats")
@store_option
@_path_option("--metrics", "reports/stats.json", "Where to write the metrics.",
              dir_okay=False)
@_path_option("--plots", "reports/plots", "Folder for the plots.", file_okay=False)
@params_option
def stats_command(store_path: Path, metrics: Path, plots: Path, params: Path) -> None:
    """Count the store: images, bytes, formats, labels, sizes; draw a contact sheet.

    Writes DVC metrics (reports/stats.json) and plots: a label histogram, a size
    distribution, and a PNG contact sheet of thumbnails per label.
    """
    from .stats import collect, contact_sheet, write_plots

    settings = load_params("stats", params)
    store = ImageStore(store_path)
    collected = collect(store, settings["thumbnails_per_label"])
    sheet = contact_sheet(store, collected["labels"], collected["samples"],
                          settings["thumbnail_px"], settings["thumbnails_per_label"],
                          settings["max_labels"])
    write_json(metrics, collected["metrics"])
    write_plots(plots, collected, sheet)
    m = collected["metrics"]
    click.echo(f"stats: {m['count']} images, {_mb(m['total_bytes'])}, {m['labels']} labels, "
               f"formats {', '.join(f'{k} {v}' for k, v in m['by_format'].items()) or 'none'}")


@cli.command("demo")
@click.option("--repo", default=".", show_default=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The project's repository.")
@click.option("--keep-clone", is_flag=True, help="Keep the temporary clone to look around.")
def demo_command(repo: Path, keep_clone: bool) -> None:
    """Run the whole flow on built-in sample images (what `make demo` does).

    Writes deterministic samples (several formats, folders, labels, boxes, text and a
    few broken files) into data/incoming/samples/, runs `dvc repro` and `dvc push`,
    clones the repository into a temporary folder, runs `dvc pull` there and compares
    the pulled images with the originals, byte for byte. Safe to run again.
    """
    from .demo import run_demo

    run_demo(repo, keep_clone)


def main() -> None:
    cli(prog_name="python -m pipeline")


if __name__ == "__main__":
    sys.exit(main())
