"""Click building blocks shared by the tools' CLI (main.py) and the stage scripts
(pipeline/*.py): one-line errors instead of tracebacks, and the project every command is
given (`pass_project`: dvc.yaml's paths, params.yaml's settings, a path option each)."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import ShelfError
from ..project.params import PARAMS
from ..project.paths import Project
from ..stages.result import StageResult

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"]}


class ShelfCommand(click.Command):
    """A command that prints the library's errors as one line ("Error: ..."), exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
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


# The paths a command may take in place of dvc.yaml's: name (Project's), help.
PATH_HELP = {
    "store": "The store: a .lmdb file (single layout), or a folder of shards (sharded).",
    "incoming": "Folder where new images arrive.",
    "manifest": "The staged manifest ingest writes and pack reads.",
    "catalog": "The catalog folder pack writes beside the store: every record, no image bytes.",
    "annotations": "Tracked annotations, applied to every image.",
    "remove_list": "Keys to drop from the store, one per line.",
    "ingest_report": "Where to write the report.",
    "pack_report": "Pack's report: what it did, and which staged images it did not pack, and why.",
    "validate_report": "Where to write the report.",
    "metrics": "Where to write the metrics.",
    "plots": "Folder for the plots.",
    "findings": "Where to write every finding by key (duplicates, leaks, issues).",
    "reviewed": "Findings reviewed as not a problem, one decision a line (docs/QUALITY.md).",
}


def pass_project(*paths: str, **renamed: str) -> Callable[[F], F]:
    """Give the command `project`: the Project of the current folder, its settings read
    from --params. Each path named (`"store"`; `report="ingest_report"` where the
    option's name differs) gets an option that puts another path in place of dvc.yaml's.
    """
    options = {**{name: name for name in paths}, **renamed}  # option -> Project's name

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, params: Path, **kwargs: Any) -> Any:
            given = {options[option]: kwargs.pop(option) for option in options}
            return command(*args, project=Project.load(".", params, **given), **kwargs)

        run = params_option(run)
        for option, name in reversed(options.items()):
            run = click.option(
                f"--{option.replace('_', '-')}",
                option,
                default=None,
                show_default="pack.store" if name == "store" else "where dvc.yaml puts it",
                type=click.Path(path_type=Path),
                help=PATH_HELP[name],
            )(run)
        return run  # type: ignore[return-value]

    return decorate


params_option = click.option(
    "--params",
    default=PARAMS,
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The parameters file.",
)


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
