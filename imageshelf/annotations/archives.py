"""Images (and their annotation files) inside `.zip` and `.tar` archives, as Hugging Face's
imagefolder reads a `.zip` of images: each member is a file of the place under the
archive's path (`batch.zip/cats/1.jpg`), its bytes exactly the member's.

Only archives a member can be read from without reading the rest: `.zip` (each member on
its own, deflated or stored) and uncompressed `.tar`. A compressed tar (`.tar.gz`,
`.tgz`, ...) would be read whole for every image: it is rejected, with the reason, as
are members that are not plain files (links, devices), names that would leave the
archive (`../x`, `/x`), encrypted members, and a member over the size limit.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass

from ..files import read_regular_file, read_regular_file_within
from .labelme import embedded_image

ARCHIVE_SUFFIXES = (".zip", ".tar")
UNREAD_ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".7z", ".rar")


class ArchiveError(OSError):
    """An archive, or a member, that cannot be read; the message says why."""


class MissingMember(ArchiveError):
    """No member of that name: as a file that is not there (a LabelMe JSON in the
    archive may hold it, read_source)."""


def is_archive(rel: str) -> bool:
    return rel.lower().endswith(ARCHIVE_SUFFIXES)


def unread_archive(rel: str) -> str | None:
    """Why an archive of this name is not read inside, or None."""
    if rel.lower().endswith(UNREAD_ARCHIVES):
        return (
            "a compressed archive: each image would cost reading it whole; unpack it, or "
            "make it a .zip or an uncompressed .tar"
        )
    return None


@dataclass(frozen=True)
class Member:
    name: str  # its clean path inside the archive
    size: int


def member_name(name: str) -> str | None:
    """A member's path as a key's tail, or None if it would leave the archive."""
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    if not name or name.startswith("/") or "\0" in name:
        return None
    clean = posixpath.normpath(name)
    if clean != name.rstrip("/") or clean == ".." or clean.startswith("../"):
        return None
    return clean


def list_archive(path: str) -> tuple[list[Member], list[tuple[str, str]]]:
    """The members that are files, and (name, why) for those that cannot be used.
    ArchiveError if the archive itself cannot be read."""
    try:
        if path.lower().endswith(".zip"):
            return _list_zip(path)
        return _list_tar(path)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
        raise ArchiveError(f"not a readable archive: {exc}") from None


def _list_zip(path: str) -> tuple[list[Member], list[tuple[str, str]]]:
    members, problems, seen = [], [], set()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = member_name(info.filename)
            mode = info.external_attr >> 16
            if name is None:
                problems.append((info.filename, "a member path that leaves the archive"))
            elif info.flag_bits & 1:
                problems.append((name, "an encrypted member"))
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                problems.append((name, "not a regular file in the archive (a link?)"))
            elif name in seen:
                problems.append((name, "a second member of the same name"))
            else:
                seen.add(name)
                members.append(Member(name, info.file_size))
    return members, problems


def _list_tar(path: str) -> tuple[list[Member], list[tuple[str, str]]]:
    members, problems = [], []
    for name, kind, _offset, size in _tar_index(path).values():
        if kind:
            problems.append((name, kind))
        else:
            members.append(Member(name, size))
    return members, problems


_tar_indexes: dict[tuple[str, int, int], dict[str, tuple[str, str, int, int]]] = {}


def _tar_index(path: str) -> dict[str, tuple[str, str, int, int]]:
    """name -> (name, why it cannot be used or "", data offset, size), kept per file
    version in this process: reading a member is then one seek."""
    st = os.stat(path)
    version = (path, st.st_size, st.st_mtime_ns)
    index = _tar_indexes.get(version)
    if index is None:
        index = {}
        with tarfile.open(path, mode="r:") as archive:
            for info in archive:
                if info.isdir():
                    continue
                name = member_name(info.name)
                if name is None:
                    index[info.name] = (info.name, "a member path that leaves the archive", 0, 0)
                elif not info.isreg():
                    index[name] = (name, "not a regular file in the archive (a link?)", 0, 0)
                elif name in index:
                    index[name] = (name, "a second member of the same name", 0, 0)
                else:
                    index[name] = (name, "", info.offset_data, info.size)
        _tar_indexes.clear()  # one archive at a time: readers go key by key
        _tar_indexes[version] = index
    return index


def read_member(path: str, name: str, limit: int | None = None) -> tuple[bytes | None, int]:
    """(a member's bytes, its size), or (None, its size) if over `limit`."""
    try:
        if path.lower().endswith(".zip"):
            return _read_zip(path, name, limit)
        found = _tar_index(path).get(name)
        if found is None:
            raise MissingMember(f"{name}: no such member")
        if found[1]:
            raise ArchiveError(f"{name}: {found[1]}")
        _name, _why, offset, size = found
        if limit is not None and size > limit:
            return None, size
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(size)
        if len(data) != size:
            raise ArchiveError(f"{name}: the archive ends inside this member")
        return data, size
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError, KeyError) as exc:
        raise ArchiveError(f"{name}: cannot read it from the archive: {exc}") from None


_open_zip: dict[tuple[int, str, int, int], tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]] = {}


def _read_zip(path: str, name: str, limit: int | None) -> tuple[bytes | None, int]:
    archive, infos = _zip(path)
    info = infos.get(name)
    if info is None:
        raise MissingMember(f"{name}: no such member")
    if limit is not None and info.file_size > limit:
        return None, info.file_size
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)  # a size that lies is caught below
    if len(data) != info.file_size:
        raise ArchiveError(f"{name}: its size in the archive is not its size")
    return data, len(data)


def _zip(path: str) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """The open archive and its members by clean name, kept open in this process (and
    only this one: a forked child opens its own, its file offset its own)."""
    st = os.stat(path)
    version = (os.getpid(), path, st.st_size, st.st_mtime_ns)
    found = _open_zip.get(version)
    if found is None:
        for archive, _infos in _open_zip.values():
            archive.close()  # in a forked child, its own copy of the descriptor
        _open_zip.clear()  # one archive at a time: readers go key by key
        archive = zipfile.ZipFile(path)
        infos = {}
        for info in archive.infolist():
            name = member_name(info.filename)
            if name is not None and not info.is_dir() and name not in infos:
                infos[name] = info
        found = _open_zip[version] = (archive, infos)
    return found


def locate(root: str, key: str) -> tuple[str, str] | None:
    """(the archive's path, the member's name) for a key inside an archive under `root`;
    None for a key that is a file of its own."""
    lowered = key.lower()
    if ".zip/" not in lowered and ".tar/" not in lowered:
        return None  # the usual key: a file of its own, told without a system call
    parts = key.split("/")
    for at in range(1, len(parts)):
        if is_archive(parts[at - 1]):
            path = os.path.join(root, *parts[:at])
            if os.path.isfile(path):
                return path, "/".join(parts[at:])
    return None


def read_source(root: str, key: str, limit: int | None = None) -> tuple[bytes | None, int]:
    """The bytes of the file a key came from under `root`, in an archive or not: (bytes,
    size), or (None, size) if over `limit`. OSError (NotRegularFileError, ArchiveError)
    says why it cannot be read. A key that is no file may be an image a LabelMe JSON
    beside it holds (labelme.embedded_image): its bytes are those the JSON decodes to."""
    try:
        return _read_file(root, key, limit)
    except (FileNotFoundError, MissingMember):
        found = embedded_image(lambda rel, lim: _read_file(root, rel, lim), key, limit)
        if found is None:
            raise
        return found


def _read_file(root: str, key: str, limit: int | None) -> tuple[bytes | None, int]:
    inside = locate(root, key)
    if inside is not None:
        return read_member(*inside, limit)
    path = os.path.join(root, key)
    if limit is None:
        data = read_regular_file(path)
        return data, len(data)
    return read_regular_file_within(path, limit)
