"""WebDataset tar shards, for training that streams instead of seeking.

Each image becomes two members with one basename: `BASENAME.EXT` (the original bytes,
untouched) and `BASENAME.json` (its metadata plus key and split). WebDataset groups
members by the part of the name before the first dot of the file name, so a key's dots
become underscores there; the exact key is always in the .json. Shards hold up to
`max_count` images or `max_bytes` bytes and are written whole. The same records give the
same shard bytes: sorted order, fixed times, owners and modes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..base.atomic import atomic_write
from ..store import ImageStore, Record
from .targets import ExportError, OnItem
from .text import json_bytes

EXTENSIONS = {
    "jpeg": "jpg",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp",
    "tiff": "tiff",
}


def sample_name(key: str, taken: set[str]) -> str:
    """The WebDataset basename for a key: its path without extension, no dots in the
    file name; a short hash of the key is appended if two keys would collide."""
    folder, _, name = key.rpartition("/")
    base = (name.rsplit(".", 1)[0] if "." in name else name).replace(".", "_") or "_"
    candidate = f"{folder}/{base}" if folder else base
    salt = 0
    while candidate in taken:  # another key's name (or another key's hashed name)
        digest = hashlib.sha256(f"{key}\0{salt}".encode("utf-8", "surrogatepass"))
        candidate = f"{folder}/{base}" if folder else base
        candidate += "_" + digest.hexdigest()[:12]
        salt += 1
    taken.add(candidate)
    return candidate


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_shards(
    store: ImageStore,
    records: Iterable[Record],
    out_dir: Path,
    *,
    max_count: int = 10_000,
    max_bytes: int = 1 << 30,
    prefix: str = "shard",
    on_item: OnItem | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write `records` (in order) into numbered shards in `out_dir`; return their paths.

    A folder that already holds `PREFIX-*.tar` files is refused unless `overwrite`;
    even then, only the shards this export writes are replaced, never deleted:
    `stale_shards` lists the others left beside them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob(f"{prefix}-*.tar"))
    if existing and not overwrite:
        raise ExportError(
            f"{out_dir} already holds {len(existing)} {prefix}-*.tar file(s) "
            f"({existing[0].name}, ...); --overwrite replaces those this export writes"
        )
    taken: set[str] = set()
    samples = (
        (record, sample_name(record.key, taken), _metadata_json(record)) for record in records
    )
    shards: list[Path] = []
    for group in _groups(samples, max_count, max_bytes):
        final = out_dir / f"{prefix}-{len(shards):06d}.tar"
        with (
            atomic_write(final) as out,
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for record, name, meta in group:
                data = store.get(record.key)
                ext = EXTENSIONS.get(record.info.format, record.info.format)
                tar.addfile(_member(f"{name}.{ext}", len(data)), io.BytesIO(data))
                tar.addfile(_member(f"{name}.json", len(meta)), io.BytesIO(meta))
                if on_item is not None:
                    on_item(record)
        shards.append(final)
    return shards


def stale_shards(out_dir: Path, written: Sequence[Path], prefix: str = "shard") -> list[Path]:
    """`PREFIX-*.tar` files in `out_dir` that this export did not write."""
    mine = set(written)
    return sorted(p for p in out_dir.glob(f"{prefix}-*.tar") if p not in mine)


def _metadata_json(record: Record) -> bytes:
    meta = {**record.metadata, "key": record.key, "split": record.effective_split}
    return json_bytes(meta)


def _groups(
    samples: Iterable[tuple[Record, str, bytes]], max_count: int, max_bytes: int
) -> Iterator[list[tuple[Record, str, bytes]]]:
    """Consecutive samples cut into shards by count and size (known from the records)."""
    group: list[tuple[Record, str, bytes]] = []
    size = 0
    for sample in samples:
        nbytes = sample[0].info.size + len(sample[2])
        if group and (len(group) >= max_count or size + nbytes > max_bytes):
            yield group
            group, size = [], 0
        group.append(sample)
        size += nbytes
    if group:
        yield group
