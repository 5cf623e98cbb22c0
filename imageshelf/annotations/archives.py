"""Images (and their annotation files) inside `.zip` and `.tar` archives, as Hugging Face's
imagefolder reads a `.zip` of images: each member is a file of the place under the
archive's path (`batch.zip/cats/1.jpg`), its bytes exactly the member's.

Only archives a member can be read from without reading the rest: `.zip` (each member on
its own, deflated or stored) and uncompressed `.tar`. A compressed tar (`.tar.gz`,
`.tgz`, ...) would be read whole for every image: it is rejected, with the reason, as
are members that are not plain files (links, devices), names that would leave the
archive (`../x`, `/x`), encrypted members, and a member over the size limit.

A tar member's bytes are those `tar x` (GNU tar) writes. A sparse member (`tar --sparse`:
GNU's old format, PAX formats 0.0, 0.1 and 1.0) stores only its data regions; it is read
with its holes as zeros, where its map is one GNU tar and Python's tarfile read alike, and
rejected with the reason otherwise (a member stored as its raw regions would be bytes no
tool extracts). A member whose size is negative, or whose data runs past the end of the
file, ends the listing there, as it ends `tar x`: Python's tarfile would loop for ever on
the first and fail on the next header after the second.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..base.userfile import read_regular_file, read_regular_file_within
from .embedded import embedded_image

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
    for entry in _tar_index(path).values():
        if entry.why:
            problems.append((entry.name, entry.why))
        else:
            members.append(Member(entry.name, entry.size))
    return members, problems


Regions = tuple[tuple[int, int], ...]  # a sparse member's data: (offset, length), in order


@dataclass(frozen=True)
class _TarEntry:
    name: str
    why: str = ""  # why it cannot be used, or ""
    offset: int = 0  # where its data starts in the archive
    size: int = 0  # its size once extracted
    regions: Regions | None = None  # a sparse member's, its data stored back to back


_tar_indexes: dict[tuple[str, int, int], dict[str, _TarEntry]] = {}


def _tar_index(path: str) -> dict[str, _TarEntry]:
    """Each member by name, kept per file version in this process: reading a member is
    then one seek."""
    st = os.stat(path)
    version = (path, st.st_size, st.st_mtime_ns)
    index = _tar_indexes.get(version)
    if index is None:
        index = {}
        with tarfile.open(path, mode="r:") as archive:
            for info in archive:
                # archive.offset: where the next header starts, past this member's data
                entry, last = _tar_entry(path, info, archive.offset, st.st_size)
                if entry is not None:
                    index[entry.name] = (
                        _TarEntry(entry.name, "a second member of the same name")
                        if entry.name in index and not entry.why
                        else entry
                    )
                if last:
                    break
        _tar_indexes.clear()  # one archive at a time: readers go key by key
        _tar_indexes[version] = index
    return index


def _tar_entry(
    path: str, info: tarfile.TarInfo, after: int, end: int
) -> tuple[_TarEntry | None, bool]:
    """A member's entry (None for a folder), and whether the archive must not be read
    past it. `after`: where the next header starts; `end`: the file's size."""
    name = member_name(info.name)
    shown = info.name if name is None else name
    if info.size < 0 or after <= info.offset:  # tarfile would read this header for ever
        why = f"a member claiming {info.size:,} bytes; the archive is not read past it"
        return _TarEntry(shown, why), True
    # tarfile skips the data of a regular member and of a type it does not know
    if (info.isreg() or info.type not in tarfile.SUPPORTED_TYPES) and after > end:
        why = f"the archive ends inside this member (it claims {info.size:,} bytes)"
        return _TarEntry(shown, why), True
    if info.isdir():
        return None, False
    if name is None:
        return _TarEntry(shown, "a member path that leaves the archive"), False
    if not info.isreg():
        return _TarEntry(name, "not a regular file in the archive (a link?)"), False
    if info.sparse is None:
        if any(key.startswith("GNU.sparse.") for key in info.pax_headers):
            return _TarEntry(
                name, "a sparse member in a format Python's tarfile does not read"
            ), False
        return _TarEntry(name, "", info.offset_data, info.size), False
    entries = _gnu_map(path, info) if info.type == tarfile.GNUTYPE_SPARSE else _pax_map(info)
    regions, why = _sparse_regions(entries, info.size, after - info.offset_data)
    if why:
        return _TarEntry(name, f"a sparse member whose map {why}"), False
    return _TarEntry(name, "", info.offset_data, info.size, regions), False


Map = list[tuple[int, int]] | str  # a sparse member's (offset, length) entries, or why not


def _pax_map(info: tarfile.TarInfo) -> Map:
    """The map of a PAX sparse member (formats 0.0, 0.1, 1.0), as tarfile read it."""
    pairs: Any = info.sparse or ()  # (offset, length) pairs, whatever typeshed says
    entries = [(int(at), int(length)) for at, length in pairs]
    declared = info.pax_headers.get("GNU.sparse.numblocks")
    if declared is not None and declared.strip() != str(len(entries)):
        return f"counts {len(entries)} regions where its header says {declared[:20]!r}"
    return entries


def _gnu_map(path: str, info: tarfile.TarInfo) -> Map:
    """The map of a GNU old-format sparse member as GNU tar reads it: the header's four
    slots, then 21 in each extension block, up to the first empty one. (tarfile keeps
    the header's empty slots and drops those of the extension blocks, and with them
    the entry that marks the end.)"""
    entries: list[tuple[int, int]] = []
    try:
        with open(path, "rb") as fh:
            fh.seek(info.offset)
            block = fh.read(512)
            while block[156:157] in (b"L", b"K"):  # a long name or link before the header
                fh.seek(-(-_header_number(block[124:136]) // 512) * 512, os.SEEK_CUR)
                block = fh.read(512)
            ended, more = _slots(block[386:482], entries), block[482]
            while more:
                block = fh.read(512)
                ended = ended or _slots(block[:504], entries)
                more = block[504]
            if fh.tell() != info.offset_data:
                return "lies where tarfile did not find it"
    except (IndexError, ValueError, OverflowError):  # a block cut short, a slot not a number
        return "is damaged"
    return entries


def _slots(raw: bytes, entries: list[tuple[int, int]]) -> bool:
    """Add the (offset, length) slots of `raw` to `entries`; whether an empty slot
    (which ends the map) was met."""
    for at in range(0, len(raw), 24):
        if raw[at + 12] == 0:
            return True
        entries.append((_header_number(raw[at : at + 12]), _header_number(raw[at + 12 : at + 24])))
    return False


def _header_number(field: bytes) -> int:
    """A number in a tar header: octal digits, or GNU's base-256 (a first byte of 0x80,
    or 0xff for a negative one), as tarfile reads it; ValueError for anything else."""
    if field[:1] in (b"\x80", b"\xff"):
        number = int.from_bytes(field[1:], "big")
        return number - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else number
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _sparse_regions(entries: Map, size: int, extent: int) -> tuple[Regions, str]:
    """A sparse member's data regions, or why its map is not read: a map where GNU tar
    and Python's tarfile would give other bytes. GNU tar reads each region from whole
    512-byte blocks, tarfile reads them back to back: so every region but the last must
    fill whole blocks; regions come in order, apart, within the size, and reach it (an
    empty one at the size marks the end)."""
    if isinstance(entries, str):
        return (), entries
    regions: list[tuple[int, int]] = []
    at = 0
    for number, (offset, length) in enumerate(entries):
        if length == 0 and (number != len(entries) - 1 or offset != size):
            return (), "has an empty region other than the one that marks its end"
        if offset < at or length < 0 or offset + length > size:
            return (), "has regions out of order, overlapping or past its size"
        if length and regions and regions[-1][1] % 512:
            return (), "has a region that does not fill whole 512-byte blocks before another"
        if length:
            regions.append((offset, length))
        at = offset + length
    if at != size:
        return (), f"ends at byte {at:,} of {size:,}"
    if sum(length for _, length in regions) > extent:
        return (), "names more data than the archive holds for it"
    return tuple(regions), ""


def read_member(path: str, name: str, limit: int | None = None) -> tuple[bytes | None, int]:
    """(a member's bytes, its size), or (None, its size) if over `limit`."""
    try:
        if path.lower().endswith(".zip"):
            return _read_zip(path, name, limit)
        entry = _tar_index(path).get(name)
        if entry is None:
            raise MissingMember(f"{name}: no such member")
        if entry.why:
            raise ArchiveError(f"{name}: {entry.why}")
        if limit is not None and entry.size > limit:
            return None, entry.size
        return _read_tar_member(path, entry), entry.size
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError, KeyError) as exc:
        raise ArchiveError(f"{name}: cannot read it from the archive: {exc}") from None


def _read_tar_member(path: str, entry: _TarEntry) -> bytes:
    """A member's bytes as `tar x` writes them: a sparse one's holes as zeros."""
    with open(path, "rb") as fh:
        fh.seek(entry.offset)
        if entry.regions is None:
            return _read_exactly(fh, entry.size, entry.name)
        data = bytearray(entry.size)
        for at, length in entry.regions:  # stored back to back, in order
            data[at : at + length] = _read_exactly(fh, length, entry.name)
        return bytes(data)


def _read_exactly(fh: BinaryIO, size: int, name: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise ArchiveError(f"{name}: the archive ends inside this member")
    return data


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
    beside it holds (embedded.embedded_image): its bytes are those the JSON decodes to."""
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
