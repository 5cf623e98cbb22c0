"""Images written back under their keys, byte-identical, and the small files beside them.

Every target is checked before the first file is written: a key that would land outside
the folder (an absolute path, '..', or a symlink inside it) is refused, and so is a file
already there, unless `overwrite`."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..base.atomic import atomic_write
from ..errors import ShelfError
from ..store import ImageStore, Record

OnItem = Callable[[Record], None]


class ExportError(ShelfError):
    """An export that would write outside its folder or over a file; nothing was written."""


def target_inside(root: str, key: str) -> str | None:
    """Where `key` lands under the real path `root`, or None if it would escape it."""
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


def plan_files(
    out_dir: Path,
    paths: Sequence[str],
    overwrite: bool,
    what: str = "key",
    case_insensitive: bool | None = None,
) -> list[str]:
    """The targets of `paths` (relative to `out_dir`), each checked: inside the folder,
    no path both a file and a folder, no two the same file on the target's disk (which
    may fold case and Unicode forms: asked of the disk unless `case_insensitive` says),
    none already there unless `overwrite`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(out_dir)
    _refuse_collisions(paths, _folds(root) if case_insensitive is None else case_insensitive)
    targets = [target_inside(root, path) for path in paths]
    escaping = [path for path, target in zip(paths, targets, strict=True) if target is None]
    if escaping:
        raise ExportError(
            f"refusing {what}s that would be written outside {out_dir}: "
            + ", ".join(map(repr, escaping[:5]))
        )
    names = set(paths)
    clash = next(((f, p) for p in paths for f in _folders(p) if f in names), None)
    if clash is not None:
        raise ExportError(
            f"{clash[0]!r} would be a file and a folder (for {clash[1]!r}): refusing to "
            "export as files; `--as webdataset` keeps both"
        )
    if not overwrite:
        taken = [t for t in targets if t is not None and os.path.lexists(t)]
        if taken:
            raise ExportError(
                f"{len(taken)} file(s) already exist in {out_dir} (first: "
                f"{os.path.relpath(taken[0], root)}); --overwrite replaces them"
            )
    return [t for t in targets if t is not None]


def disk_folds(out_dir: Path) -> bool:
    """Whether the disk `out_dir` is on (created if missing) folds case."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return _folds(os.path.realpath(out_dir))


def _folds(root: str) -> bool:
    """Whether the disk under `root` takes two names differing only in case as one file
    (macOS, Windows): asked by making a file and looking for its other case."""
    probe = os.path.join(root, ".imageshelf-probe-Aa")
    try:
        with open(probe, "x"):
            pass
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(root, ".imageshelf-probe-aA"))
    finally:
        os.unlink(probe)


def _refuse_collisions(paths: Sequence[str], folds: bool) -> None:
    """Two paths that would be one file: the same key twice, or (on a disk that folds
    case and Unicode forms) `Case.PNG` and `case.png`, `café` in NFC and NFD."""
    seen: dict[str, str] = {}
    for path in paths:
        name = unicodedata.normalize("NFC", path).casefold() if folds else path
        if name in seen:
            said = "twice" if seen[name] == path else f"and {seen[name]!r}"
            raise ExportError(
                f"{path!r} {said} would collide as one file in the folder: nothing was "
                "written" + ("" if folds else " (the store lists that key twice; run validate)")
            )
        seen[name] = path


def _folders(path: str) -> Iterator[str]:
    at = path.find("/")
    while at >= 0:
        yield path[:at]
        at = path.find("/", at + 1)


def write_images(
    store: ImageStore, records: Sequence[Record], targets: Sequence[str], on_item: OnItem | None
) -> int:
    """Each record's original bytes at its target; the bytes written."""
    total = 0
    for record, target in zip(records, targets, strict=True):
        data = store.get(record.key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_write(target) as out:
            out.write(data)
        total += len(data)
        if on_item is not None:
            on_item(record)
    return total


Paired = dict[tuple[str, str], tuple[str, str, str]]  # (key, role) -> (path, key, role)


def paired_paths(records: Sequence[Record], paths: Sequence[str]) -> Paired:
    """Where each record's paired images (its masks) go: the path each arrived as
    (`file`), under the same folder the record's path was put under (a split folder);
    ExportError for one file that two records' paired images would fill differently."""
    out: Paired = {}
    claimed: dict[str, str] = {}  # path -> the sha256 written there
    for record, path in zip(records, paths, strict=True):
        prefix = path[: len(path) - len(record.key)]  # "val/" under --split-folders
        for role in record.roles():
            paired = record.paired[role]
            target = prefix + paired.file
            if claimed.setdefault(target, paired.info.sha256) != paired.info.sha256:
                raise ExportError(
                    f"{target!r} would hold two different paired images ({record.key!r}'s "
                    f"{role} and another's): refusing to export as files"
                )
            out[(record.key, role)] = (target, record.key, role)
    return out


def write_paired(store: ImageStore, targets: dict[str, tuple[str, str]]) -> int:
    """Each paired image's original bytes at its target (target -> (key, role))."""
    total = 0
    for target, (key, role) in targets.items():
        data = store.get_paired(key, role)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_write(target) as out:
            out.write(data)
        total += len(data)
    return total
