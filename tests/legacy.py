"""Stores as format 1.x wrote them (docs/FORMAT.md): a database `images` of key -> bytes
beside `meta` and `records`, no locations, chunks or index. Built here, from the spec,
rather than kept as binary files in git: .lmdb files belong to DVC."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lmdb

from imageshelf.records.splits import with_split
from imageshelf.store.format import digest_entry
from imageshelf.store.index import Part, ShardIndex, shard_name

from conftest import items_for, make_image

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def images_1x() -> dict[str, bytes]:
    images = {f"cats/{i:03d}.png": make_image("PNG", (20 + i, 16), seed=i) for i in range(4)}
    images |= {f"dogs/{i:03d}.jpg": make_image("JPEG", (24, 18 + i), seed=10 + i) for i in range(4)}
    return images


def expected_1x() -> dict[str, dict[str, str | None]]:
    """key -> sha256, label and split of every image of the 1.x stores below."""
    return {
        item.record.key: {
            "sha256": item.record.info.sha256,
            "label": item.record.metadata["label"],
            "split": item.record.split,
        }
        for item in _items()
    }


def _items():
    images = images_1x()
    items = items_for(images, {k: {"label": k.split("/")[0][:-1]} for k in images})
    return [type(i)(with_split(i.record, RATIOS), i.read) for i in items]


def write_1x_file(path: Path, items) -> Part:
    """One 1.2 store file of `items` (sorted by key)."""
    digest = hashlib.sha256()
    env = lmdb.open(str(path), subdir=False, max_dbs=3, lock=False, map_size=1 << 26)
    with env.begin(write=True) as txn:
        meta, records, images = (
            env.open_db(name, txn) for name in (b"meta", b"records", b"images")
        )
        for item in items:
            raw_key, value = item.record.key.encode(), item.record.encode()
            txn.put(raw_key, value, db=records)
            txn.put(raw_key, item.read(), db=images)
            digest.update(digest_entry(raw_key, value))
        header = {
            "content_digest": digest.hexdigest(),
            "count": len(items),
            "format": "lmdb-image-store",
            "hash": "sha256",
            "total_bytes": sum(i.record.info.size for i in items),
            "version": "1.2",
        }
        txn.put(
            b"header", json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), db=meta
        )
    env.close()
    return Part(
        path.name,
        len(items),
        header["total_bytes"],
        header["content_digest"],
        items[0].record.key,
        items[-1].record.key,
    )


def write_1x_store(path: Path) -> Path:
    """The images above as a 1.2 store: a single file (`*.lmdb`) or a folder of two shards."""
    items = sorted(_items(), key=lambda item: item.record.key.encode())
    if path.suffix == ".lmdb":
        write_1x_file(path, items)
        return path
    path.mkdir(parents=True)
    parts = []
    for half in (items[:4], items[4:]):
        part = write_1x_file(path / "new.lmdb", half)
        name = shard_name(part.content_digest)
        (path / "new.lmdb").rename(path / name)
        parts.append(
            Part(
                name,
                part.count,
                part.total_bytes,
                part.content_digest,
                part.first_key,
                part.last_key,
            )
        )
    (path / "index.json").write_bytes(ShardIndex.of(parts).encode())
    return path
