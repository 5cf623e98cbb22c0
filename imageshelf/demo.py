"""The demo: a user's day in one command, on the built-in samples.

Write the samples into data/incoming/, `dvc repro`, `dvc push`; then, as a teammate
would, clone the repository into a temporary folder, `dvc pull` there, and compare the
pulled store's images with the original files, byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from .errors import ShelfError
from .manifest import read_manifest
from .project import Project
from .samples import write_samples
from .store import ImageStore, Record


class DemoError(ShelfError):
    pass


def _env() -> dict[str, str]:
    # dvc.yaml runs `python pipeline/<stage>.py`: make `python` this environment's.
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _run(args: list[str], cwd: Path, what: str, quiet: bool = False) -> str:
    click.echo(f"$ {' '.join(args)}" + (f"    (in {cwd})" if quiet else ""))
    result = subprocess.run(
        args, cwd=cwd, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if not quiet or result.returncode:
        click.echo(result.stdout.rstrip())
    if result.returncode:
        raise DemoError(f"{what} failed (exit {result.returncode}); see its output above")
    return result.stdout


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _contents(path: Path) -> dict[str, bytes]:
    """The bytes of a store: its one file, or every file of its folder."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if not p.name.startswith(".")}


def _refuse_a_real_dataset(repo: Path, incoming: Path) -> None:
    """The demo packs and pushes: never into a store (or with incoming files) that hold
    anything but its own samples."""
    store_path = Project.load(repo).store
    store_rel = store_path.relative_to(repo)
    if store_path.exists():
        with ImageStore(store_path) as store:
            others = sum(1 for key in store if not key.startswith("samples/"))
        if others:
            raise DemoError(
                f"{store_rel} already holds a dataset ({others} images besides the demo's "
                "samples): the demo packs and pushes, so it runs only on an empty store. "
                "Try it in a fresh clone."
            )
    if incoming.is_dir():
        extra = [p.name for p in incoming.iterdir() if p.name not in ("samples", ".gitkeep")]
        if extra:
            raise DemoError(
                f"{incoming} holds files besides the demo's samples ({extra[0]}, ...): the "
                "demo would pack them too. Try it in a fresh clone."
            )


def run_demo(repo: Path, keep_clone: bool = False) -> None:
    repo = repo.resolve()
    if not (repo / "dvc.yaml").exists() or not (repo / ".git").exists():
        raise DemoError(f"{repo}: not this project's git repository (no dvc.yaml or .git)")
    project = Project.load(repo)
    incoming = project.incoming
    _refuse_a_real_dataset(repo, incoming)
    written = write_samples(incoming / "samples")
    click.echo(
        f"demo: sample images in {incoming / 'samples'} "
        f"({written['written']} written, {written['kept']} already there)"
    )
    _run(_dvc("repro"), repo, "dvc repro")
    _run(_dvc("push"), repo, "dvc push")
    store_rel = str(project.store.relative_to(repo))  # data/images.lmdb, or data/images
    staged = list(read_manifest(project.manifest))
    clone = Path(tempfile.mkdtemp(prefix="image-store-demo-"))
    try:
        count = _pull_into(clone, repo, store_rel, staged)
    finally:
        if keep_clone:
            click.echo(f"demo: the clone is kept at {clone}")
        else:
            shutil.rmtree(clone, ignore_errors=True)
    _tell_done(repo / store_rel, store_rel, len(staged), count)


def _pull_into(clone: Path, repo: Path, store_rel: str, staged: list[Record]) -> int:
    """Clone the repository, pull the store into the clone, and check it: the same file
    as here, every staged image byte-identical to its incoming file. Its image count."""
    _run(["git", "clone", "--quiet", str(repo), str(clone)], repo, "git clone", quiet=True)
    # A teammate would `git pull` a commit holding dvc.lock; the demo commits nothing
    # in your repository, so it hands the clone the files such a commit would carry.
    for rel in ("dvc.lock", "params.yaml", "data/.gitignore", ".dvc/config", ".dvc/config.local"):
        if (repo / rel).exists():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, clone / rel)
    _run(_dvc("pull", store_rel), clone, "dvc pull", quiet=True)
    incoming = Project.load(repo).incoming
    with ImageStore(clone / store_rel) as pulled:
        mismatched = [
            r.key
            for r in staged
            if r.key not in pulled or pulled.get(r.key) != (incoming / r.key).read_bytes()
        ]
        count = len(pulled)
    if mismatched or _contents(clone / store_rel) != _contents(repo / store_rel):
        raise DemoError(
            f"the pulled store differs: {len(mismatched)} image(s) not "
            f"byte-identical, e.g. {mismatched[:3]}"
        )
    return count


def _tell_done(store_path: Path, store_rel: str, staged: int, count: int) -> None:
    header = ImageStore(store_path).header
    click.echo("")
    click.echo("demo: done.")
    click.echo(f"  packed   {header.count} images ({header.total_bytes:,} bytes) into {store_rel}")
    click.echo("  rejected the broken samples, each with a reason: reports/ingest.json")
    click.echo(
        f"  pushed   {store_rel} to the default DVC remote"
        + (" as one object" if store_path.is_file() else ", shard by shard")
    )
    click.echo(
        f"  pulled   it into a fresh clone: {staged} of {staged} images "
        f"byte-identical to the files in data/incoming/ ({count} in the store)"
    )
    click.echo(
        "Next: commit dvc.lock, data/.gitignore and reports/ so teammates can "
        "`git pull && dvc pull`."
    )
    command = os.path.relpath(Path(sys.executable).parent / "imageshelf")
    click.echo(
        f"Look at it: {command} view   (a page in your browser: the gallery, each image "
        "with its boxes, and `--diff REV_A REV_B` for what changed between two commits)"
    )
