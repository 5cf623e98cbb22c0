"""Walk a place (data/incoming/, data/annotations/): every file is an image candidate,
an annotation file, ignored by a pattern, or something that cannot be used, with why."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from .annotations import IgnoreRules, annotation_kind
from .cache import Fingerprint, of_stat


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
    # each candidate's fingerprint (cache.py), from the walk
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    annotations: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def walk(root: str, ignore: tuple[str, ...] = ()) -> Found:
    """Every file under `root`: image candidates, annotation files, ignored files, and
    what cannot be used (unreadable, not a regular file, a symlink leading out)."""
    found = Found()
    ignored = IgnoreRules(ignore)
    real_root = os.path.realpath(root)
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder)) as listing:
                entries = list(listing)
        except OSError as exc:
            found.rejects.append(
                Reject(shown(folder), "unreadable", f"cannot list folder: {exc.strerror}")
            )
            continue
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.name == ".gitkeep" and not folder:
                continue  # the placeholder that keeps the empty folder in git
            # Its folders were checked on the way down: its own name and its path remain.
            if ignored.name(entry.name) or ignored.path(rel):
                found.ignored.append(shown(rel))
                continue
            try:
                if entry.is_symlink():
                    problem = _symlink_problem(entry.path, real_root)
                    if problem:
                        found.rejects.append(Reject(shown(rel), problem[0], problem[1]))
                        continue
                    st = os.stat(entry.path)
                else:
                    st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
            except OSError as exc:
                found.rejects.append(
                    Reject(shown(rel), "unreadable", f"cannot stat: {exc.strerror}")
                )
                continue
            if stat.S_ISDIR(mode):
                pending.append(rel)
            elif not stat.S_ISREG(mode):
                found.rejects.append(
                    Reject(shown(rel), "not_file", "not a regular file (a pipe, socket or device)")
                )
            elif annotation_kind(rel) is not None:
                found.annotations.append(rel)
            else:
                found.files.append(rel)
                found.fingerprints[rel] = of_stat(st)
    for names in (found.files, found.annotations, found.ignored):
        names.sort()
    return found


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
