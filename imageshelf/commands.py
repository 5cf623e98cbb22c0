"""Click building blocks shared by the tools' CLI (cli.py) and the stage scripts
(pipeline/*.py): one-line errors instead of tracebacks, and the common options."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import ShelfError
from .params import PARAMS, default_store
from .stages.result import StageResult

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"]}


class ShelfCommand(click.Command):
    """A command that prints the library's errors as one line ("Error: ..."), exit 1.
    A --store not given is the one params.yaml names (the --params file, if the command
    has that option): resolved here, once, for every command and stage script."""

    def invoke(self, ctx: click.Context) -> Any:
        if "store_path" in ctx.params and ctx.params["store_path"] is None:
            ctx.params["store_path"] = Path(default_store(ctx.params.get("params", PARAMS)))
        try:
            return super().invoke(ctx)
        except ShelfError as exc:
            raise click.ClickException(str(exc)) from None


class StageCommand(ShelfCommand):
    """A stage of dvc.yaml: a process that reads and builds millions of records and
    parsed annotation files (dicts and lists, no reference cycles) and exits. Python's
    cycle collector only scans them again and again as more are made, so it is off
    while the stage runs; refcounting frees them as before. It took two thirds of
    parsing a 130 MB Label Studio export (9.5 s against 3.3 s), and at 200,000 images
    0.8 s of ingest's 5 s and 1.7 s (25 full collections) of pack's 9 s, with the
    same peak memory without it."""

    def invoke(self, ctx: click.Context) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return super().invoke(ctx)
        finally:
            if enabled:
                gc.enable()


class ShelfGroup(click.Group):
    """A group of ShelfCommands, listed in the order they were added."""

    command_class = ShelfCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def path_option(name: str, default: str | None, help_text: str, **kwargs: Any) -> Any:
    return click.option(
        name,
        default=default,
        show_default=default is not None,
        type=click.Path(path_type=Path, **kwargs),
        help=help_text,
    )


params_option = path_option("--params", PARAMS, "The parameters file.", dir_okay=False)
incoming_option = path_option(
    "--incoming", "data/incoming", "Folder where new images arrive.", file_okay=False
)
manifest_option = path_option(
    "--manifest",
    "data/staged.jsonl",
    "The staged manifest ingest writes and pack reads.",
    dir_okay=False,
)
catalog_option = path_option(
    "--catalog",
    "data/catalog",
    "The catalog folder pack writes beside the store: every record, no image bytes.",
    file_okay=False,
)
store_option = click.option(
    "--store",
    "store_path",
    default=None,
    show_default="pack.store in params.yaml, else data/images.lmdb",
    type=click.Path(path_type=Path),
    help="The store: a .lmdb file (single layout), or a folder of shards (sharded).",
)


def report_option(default: str) -> Any:
    return path_option("--report", default, "Where to write the report.", dir_okay=False)


def printable(key: str) -> str:
    """A key as one line of output: a newline or tab in a file name must not break the
    listing's lines."""
    return key.encode("unicode_escape").decode("ascii") if not key.isprintable() else key


def finish(result: StageResult) -> None:
    """How every stage script ends: the summary, the notes (to stderr), then the stage's
    error, if any, as one line."""
    click.echo(result.summary())
    for note in result.notes():
        click.echo(note, err=True)
    result.check()
