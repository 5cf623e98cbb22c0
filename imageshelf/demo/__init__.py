"""The demo: a user's day in one command, on the built-in samples, in a project of its own.

It copies this project's pipeline (dvc.yaml, params.yaml, pipeline/, the library) into a
scratch folder: a git repository of its own, with a DVC remote of its own beside it.
There it writes the samples into data/incoming/, runs `dvc repro`, commits and `dvc
push`es; then, as a teammate would, clones that repository, `dvc pull`s and compares
the pulled store's images with the original files, byte for byte.

Your own project is never written to: not its store, dvc.lock, reports, incoming folder
or remote. (Packed into your store, the samples would stay there for ever, as every
packed image does, and every `dvc repro` would print their rejects again.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from ..errors import ShelfError
from ..project.paths import Project
from ..quality.audit import quality_line
from ..records.manifest import read_manifest
from ..store import ImageStore, Record
from .samples import write_samples


class DemoError(ShelfError):
    pass


# What a project is before its first image: the files the demo's project starts from.
SKELETON = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/remove.txt",
    "data/reviewed.jsonl",
    "data/incoming/.gitkeep",
    "data/annotations/README.md",
)
CODE = ("pipeline", "imageshelf")  # dvc.yaml runs the one and depends on both
# The demo's commits are its own: they need no git identity of the user's.
AUTHOR = {"NAME": "imageshelf demo", "EMAIL": "demo@imageshelf.invalid"}


def _env() -> dict[str, str]:
    # dvc.yaml runs `python pipeline/<stage>.py`: make `python` this environment's.
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for who in ("AUTHOR", "COMMITTER"):
        for what, value in AUTHOR.items():
            env.setdefault(f"GIT_{who}_{what}", value)
    return env


def _run(args: list[str], cwd: Path, what: str, quiet: bool = False) -> str:
    click.echo(f"$ {' '.join(args)}" + (f"    (in {cwd})" if quiet else ""))
    result = subprocess.run(
        args, cwd=cwd, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if not quiet or result.returncode:
        click.echo(result.stdout.rstrip())
    if result.returncode:
        raise DemoError(f"{what} failed (exit {result.returncode}) in {cwd}; see its output above")
    return result.stdout


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _contents(path: Path) -> dict[str, bytes]:
    """The bytes of a store: its one file, or every file of its folder."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if not p.name.startswith(".")}


def _use_remote(project: Path, remote: Path) -> None:
    """Make `remote` the project's default DVC remote, in its git-ignored config.local."""
    (project / ".dvc" / "config.local").write_text(
        f"[core]\n    remote = demo\n['remote \"demo\"']\n    url = {remote}\n",
        encoding="utf-8",
    )


def _new_project(repo: Path, project: Path, remote: Path) -> None:
    """The project's pipeline, without its data, as a git repository of its own."""
    for rel in SKELETON:
        if (repo / rel).is_file():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / rel, project / rel)
    for rel in CODE:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(repo / rel, project / rel, ignore=ignore)
    (project / "data" / "incoming").mkdir(parents=True, exist_ok=True)
    _use_remote(project, remote)
    _run(["git", "init", "--quiet", "-b", "main"], project, "git init", quiet=True)
    _run(["git", "add", "-A"], project, "git add", quiet=True)
    _run(["git", "commit", "--quiet", "-m", "The pipeline"], project, "git commit", quiet=True)


def run_demo(repo: Path, keep_clone: bool = False) -> Path:
    """Run the demo in a scratch folder; the demo's project there (left for `view`)."""
    repo = repo.resolve()
    if not (repo / "dvc.yaml").exists():
        raise DemoError(f"{repo}: not this project's folder (no dvc.yaml)")
    scratch = Path(tempfile.mkdtemp(prefix="imageshelf-demo-"))
    project, remote = scratch / "project", scratch / "remote"
    click.echo(f"demo: a project of its own in {project} (yours is not touched)")
    _new_project(repo, project, remote)
    incoming = Project.load(project).incoming
    written = write_samples(incoming / "samples")
    click.echo(f"demo: {written['written']} sample files in {incoming / 'samples'}")
    _run(_dvc("repro"), project, "dvc repro")
    _run(["git", "add", "-A"], project, "git add", quiet=True)
    _run(["git", "commit", "--quiet", "-m", "The samples"], project, "git commit", quiet=True)
    _run(_dvc("push"), project, "dvc push")
    store_rel = str(Project.load(project).store.relative_to(project))  # images.lmdb or images
    staged = list(read_manifest(project / "data" / "staged.jsonl"))
    clone = scratch / "teammate"
    try:
        count = _pull_into(clone, project, remote, store_rel, staged)
    finally:
        if not keep_clone:
            shutil.rmtree(clone, ignore_errors=True)
    _tell_done(project, store_rel, len(staged), count, clone if keep_clone else None)
    return project


def _pull_into(
    clone: Path, project: Path, remote: Path, store_rel: str, staged: list[Record]
) -> int:
    """Clone the project, pull the store into the clone, and check it: the same file as
    there, every staged image byte-identical to its incoming file. Its image count."""
    _run(["git", "clone", "--quiet", str(project), str(clone)], project, "git clone", quiet=True)
    _use_remote(clone, remote)  # a teammate's clone is told where the remote is
    _run(_dvc("pull", store_rel), clone, "dvc pull", quiet=True)
    incoming = Project.load(project).incoming
    with ImageStore(clone / store_rel) as pulled:
        mismatched = [
            r.key
            for r in staged
            if r.key not in pulled or pulled.get(r.key) != (incoming / r.key).read_bytes()
        ]
        count = len(pulled)
    if mismatched or _contents(clone / store_rel) != _contents(project / store_rel):
        raise DemoError(
            f"the pulled store differs: {len(mismatched)} image(s) not "
            f"byte-identical, e.g. {mismatched[:3]}"
        )
    return count


def _tell_done(project: Path, store_rel: str, staged: int, count: int, clone: Path | None) -> None:
    store_path = project / store_rel
    header = ImageStore(store_path).header
    click.echo("")
    click.echo(f"demo: done, in {project}")
    click.echo(f"  packed   {header.count} images ({header.total_bytes:,} bytes) into {store_rel}")
    click.echo("  rejected the broken samples, each with a reason: reports/ingest.json")
    click.echo(
        f"  pushed   {store_rel} to the demo's own DVC remote"
        + (" as one object" if store_path.is_file() else ", shard by shard")
    )
    click.echo(
        f"  pulled   it into a teammate's clone: {staged} of {staged} images "
        f"byte-identical to the files in data/incoming/ ({count} in the store)"
        + (f"; the clone is kept at {clone}" if clone is not None else "")
    )
    metrics = json.loads(Project.load(project).metrics.read_text()).get("quality")
    said = quality_line(metrics).removeprefix("quality: ")
    click.echo(f"  audited  it: {said}")
    command = Path(sys.executable).parent / "imageshelf"
    click.echo(
        f"Look at it: cd {project} && {command} view   (a page in your browser: the "
        f"gallery, each image with its boxes); {command} audit   (what is wrong with it)"
    )
    click.echo(f"Your project is as it was. Delete {project.parent} when you are done.")
