"""`python -m pipeline`: the pipeline's stages and the tools to look inside a store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import yaml

from . import __version__
from .params import load_params
from .progress import bar, track
from .store import ImageStore, StoreError, writer_lock

DEFAULT_STORE = "data/images.lmdb"


class _Cli(click.Group):
    """A group that turns a store's errors into one line for a person, not a traceback."""

    ORDER = ("ingest", "pack", "validate", "stats", "ls", "export", "demo")

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
    stages below do the work. `ls` and `export` look inside the store.
    """


store_option = click.option(
    "--store", "store_path", default=DEFAULT_STORE, show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The store file.",
)


def _printable(key: str) -> str:
    # Keys are file names: a newline or tab in one must not break the listing's lines.
    return key.encode("unicode_escape").decode("ascii") if not key.isprintable() else key


@cli.command("ls")
@store_option
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="Only images with this label; repeat for several.")
def ls_command(store_path: Path, labels: tuple[str, ...]) -> None:
    """List the images in the store, one per line, in key order.

    Columns, separated by tabs: size in bytes, format, label, key. Keys with
    control characters are shown escaped. A summary goes to stderr.
    """
    store = ImageStore(store_path)
    wanted = set(labels)
    shown = total = 0
    for record in store.records():
        label = record.metadata.get("label", "")
        if wanted and str(label) not in wanted:
            continue
        click.echo(f"{record.info.size}\t{record.info.format}\t{label}\t{_printable(record.key)}")
        shown += 1
        total += record.info.size
    click.echo(f"{shown} of {len(store)} images, {total:,} bytes", err=True)


@cli.command("export")
@store_option
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the images into (created if missing).")
@click.argument("keys", nargs=-1)
def export_command(store_path: Path, out_dir: Path, keys: tuple[str, ...]) -> None:
    """Write original images back as files, byte-identical, under their keys.

    With no KEYS, exports every image. A key that would land outside --out (an
    absolute path, '..', or a symlink inside --out) is refused before anything is
    written.
    """
    store = ImageStore(store_path)
    wanted = list(keys) or store.keys()
    missing = [k for k in wanted if k not in store]
    if missing:
        raise click.ClickException(f"not in {store_path}: {', '.join(map(repr, missing[:5]))}"
                                   + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(out_dir)
    targets = [(key, _target_inside(root, key)) for key in wanted]
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
@store_option
@manifest_option
@incoming_option
@_path_option("--remove-list", REMOVE_LIST, "Keys to drop from the store, one per line.",
              dir_okay=False)
@_path_option("--report", "reports/pack.json", "Where to write the report.", dir_okay=False)
@params_option
def pack_command(store_path: Path, manifest: Path, incoming: Path, remove_list: Path,
                 report: Path, params: Path) -> None:
    """Merge the staged images into the store, one new file published whole.

    Same key with the same bytes: already there. Same key with different bytes: a
    conflict, handled by pack.on_conflict (error: fail and change nothing; replace;
    skip). Same bytes under a new key: a duplicate, by pack.on_duplicate (keep, skip).
    Keys listed in data/remove.txt are dropped. When nothing changes, the store file is
    left byte-identical, so DVC sees no change.
    """
    from .pack import ConflictError, apply_plan, plan_pack, plan_report, read_removals

    settings = load_params("pack", params)
    if not manifest.exists():
        raise click.ClickException(f"{manifest}: no staged manifest; run ingest first")
    _refuse_to_start_over(store_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(store_path):
        store = ImageStore(store_path) if store_path.exists() else None
        if store is not None:
            try:
                len(store)
            except StoreError as exc:
                raise click.ClickException(
                    f"{exc}. Restore the last good version with `dvc checkout {store_path}`"
                ) from None
        try:
            plan = plan_pack(store, manifest, read_removals(remove_list), settings)
        except ConflictError as exc:
            raise click.ClickException(str(exc)) from None
        written = store is None or plan.changes_store
        if written:
            if store is not None:
                store.close()
            with bar(len(plan.writes) + (len(store) if store else 0), "pack") as progress:
                header = apply_plan(store_path, manifest, incoming, plan,
                                    on_item=lambda _record: progress.update())
        else:
            header = store.header
    write_json(report, plan_report(plan, settings, header, written))
    parts = [f"{len(plan.added)} added"]
    for count, what in ((len(plan.replaced), "replaced"), (len(plan.relabeled), "relabeled"),
                        (len(plan.removed), "removed"), (plan.unchanged, "already there"),
                        (len(plan.duplicates), "duplicates " + settings["on_duplicate"]
                         .replace("keep", "kept").replace("skip", "skipped")),
                        (len(plan.conflicts) - len(plan.replaced), "conflicts skipped")):
        if count:
            parts.append(f"{count} {what}")
    state = "written" if written else "unchanged, not rewritten"
    click.echo(f"pack: {', '.join(parts)}; {store_path} holds {header['count']} images "
               f"({_mb(header['total_bytes'])}), {state}")
    if plan.removal_not_found:
        click.echo(f"  {len(plan.removal_not_found)} key(s) in {remove_list} are not in the "
                   f"store (see {report})", err=True)


def _refuse_to_start_over(store_path: Path) -> None:
    """A missing store that dvc.lock knows of was not pulled: packing now would start a
    new store without every image packed before, and pushing it would drop them."""
    lock = Path("dvc.lock")
    if store_path.exists() or not lock.exists():
        return
    try:
        outs = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]["pack"]["outs"]
    except (yaml.YAMLError, KeyError, TypeError):
        return
    recorded = next((o for o in outs if Path(o.get("path", "")) == store_path), None)
    if recorded:
        raise click.ClickException(
            f"{store_path} is missing, but dvc.lock records a version of it "
            f"({recorded.get('size', '?'):,} bytes). Run `dvc pull {store_path}` (or `dvc "
            f"checkout {store_path}`) first, so new images join it. To start a new store on "
            "purpose, delete dvc.lock.")


@cli.command("validate")
@store_option
@manifest_option
@incoming_option
@_path_option("--pack-report", "reports/pack.json",
              "Pack's report: which staged images it did not pack, and why.", dir_okay=False)
@_path_option("--report", "reports/validate.json", "Where to write the report.",
              dir_okay=False)
def validate_command(store_path: Path, manifest: Path, incoming: Path, pack_report: Path,
                     report: Path) -> None:
    """Prove every record in the store is intact and every staged image is in it.

    Re-hashes every stored image, parses every record, checks the header's count and
    digest, and compares each staged image with the store and with its source file.
    Any failure exits non-zero, so `dvc repro` stops before a bad store is pushed.
    """
    from .validate import validate_staged, validate_store

    if not store_path.exists():
        raise click.ClickException(f"{store_path}: no such store file; run pack first")
    store = ImageStore(store_path)
    with bar(None, "validate") as progress:
        result = validate_store(store, progress)
    not_packed = {}
    if pack_report.exists():
        not_packed = json.loads(pack_report.read_text(encoding="utf-8")).get("not_packed", {})
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
