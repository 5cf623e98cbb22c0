"""Versions of the store as DVC records them: the one dvc.lock names, and the one at any
git revision. The pipeline's guard against packing into a stale store, and `merge`.

DVC is imported here, lazily, and only by the pipeline and the tools: reading a store
never needs it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from ..project.params import PARAMS
from ..repo.objects import is_md5
from ..repo.reading import reading
from ..store import ImageStore, StoreFile
from ..store.format import parse_json
from ..store.index import INDEX_NAME, ShardIndex

LOCK = Path("dvc.lock")  # where DVC records each stage's outputs


class VersionError(ShelfError):
    """The store in the workspace is not the version it should be."""


class RevisionError(VersionError):
    """A revision a user gave that names no commit of the repository; the message
    names the revision and says what a revision may be."""


MAX_REVISION = 256  # characters: a branch or tag name, a commit, then ~N, ^N or @{N}
# A ref name (branch, tag, remote branch), a commit or its first digits, HEAD or @;
# then at most one reflog entry @{N}; then ~N and ^N steps. No path (HEAD:file), no
# range (a..b), no peeling (^{tree}), no option (-x), no space or control character.
_REVISION = re.compile(
    r"(?P<base>(?:[^\x00-\x20\x7f~^:?*\[\\@{}]|@(?!\{))*)"
    r"(?:@\{(?P<entry>\d{1,9})\})?"
    r"(?P<steps>(?:[~^]\d{0,9})*)"
)
FORMS = "a commit, branch or tag, HEAD~N or HEAD@{N}"


def shown_revision(rev: str) -> str:
    """A revision for a one-line message: quoted, escaped, cut short."""
    text = repr(rev)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(rev):,} characters)"


def resolve_revision(rev: str, repo: str | os.PathLike[str] = ".") -> str:
    """The commit (its full hex id) that `rev`, a revision a user gave, names in the git
    repository `repo` (a path, or a URL DVC clones). `rev` is a commit, branch or tag,
    HEAD~N or HEAD@{N}: the one door every user's revision goes through. A
    RevisionError naming it if it is empty, too long, not of these forms, unknown, past
    the end of its reflog or not a commit."""
    parsed = _parse_revision(rev)
    base, entry, steps = parsed["base"], parsed["entry"], parsed["steps"]
    scm = _git(repo, rev, reflog=entry is not None)
    from scmrepo.exceptions import SCMError

    try:
        start = _reflog_entry(scm, base, int(entry), rev) if entry is not None else base
        commit = scm.resolve_rev(start + steps)
        kind = scm.pygit2.repo.get(commit).type_str
    except SCMError:
        raise RevisionError(
            f"no revision {shown_revision(rev)} in {_named(repo)}: give {FORMS} "
            "(`git log --oneline` lists commits)"
        ) from None
    finally:
        scm.close()
    if kind != "commit":
        raise RevisionError(
            f"revision {shown_revision(rev)} names a {kind}, not a commit: give {FORMS}"
        )
    return str(commit)


def _parse_revision(rev: str) -> dict[str, str]:
    if not isinstance(rev, str) or not rev:
        raise RevisionError(f"revision {shown_revision(rev)} is empty: give {FORMS}")
    if len(rev) > MAX_REVISION:
        raise RevisionError(
            f"revision {shown_revision(rev)} is longer than {MAX_REVISION} characters: give {FORMS}"
        )
    found = _REVISION.fullmatch(rev)
    base = found["base"] if found else ""
    if (
        not found
        or not rev.isprintable()
        or not (base or found["entry"])
        or base.startswith(("-", "/"))
        or ".." in base
    ):
        raise RevisionError(
            f"{shown_revision(rev)} is not a revision: give {FORMS} (no path, range, "
            "option or space)"
        )
    return found.groupdict()


def _named(repo: str | os.PathLike[str]) -> str:
    return "this repository" if str(repo) == "." else shown_revision(str(repo))


def _git(repo: str | os.PathLike[str], rev: str, reflog: bool) -> Any:
    """The git repository `repo` as scmrepo (DVC's own git layer) opens it: the folder,
    or DVC's clone of a URL. A reflog is this machine's history: a clone has none."""
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        if os.path.isdir(repo):
            return Git(os.fspath(repo), search_parent_directories=True)
        if reflog:
            raise RevisionError(
                f"{shown_revision(rev)} is a reflog entry, which is this machine's history: "
                f"with a repository URL, give a commit, branch or tag"
            )
        from dvc.api import DVCFileSystem

        return DVCFileSystem(str(repo)).repo.scm
    except (DvcException, SCMError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise RevisionError(
            f"cannot read revision {shown_revision(rev)}: {_named(repo)} is not a git "
            f"repository here ({reason})"
        ) from None


def _reflog_entry(scm: Any, base: str, entry: int, rev: str) -> str:
    """The commit of reflog entry `entry` of `base` (a ref; "" the current branch, HEAD
    or @ HEAD itself), counted from the newest. libgit2 wraps an index past 2**32 round
    to an entry that exists: the index is checked against the reflog here."""
    repo = scm.pygit2.repo
    try:
        if base in ("HEAD", "@") or (not base and repo.head_is_detached):
            ref = repo.lookup_reference("HEAD")
        elif not base:
            ref = repo.lookup_reference(repo.head.name)
        else:
            ref = repo.lookup_reference_dwim(base)
        entries = list(itertools.islice(ref.log(), entry + 1))
    except Exception:  # pygit2's own errors: no such ref, no reflog (not imported here)
        entries = []
    if len(entries) <= entry:
        raise RevisionError(
            f"no revision {shown_revision(rev)}: {base or 'the current branch'} has "
            f"{len(entries)} reflog entries here (`git reflog {base}` lists them)"
        )
    return str(entries[entry].oid_new)


@dataclass
class Recorded:
    """The store's output as dvc.lock records it."""

    path: Path
    oid: str  # DVC's md5 (a `.dir` one for the sharded folder)
    matches: bool  # the workspace holds exactly this version
    cached: dict[str, Path] | None  # its files in DVC's cache (by name), None if not all there

    def recorded_keys(self) -> Iterator[str]:
        """Every key of the recorded version, read from DVC's cache."""
        assert self.cached is not None
        for path in self.cached.values():
            yield from StoreFile(path)


def recorded(store_path: Path) -> Recorded | None:
    """What dvc.lock records for the output at `store_path`; None outside a DVC
    repository, or where nothing is recorded for it yet. Whether the workspace matches is
    decided by DVC's own hashes, which its state database keeps by inode and mtime: an
    unchanged store is not read again."""
    if not LOCK.exists():
        return None
    try:
        from dvc.exceptions import DvcException, NotDvcRepoError
        from dvc.repo import Repo
    except ImportError:
        return None
    try:
        repo = Repo()
    except (NotDvcRepoError, DvcException):
        return None
    target = os.path.realpath(store_path)
    with repo:
        try:
            outs = [
                out
                for stage in repo.index.stages
                for out in stage.outs
                if out.use_cache and os.path.realpath(out.fs_path) == target
            ]
        except DvcException as exc:
            raise VersionError(f"cannot read dvc.yaml and dvc.lock: {exc}") from None
        if not outs or not outs[0].hash_info:
            return None
        out = outs[0]
        oid = str(out.hash_info.value)
        matches = bool(store_path.exists() and out.get_hash() == out.hash_info)
        return Recorded(store_path, oid, matches, None if matches else _cached(out, oid))


def _cached(out: Any, oid: str) -> dict[str, Path] | None:
    """The recorded version's store files in DVC's cache: {name: path}, None if any is
    missing (never pulled here). An md5 names a file of the cache: dvc.lock, or a `.dir`
    manifest, that gives anything but 32 hex digits names none (a forged commit)."""
    if not is_md5(oid.removesuffix(".dir")):
        raise VersionError(f"{out.def_path}: dvc.lock gives {oid[:40]!r} as its md5: refused")
    path = Path(out.cache.oid_to_path(oid))
    if not path.exists():
        return None
    if not oid.endswith(".dir"):
        return {Path(out.def_path).name: path}
    listing = {
        entry["relpath"]: entry["md5"]
        for entry in parse_json(path.read_bytes())
        if isinstance(entry, dict) and is_md5(entry.get("md5"))
    }
    index_oid = listing.get(INDEX_NAME)
    index_path = Path(out.cache.oid_to_path(index_oid)) if index_oid else None
    if index_path is None or not index_path.exists():
        return None
    index = ShardIndex.parse(index_path.read_bytes(), f"{out.def_path}/{INDEX_NAME}")
    files = {}
    for part in index.parts:
        part_oid = listing.get(part.name)
        part_path = Path(out.cache.oid_to_path(part_oid)) if part_oid else None
        if part_path is None or not part_path.exists():
            return None
        files[part.name] = part_path
    return files


def _lock_stage(stage: str, lock: Path) -> dict[str, Any] | None:
    """A stage as dvc.lock records it, read as YAML: no DVC needed. None if there is no
    dvc.lock, or it does not record the stage."""
    import yaml

    try:
        entry = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"][stage]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return None
    return entry if isinstance(entry, dict) else None


def lock_outs(stage: str, lock: Path = LOCK) -> list[dict[str, Any]] | None:
    """A stage's outputs as dvc.lock records them (path, md5, size...). None if there is
    no dvc.lock, or it does not record the stage."""
    outs = (_lock_stage(stage, lock) or {}).get("outs")
    if not isinstance(outs, list):
        return None
    return [out for out in outs if isinstance(out, dict)]


def lock_setting(stage: str, name: str, lock: Path = LOCK) -> Any:
    """The value of params.yaml's setting `name` (`pack.store`) that dvc.lock records the
    stage ran with (it lists `pack`, or `pack.store`, among its params); None if none."""
    params = (_lock_stage(stage, lock) or {}).get("params")
    recorded = params.get(PARAMS) if isinstance(params, dict) else None
    if not isinstance(recorded, dict):
        return None
    section, _dot, key = name.partition(".")
    within = recorded.get(section)
    return recorded.get(name, within.get(key) if isinstance(within, dict) else None)


def recorded_md5(path: Path, stage: str = "pack", lock: Path = LOCK) -> str | None:
    """The md5 dvc.lock records for the output `path` of `stage`; None if it records
    none (read as YAML: no DVC needed)."""
    for out in lock_outs(stage, lock) or ():
        if out.get("path") == path.as_posix():
            md5 = out.get("md5")
            return md5 if isinstance(md5, str) else None
    return None


def previous_store(store_path: Path, lock: Path = LOCK) -> Path | None:
    """The store to start from when `store_path` does not exist yet: the one dvc.lock
    records in another place (the layout was switched), if it is here. Which of pack's
    outputs that is, dvc.lock says itself: the pack.store pack ran with.

    A missing store that dvc.lock knows of was not pulled: packing now would start a new
    store without every image packed before, and pushing it would drop them: refused.
    """
    outs = None if store_path.exists() else lock_outs("pack", lock)
    where = lock_setting("pack", "pack.store", lock) if outs else None
    recorded = next((o for o in outs or () if o.get("path") == where), None)
    if recorded is None:
        return None
    path = Path(recorded["path"])
    if path != store_path and path.exists():
        return path  # switching layouts: convert this one
    size = recorded.get("size")
    size_text = f"{size:,} bytes" if isinstance(size, int) else "its size unknown"
    raise VersionError(
        f"{store_path} is missing, but dvc.lock records the store at {recorded['path']} "
        f"({size_text}). Run `dvc pull {recorded['path']}` (or "
        f"`dvc checkout {recorded['path']}`) first, so new images join it. To start a "
        "new store on purpose, delete dvc.lock."
    )


def check_recorded(store_path: Path, recorded_digest: str | None = None) -> None:
    """Refuse to pack into a store that is not the version dvc.lock records, unless it
    holds every image of that version (a pack that ran since, whose result DVC has not
    recorded yet: a killed `dvc repro`, a stage run by hand).

    This is the teammate who ran `git pull` but not `dvc pull`: packing new images into
    the old store would publish it without every image the others added. The usual
    case, the store pack wrote last, is told by its content digest alone:
    `recorded_digest`, that of the version dvc.lock records, when the caller knows it
    (pack's state). Anything else asks DVC.
    """
    if not store_path.exists() or not LOCK.exists():
        return
    if recorded_digest is not None:
        try:
            with ImageStore(store_path) as here:
                if here.header.content_digest == recorded_digest:
                    return
        except ShelfError:
            pass  # a damaged store: pack reports it
    found = recorded(store_path)
    if found is None or found.matches or not store_path.exists():
        return
    if found.cached is None:
        raise VersionError(
            f"{store_path} is not the version dvc.lock records, which was made elsewhere and "
            f"is not here yet: run `dvc pull {store_path}` first, so new images join it "
            "(images waiting in data/incoming/ stay there)"
        )
    with ImageStore(store_path) as here:
        missing = sum(1 for key in found.recorded_keys() if key not in here)
    if missing:
        raise VersionError(
            f"{store_path} is not the version dvc.lock records and lacks {missing} of its "
            f"images: run `dvc checkout {store_path}` first (or, to keep this store and "
            "record it instead, `dvc commit -f pack`)"
        )


def _in_cache(fs: Any, path: str) -> Path | None:
    """Where DVC's cache holds the file `path` of `fs`'s revision, if it does: a store
    read from there is not copied (a million images are gigabytes). An md5 that is not
    32 hex digits (a forged dvc.lock or `.dir` in that revision) names no file, here or
    on the remote: VersionError."""
    md5 = fs.info(path).get("md5")
    if md5 is not None and not is_md5(md5):
        raise VersionError(f"{path}: its revision gives {str(md5)[:40]!r} as its md5: refused")
    try:
        cached = Path(fs.repo.cache.local.oid_to_path(md5)) if md5 else None
    except Exception:  # any doubt: fetch it, as before
        return None
    return cached if cached is not None and cached.is_file() else None


@contextmanager
def store_at(rev: str, store_path: Path, scratch: Path) -> Iterator[ImageStore]:
    """The store as it was at git revision `rev`: read in place from DVC's cache where it
    is there (and, for shards, from the workspace), else fetched from the remote into
    `scratch`."""
    from dvc.api import DVCFileSystem

    commit = resolve_revision(rev)
    with reading(store_path, rev, VersionError):
        fs = DVCFileSystem(".", rev=commit)
        if not fs.exists(str(store_path)):
            raise VersionError(f"no store at {store_path} in revision {rev}")
        if fs.isdir(str(store_path)):
            folder = scratch / store_path.name
            folder.mkdir(parents=True, exist_ok=True)
            _in_cache(fs, f"{store_path}/{INDEX_NAME}")  # its md5 checked before the fetch
            fs.get_file(f"{store_path}/{INDEX_NAME}", str(folder / INDEX_NAME))
            for part in ShardIndex.read(folder).parts:
                here = store_path / part.name  # named by content: the same bytes
                cached = _in_cache(fs, f"{store_path}/{part.name}")
                if not here.exists():
                    here = cached or here
                if here.exists():
                    os.symlink(os.path.realpath(here), folder / part.name)
                else:
                    fs.get_file(f"{store_path}/{part.name}", str(folder / part.name))
            target = folder
        else:
            target = scratch / store_path.name
            cached = _in_cache(fs, str(store_path))
            if cached is not None:
                os.symlink(cached, target)  # read in place: a store is never written there
            else:
                fs.get_file(str(store_path), str(target))
    try:
        with ImageStore(target) as store:
            yield store
    finally:
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(
            missing_ok=True
        )
