"""Walk a place (data/incoming/, data/annotations/): every file is an image candidate,
an annotation file, ignored by a pattern, or something that cannot be used, with why."""

from __future__ import annotations

import os
import pickle
import stat
from dataclasses import dataclass, field

from ..annotations import ANNOTATION_SUFFIXES, IgnoreRules, annotation_kind
from ..annotations.archives import ARCHIVE_SUFFIXES, ArchiveError, list_archive
from ..base.userfile import STAMP, Stamp


@dataclass(frozen=True)
class Reject:
    path: str
    code: str
    reason: str


def shown(relpath: str) -> str:
    """A path as it can be printed and stored in JSON, even if the name is not UTF-8."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")


@dataclass
class Found:
    """What a walk found, by path relative to the folder walked."""

    files: list[str] = field(default_factory=list)  # image candidates
    # each candidate's and annotation file's fingerprint, packed (files.Stamp)
    stamps: dict[str, Stamp] = field(default_factory=dict)
    annotations: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)  # .zip and .tar files: opened


def walk(root: str, ignore: tuple[str, ...] = (), jobs: int = 1) -> Found:
    """Every file under `root`: image candidates, annotation files, ignored files, and
    what cannot be used (unreadable, not a regular file, a symlink leading out).

    jobs > 1 walks in that many forked processes: a `stat` per file is the cost of a
    large folder. Each process lists every folder and takes the folders whose path
    hashes to it (forked processes share the hash seed), and in a very large folder the
    entries whose path does, so the work is shared evenly whatever the shape: one flat
    folder of 100,000 images, or exports of 1,000 in images/ and labels/.
    """
    if jobs > 1 and hasattr(os, "fork"):
        found = _walk_shared(root, ignore, jobs)
    else:
        found = _walk(root, ignore)
    _open_archives(root, found, IgnoreRules(ignore))
    for names in (found.files, found.annotations, found.ignored):
        names.sort()
    return found


def _walk_shared(root: str, ignore: tuple[str, ...], jobs: int) -> Found:
    """Every share of a walk: this process takes one, a forked child each of the others
    and sends it back pickled through a pipe (a process pool costs 0.1 to 0.2 s to
    start and stop: a third of what the walk saves). A share whose child failed is
    walked here."""
    children = [_fork_share(root, ignore, (i, jobs)) for i in range(1, jobs)]
    found = _walk(root, ignore, (0, jobs))
    for share, pid, pipe in children:
        with os.fdopen(pipe, "rb") as results:
            data = results.read()
        status = os.waitpid(pid, 0)[1]
        part = pickle.loads(data) if status == 0 and data else _walk(root, ignore, share)
        found.files += part.files
        found.annotations += part.annotations
        found.ignored += part.ignored
        found.rejects += part.rejects
        found.archives += part.archives
        found.stamps.update(part.stamps)
    return found


def _fork_share(
    root: str, ignore: tuple[str, ...], share: tuple[int, int]
) -> tuple[tuple[int, int], int, int]:
    """(share, child's pid, the pipe its results come down)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: walk, send, and leave without running any cleanup
        code = 1
        try:
            os.close(read)
            data = pickle.dumps(_walk(root, ignore, share), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return share, pid, read


def _open_archives(root: str, found: Found, ignored: IgnoreRules) -> None:
    """Each archive's members as files of the place under its path (annotations.archives),
    each with the archive's fingerprint: a member changes only with its archive."""
    for archive in sorted(found.archives):
        try:
            members, problems = list_archive(os.path.join(root, archive))
        except ArchiveError as exc:
            found.rejects.append(Reject(shown(archive), "unreadable", str(exc)))
            continue
        stamp = found.stamps[archive]
        for name, why in problems:
            found.rejects.append(Reject(shown(f"{archive}/{name}"), "bad_member", why))
        for member in members:
            rel = f"{archive}/{member.name}"
            if ignored(member.name):
                found.ignored.append(rel)
                continue
            found.stamps[rel] = stamp
            kind = annotation_kind(rel)
            (found.annotations if kind is not None else found.files).append(rel)


BY_ENTRY_FROM = 4096  # entries: a folder this large is shared out entry by entry


def _walk(root: str, ignore: tuple[str, ...], share: tuple[int, int] = (0, 1)) -> Found:
    """The entries of every folder under `root` that fall to this share: a whole folder,
    by its path's hash (the others only look in it for folders), or, in a folder of
    BY_ENTRY_FROM entries or more (one flat folder of 100,000 images), each entry by
    its own path's hash."""
    walker = _Walker(root, ignore, share)
    visit, passing, alone = walker.visit, walker.passing, walker.alone
    mine, shares = share
    pending = [""]
    while pending:
        folder = pending.pop()
        prefix = f"{folder}/" if folder else ""
        entries = walker.listing(folder)
        by_entry = not alone and len(entries) >= BY_ENTRY_FROM
        whole = alone or (not by_entry and hash(folder) % shares == mine)
        for entry in entries:
            rel = prefix + entry.name
            if entry.name == ".gitkeep" and not folder:
                continue  # the placeholder that keeps the empty folder in git
            # (The share test, inline: this loop runs once per file.)
            if whole or (by_entry and hash(rel) % shares == mine):
                if visit(rel, entry):
                    pending.append(rel)
            elif passing(rel, entry):
                pending.append(rel)
    return walker.found  # walk() sorts what every share found


class _Walker:
    """What one share of a walk found; a file's or folder's fate is decided here."""

    def __init__(self, root: str, ignore: tuple[str, ...], share: tuple[int, int]) -> None:
        self.root, self.found = root, Found()
        self.real_root = os.path.realpath(root)
        rules = IgnoreRules(ignore)
        self.ignore_name = rules.name
        self.ignore_path = rules.path if rules.has_paths else None
        self.share, self.shares = share
        self.alone = self.shares == 1

    def mine(self, folder: str) -> bool:
        """Whether this share tells what is wrong with `folder` (one share does)."""
        return self.alone or hash(folder) % self.shares == self.share

    def ignored(self, rel: str, name: str) -> bool:
        """Its folders were checked on the way down: its own name and its path remain."""
        return self.ignore_name(name) or (self.ignore_path is not None and self.ignore_path(rel))

    def listing(self, folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(os.path.join(self.root, folder)) as listing:
                return list(listing)
        except OSError as exc:
            if self.mine(folder):
                why = f"cannot list folder: {exc.strerror}"
                self.found.rejects.append(Reject(shown(folder), "unreadable", why))
            return []

    def passing(self, rel: str, entry: os.DirEntry[str]) -> bool:
        """Another share looks at it; every share walks every folder: whether to."""
        try:
            walked = entry.is_dir(follow_symlinks=False)
        except OSError:
            walked = False
        return walked and not self.ignored(rel, entry.name)

    def visit(self, rel: str, entry: os.DirEntry[str]) -> bool:
        """Account for one entry of this share; whether it is a folder to walk."""
        found, name = self.found, entry.name
        if self.ignore_name(name) or (self.ignore_path is not None and self.ignore_path(rel)):
            found.ignored.append(shown(rel))
            return False
        try:
            if entry.is_symlink():
                problem = _symlink_problem(entry.path, self.real_root)
                if problem:
                    found.rejects.append(Reject(shown(rel), problem[0], problem[1]))
                    return False
                st = os.stat(entry.path)
            else:
                st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            found.rejects.append(Reject(shown(rel), "unreadable", f"cannot stat: {exc.strerror}"))
            return False
        mode = st.st_mode
        if _is_dir(mode):
            return True
        if not _is_reg(mode):
            why = "not a regular file (a pipe, socket or device)"
            found.rejects.append(Reject(shown(rel), "not_file", why))
            return False
        found.stamps[rel] = _stamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        dot = name.rfind(".")
        suffix = name[dot:].lower() if dot >= 0 else ""
        if suffix in _ARCHIVES:
            found.archives.append(rel)
        elif suffix in ANNOTATION_SUFFIXES:  # annotation_kind's test, by the name alone
            found.annotations.append(rel)
        else:
            found.files.append(rel)
        return False


_is_dir, _is_reg = stat.S_ISDIR, stat.S_ISREG  # called once per file: no attribute lookup
_ARCHIVES = frozenset(ARCHIVE_SUFFIXES)  # archives.is_archive, as a set of suffixes
_stamp = STAMP.pack


def _symlink_problem(path: str, real_root: str) -> tuple[str, str] | None:
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return ("symlink", "symlink loop")
        return ("symlink", f"broken symlink ({exc.strerror})")
    if target != real_root and not target.startswith(real_root + os.sep):
        return ("symlink", f"symlink leads outside the incoming folder (to {target})")
    if os.path.isdir(target):
        return ("symlink", "symlink to a folder: not followed, so nothing is counted twice")
    return None
