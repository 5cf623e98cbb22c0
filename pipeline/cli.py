"""`python -m pipeline`: the pipeline's stages and the tools to look inside a store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .progress import track
from .store import ImageStore, StoreError

DEFAULT_STORE = "data/images.lmdb"


class _Cli(click.Group):
    """A group that turns a store's errors into one line for a person, not a traceback."""

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
    type=click.Path(dir_okay=False, path_type=Path), help="The store file to read.",
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


def main() -> None:
    cli(prog_name="python -m pipeline")


if __name__ == "__main__":
    sys.exit(main())
