"""Files of a DVC repository at a git revision, read as its dvc.lock records them: the
shared reader of `imageshelf.read.remote` (a version of the store, no checkout) and of
`imageshelf diff` (catalogs at two revisions, here or in another repository).

A repository is someone else's, and its remote may be written by more people than its
git history: everything they hand over is untrusted input. What dvc.lock records at the
revision is the root of trust, and every file is read against it:

- every md5, from dvc.lock or a `.dir` manifest, is 32 lowercase hex digits (it names
  files, in DVC's storage and in the cache: it can never be a path);
- a folder's `.dir` manifest is read from storage and checked against the md5 dvc.lock
  records for it (DVC itself does not), so each file's md5 comes from checked bytes;
- each file is read from the repository's DVC cache or its remote (asked of DVC: its
  outputs and object databases, nothing else), no further than the size recorded (the
  file's own, or for a file in a folder the folder's total: `.dir` manifests record no
  size per file), from a regular file (on a local remote a pipe, a device or a folder is
  refused before a byte is read), and checked against its md5 before use.

DVC is imported here, lazily: reading a store never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..store import StoreError
from ..store.format import parse_json
from .objects import BLOCK, ObjectCache, RemoteError, Sink, is_md5
from .reading import dvc_errors

Recorded = tuple[str, int | None, int | None]  # an output's digest, size, file count


class Source:
    """Files of one repository at one revision, as its dvc.lock records them, fetched
    into a shared, bounded cache."""

    def __init__(
        self, repo: str, rev: str, cache: ObjectCache | None = None, shown: str | None = None
    ) -> None:
        self.repo, self.rev, self.cache = repo, rev, cache
        self.shown = shown or rev  # the revision as the user gave it, for messages
        self._fs: Any = None
        self._outs: dict[str, Any] | None = None  # DVC's outputs (not pickled)
        self._recorded: dict[str, Recorded] | None = None  # output path -> as recorded
        self._listings: dict[str, dict[str, str]] = {}  # a folder -> {relpath: md5}, checked
        self.fetched = 0  # bytes this process fetched into the cache

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_fs", "_outs")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _fs=None, _outs=None)

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:  # what dvc.api exports, without the rest of dvc.api: 0.15 s sooner
                from dvc.fs.dvc import _DVCFileSystem as DVCFileSystem
            except ImportError:
                from dvc.api import DVCFileSystem

            self._fs = self._call(lambda: DVCFileSystem(self.repo, rev=self.rev), "the repository")
        return self._fs

    def _call(self, action: Callable[[], Any], what: str) -> Any:
        """`action()`, DVC's errors (dvcfs.dvc_errors: a folder's listing in no cache or
        remote among them) one line naming `what`."""
        caught: tuple[type[Exception], ...] = (*dvc_errors(), KeyError, ValueError)
        try:
            return action()
        except caught as exc:
            text = str(exc).strip().splitlines()
            raise RemoteError(
                f"cannot read {what} at {self.shown} from {self.repo}: "
                f"{text[0] if text else type(exc).__name__}"
            ) from None

    # -- what the revision records
    def _outputs(self) -> dict[str, Any]:
        """DVC's outputs of the revision that DVC caches, by path."""
        if self._outs is None:
            outs = self._call(lambda: list(self.fs.repo.index.outs), "dvc.yaml and dvc.lock")
            self._outs = {
                out.fs.relpath(out.fs_path, out.repo.root_dir): out  # def_path: from its file
                for out in outs
                if out.use_cache and out.hash_info
            }
        return self._outs

    def _records(self) -> dict[str, Recorded]:
        if self._recorded is None:
            self._recorded = {
                path: (str(out.hash_info.value), out.meta.size, out.meta.nfiles)
                for path, out in self._outputs().items()
            }
        return self._recorded

    def typed(self, kind: str) -> str | None:
        """The output the revision's dvc.yaml marks `type: kind` (`catalog`), as DVC
        parses it; None where none is (a revision from before outputs were typed)."""
        outs = self._call(lambda: list(self.fs.repo.index.outs), "dvc.yaml and dvc.lock")
        found = sorted(
            {
                out.fs.relpath(out.fs_path, out.repo.root_dir)
                for out in outs
                if out.annot.type == kind
            }
        )
        if len(found) > 1:
            raise RemoteError(
                f"dvc.yaml at {self.rev} of {self.repo} marks {len(found)} outputs "
                f"type: {kind} ({', '.join(found[:2])}): which is meant cannot be told"
            )
        return found[0] if found else None

    def recorded_setting(self, stage: str, name: str) -> Any:
        """The value of the setting `name` (`pack.store`) that dvc.lock records the
        `stage` ran with in the revision; None if it records none."""
        from dvc.dependency.param import ParamsDependency

        stages = self._call(lambda: list(self.fs.repo.index.stages), "dvc.yaml and dvc.lock")
        for found in stages:
            for dep in found.deps if found.name == stage else ():
                value = dep.hash_info.value if isinstance(dep, ParamsDependency) else None
                if isinstance(value, dict):
                    section, _dot, key = name.partition(".")
                    nested = value.get(section)
                    return value.get(name, nested.get(key) if isinstance(nested, dict) else None)
        return None

    def has(self, path: str) -> bool:
        """Whether DVC records an output at `path` in the revision."""
        return path in self._records()

    def holds(self, path: str) -> bool:
        """Whether `path` is an output DVC records in the revision, or lies in one."""
        parts = path.strip("/").split("/")
        return any("/".join(parts[:end]) in self._records() for end in range(1, len(parts) + 1))

    def _output_of(self, path: str) -> tuple[str, str, Recorded]:
        """(the output holding `path`, `path` inside it, "" for itself; as recorded)."""
        records = self._records()
        parts = path.strip("/").split("/")
        for end in range(len(parts), 0, -1):
            out = "/".join(parts[:end])
            if out in records:
                return out, "/".join(parts[end:]), self._checked(out, records[out])
        raise RemoteError(
            f"{path}: DVC tracks no such output at {self.shown} of {self.repo} (is it the "
            "right repository and revision?)"
        )

    def _checked(self, out: str, recorded: Recorded) -> Recorded:
        digest, size, nfiles = recorded
        if not is_md5(digest.removesuffix(".dir")):
            raise RemoteError(
                f"{out}: dvc.lock at {self.shown} of {self.repo} gives {digest[:40]!r} as its "
                "md5, which is not 32 hex digits: refused (a damaged or forged dvc.lock)"
            )
        if type(size) is not int or size < 0:
            raise RemoteError(
                f"{out}: dvc.lock at {self.shown} of {self.repo} records no size for it, so "
                "what the remote sends cannot be bounded: refused (`dvc commit` it again)"
            )
        return recorded

    def listing(self, path: str) -> dict[str, str] | None:
        """{name: md5} of the files in the folder `path`; None if `path` is a file."""
        out, inside, (digest, _size, _nfiles) = self._output_of(path)
        if not digest.endswith(".dir"):
            if inside:
                raise RemoteError(f"{path}: not in {out} at {self.shown} of {self.repo}")
            return None
        files = self._manifest(out)
        if not inside:
            return files
        if inside in files:
            return None
        prefix = f"{inside}/"
        found = {name[len(prefix) :]: md5 for name, md5 in files.items() if name.startswith(prefix)}
        if not found:
            raise RemoteError(f"{path}: not in {out} at {self.shown} of {self.repo}")
        return found

    def file(self, path: str) -> tuple[str, str, int]:
        """(the output holding the file `path`, its md5, the most bytes it can hold)."""
        out, inside, (digest, size, _nfiles) = self._output_of(path)
        assert size is not None  # _checked
        if not inside:
            if digest.endswith(".dir"):
                raise RemoteError(f"{path}: a folder at {self.shown} of {self.repo}, not a file")
            return out, digest, size
        md5 = self._manifest(out).get(inside)
        if md5 is None:
            raise RemoteError(f"{path}: not in {out} at {self.shown} of {self.repo}")
        return out, md5, size  # in a folder: bounded by the folder's total

    def _manifest(self, out: str) -> dict[str, str]:
        """The folder output's `.dir` manifest, read from storage and checked against the
        md5 dvc.lock records for it: {relpath: md5}."""
        listing = self._listings.get(out)
        if listing is not None:
            return listing
        digest, _size, nfiles = self._records()[out]
        count = nfiles if type(nfiles) is int and nfiles >= 0 else 1 << 16
        raw = bytearray()
        where = f"{out} (its .dir manifest)"
        self._stream(out, digest, 1 << 16 | count << 13, raw.extend, where)  # 8 KB a file
        self._verify(raw, digest.removesuffix(".dir"), where)
        listing = self._listings[out] = _parse_manifest(bytes(raw), f"{where} at {self.shown}")
        return listing

    # -- reading what it records
    def read(self, path: str) -> bytes:
        """A small file of the revision (the shard index, a catalog part), whole and
        checked, in memory."""
        out, md5, bound = self.file(path)
        data = bytearray()
        self._stream(out, md5, bound, data.extend, path)
        self._verify(data, md5, path)
        return bytes(data)

    def held(self, path: str) -> contextlib.AbstractContextManager[tuple[Path, bool]]:
        """The file `path` in the cache, fetched if it is not there yet, and kept there
        until the block ends: (its path, whether it was waited for)."""
        out, md5, bound = self.file(path)

        def fetch(sink: Sink) -> None:
            def counted(block: bytes) -> None:
                sink(block)
                self.fetched += len(block)

            self._stream(out, md5, bound, counted, path)

        if self.cache is None:
            raise RemoteError(f"{path}: no cache to fetch it into")
        return self.cache.held(md5, bound, fetch, f"{path} from {self.repo}")

    def fetch(self, path: str) -> None:
        """Put the file `path` in the cache, if it is not there yet."""
        with self.held(path):
            pass

    def _verify(self, data: bytes | bytearray, md5: str, where: str) -> None:
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            raise StoreError(
                f"{where}: the file fetched from {self.repo} does not match the md5 its "
                "revision records: refused (damaged or tampered with on the remote)"
            )

    def _stream(self, out: str, oid: str, bound: int, sink: Sink, where: str) -> None:
        """Hand the object `oid` of output `out` to `sink`, block by block, from the
        repository's cache or its remote: never more than `bound` bytes."""
        handle, size = self._open_object(out, oid, where)
        total = 0
        with handle:
            if size is not None and size > bound:
                raise RemoteError(_too_big(where, f"holds {size:,} bytes", bound))
            while block := self._call(lambda: handle.read(BLOCK), where):
                total += len(block)
                if total > bound:
                    raise RemoteError(_too_big(where, f"sends over {bound:,} bytes", bound))
                sink(block)

    def _open_object(self, out: str, oid: str, where: str) -> tuple[Any, int | None]:
        """(a binary file of the object `oid`, its size if known) from the first place
        that holds it: the repository's DVC cache, then its remote."""
        for odb in self._odbs(out):
            opened = self._call(partial(_open_in, odb, oid, where), where)
            if opened is not None:
                return opened
        of = "" if self.repo == "." else f" of {self.repo}"
        raise RemoteError(
            f"{where} at {self.shown}{of} is in neither DVC's cache here nor the remote: "
            "push it from the clone that made it (`dvc push --all-commits`) to a remote "
            "both clones use (`dvc remote list`), then try again"
        )

    def _odbs(self, out: str) -> list[Any]:
        """Where DVC keeps the objects of output `out`: its cache, then its remote."""
        from dvc.exceptions import DvcException

        output = self._outputs()[out]
        found = [self._call(lambda: output.cache, out)]
        with contextlib.suppress(DvcException):  # no remote: the cache alone
            found.append(
                self.fs.repo.cloud.get_remote_odb(output.remote, "fetch", output.hash_name)
            )
        return found


def _too_big(where: str, what: str, bound: int) -> str:
    return (
        f"{where}: its object on the remote {what}, more than the {bound:,} its revision "
        "records: refused (damaged or tampered with on the remote)"
    )


def _open_in(odb: Any, oid: str, where: str) -> tuple[Any, int | None] | None:
    """The object `oid` of the object database `odb`, opened; None if it is not there."""
    path = odb.oid_to_path(oid)
    if getattr(odb.fs, "protocol", "") in ("local", "file"):
        return _open_local(path, where)
    try:
        handle = odb.fs.open(path, mode="rb")
    except FileNotFoundError:
        return None
    size = getattr(handle, "size", None)
    return handle, size if type(size) is int else None


def _open_local(path: str, where: str) -> tuple[Any, int | None] | None:
    """The regular file at `path`, opened without waiting (a FIFO would block open()
    for ever); None if there is none; RemoteError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RemoteError(f"{where}: cannot read its object {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RemoteError(
            f"{where}: its object {path} is not a regular file (a pipe, device or folder): refused"
        )
    return open(fd, "rb"), st.st_size


def _parse_manifest(raw: bytes, where: str) -> dict[str, str]:
    """{relpath: md5} of a `.dir` manifest, every md5 checked to be one."""
    try:
        entries = parse_json(raw)
    except (ValueError, RecursionError):
        raise RemoteError(f"{where}: not JSON: refused") from None
    if not isinstance(entries, list):
        raise RemoteError(f"{where}: not a list of files: refused")
    listing: dict[str, str] = {}
    for entry in entries:
        name = entry.get("relpath") if isinstance(entry, dict) else None
        md5 = entry.get("md5") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not is_md5(md5) or name in listing:
            raise RemoteError(
                f"{where}: the entry {str(entry)[:80]!r} is not a file name and its md5 "
                "(32 hex digits), once: refused"
            )
        listing[name] = md5  # type: ignore[assignment]
    return listing
