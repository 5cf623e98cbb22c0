"""How close the store comes to the physical limits (issue 16), beside raw py-lmdb and the
peers this machine has: store size at four image sizes, filters on an indexed field at
20,000 and 1,000,000 records, the first record in a fresh process, and the same build,
filter and size for SQLite and WebDataset on the same images.

Called by bench.py (`make bench`); every row compares two figures of the same run.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imageshelf.read.query import select  # noqa: E402
from imageshelf.store import ImageInfo, ImageStore, Record  # noqa: E402
from imageshelf.store.build import Item  # noqa: E402
from imageshelf.store.writer import rebuild  # noqa: E402

AddRow = Callable[..., None]
LABELS = 100


def _label(i: int) -> str:
    return f"class_{i % LABELS:03d}"


def _items(count: int, size: int, seed: int = 0) -> Callable[[], Iterator[Item]]:
    """`count` records of about `size` bytes each (random bytes: the store never decodes),
    as a source the writer can call twice; memory stays flat at a million."""
    rng = random.Random(seed)
    sizes = [max(1, int(size * (0.5 + rng.random()))) for _ in range(count)]

    def data(i: int) -> bytes:
        return random.Random(i * 7919 + seed).randbytes(sizes[i])

    hashes = [hashlib.sha256(data(i)).hexdigest() for i in range(count)]

    def source() -> Iterator[Item]:  # in key order: label folders, then numbers
        for first in range(min(LABELS, count)):
            for i in range(first, count, LABELS):
                key = f"{_label(i)}/{i:07d}.jpg"
                info = ImageInfo(hashes[i], sizes[i], "jpeg", 64, 64)
                split = "val" if i % 10 == 0 else "train"
                record = Record(key, info, {"label": _label(i)}, split)
                yield Item(record, lambda i=i: data(i), trusted=True)

    return source


def _naive_lmdb(path: Path, pairs: Iterator[tuple[bytes, bytes]]) -> None:
    """What people write by hand: one value per image, a commit per 1000."""
    import lmdb

    env = lmdb.open(str(path), subdir=False, map_size=1 << 40, lock=False, max_dbs=2)
    batch: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == 1000:
            with env.begin(write=True) as txn:
                txn.cursor().putmulti(batch)
            batch = []
    with env.begin(write=True) as txn:
        txn.cursor().putmulti(batch)
    env.close()


def measure_sizes(work: Path, add: AddRow) -> None:
    """The store's size against the image bytes it holds, at 1, 4, 20 and 200 KB."""
    for size, count in ((1_000, 20_000), (4_000, 10_000), (20_000, 2_000), (200_000, 200)):
        source = _items(count, size, seed=size)
        path = work / f"size-{size}.lmdb"
        rebuild(path, source)
        images = sum(item.record.info.size for item in source())
        records = sum(len(item.record.key) + 8 + len(item.record.encode()) for item in source())
        naive = work / f"size-{size}-naive.lmdb"
        _naive_lmdb(naive, ((i.record.key.encode(), i.read()) for i in source()))
        label = f"{size // 1000} KB"
        mb = 1e6
        add(
            "size",
            f"store size, {count} images of about {label}",
            path.stat().st_size / mb,
            "the image bytes it holds",
            images / mb,
            1.03,
            unit="MB",
        )
        add(
            "size",
            f"store size, {count} images of about {label}",
            path.stat().st_size / mb,
            "the image bytes and their records (the catalog: key, hash, size, label, split)",
            (images + records) / mb,
            None,
            unit="MB",
        )
        add(
            "size",
            f"store size, {count} images of about {label}",
            path.stat().st_size / mb,
            "naive LMDB, a value per image and no records (format 1.x's layout of bytes)",
            naive.stat().st_size / mb,
            None,
            unit="MB",
        )
        path.unlink()
        naive.unlink()


def _time(fn: Callable[[], object], times: int = 5) -> float:
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def measure_filters(work: Path, count: int, add: AddRow) -> None:
    """`label=class_042` through the index, against raw LMDB's scan of a database that
    holds only labels (key -> label): the fastest scan there is."""
    import lmdb

    source = _items(count, 48, seed=count)
    path = work / f"filter-{count}.lmdb"
    rebuild(path, source)
    raw = work / f"labels-{count}.lmdb"
    _naive_lmdb(
        raw, ((i.record.key.encode(), i.record.metadata["label"].encode()) for i in source())
    )
    store = ImageStore(path)
    want = _label(42)

    def ours() -> list[str]:
        return [record.key for record in select(store, f"label={want}")]

    env = lmdb.open(str(raw), subdir=False, readonly=True, lock=False)
    wanted = want.encode()

    def scan() -> list[bytes]:
        with env.begin() as txn:
            return [k for k, v in txn.cursor().iternext(keys=True, values=True) if v == wanted]

    assert len(ours()) == len(scan()) == count // LABELS
    add(
        "filter",
        f"filter label={want} over {count:,} records (index)",
        _time(ours) * 1e3,
        "raw LMDB scan of a label-only database",
        _time(scan) * 1e3,
        0.5,
        unit="ms",
    )
    env.close()
    store.close()
    path.unlink()
    raw.unlink()


def _fresh_process(code: str) -> float:
    # As installed Python runs: with compiled modules cached (some CI and container
    # images set PYTHONDONTWRITEBYTECODE, which recompiles every pure-Python import).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT, env=env)
    return time.perf_counter() - start


# What the store's reading side avoids importing (imageshelf/store/__init__.py says why).
AVOIDED = ("typing", "dataclasses")


def measure_first_record(store: Path, naive: Path, key: str, add: AddRow) -> None:
    """A fresh process that opens the store and reads one image, against the same with
    raw py-lmdb on the naive file of the same images, and against the same had the store
    imported the standard modules its reading side avoids (15 of each, interleaved)."""
    ours = f"from imageshelf import ImageStore; ImageStore({str(store)!r}).get({key!r})"
    raw = (
        f"import lmdb; e = lmdb.open({str(naive)!r}, subdir=False, readonly=True, lock=False)\n"
        f"e.begin().get({key.encode()!r})"
    )
    codes = {"ours": ours, "raw": raw, **{name: f"import {name}; {ours}" for name in AVOIDED}}
    for code in codes.values():
        _fresh_process(code)
    times: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(15):
        for name, code in codes.items():
            times[name].append(_fresh_process(code))
    median = {name: statistics.median(found) * 1e3 for name, found in times.items()}
    add(
        "opening",
        "first image in a fresh process (python -c: import, open, get)",
        median["ours"],
        "raw py-lmdb, the same",
        median["raw"],
        1 / 1.5,  # issue 39: plain code on the reading side, within 1.5x raw py-lmdb
        unit="ms",
    )
    for name in AVOIDED:
        add(
            "opening",
            "first image in a fresh process",
            median["ours"],
            f"the same, had the store imported {name}",
            median[name],
            None,
            unit="ms",
        )


# ------------------------------------------------------------------ peers


def _files(images: Path) -> list[tuple[str, Path, str]]:
    out = []
    for path in sorted(images.rglob("*")):
        if path.is_file() and path.suffix != ".csv":
            rel = str(path.relative_to(images))
            out.append((rel, path, rel.split("/")[0]))
    return out


def measure_peers(work: Path, images: Path, store: Path, build: float, add: AddRow) -> None:
    """SQLite and WebDataset on the same images: build, size, filter. (Lance, Hugging
    Face datasets, litdata and MDS run in environments of their own: peers.py.)"""
    files = _files(images)
    image_bytes = sum(path.stat().st_size for _rel, path, _label in files)

    db_path = work / "peer.sqlite"

    def sqlite_build() -> float:
        db_path.unlink(missing_ok=True)
        start = time.perf_counter()
        db = sqlite3.connect(db_path)
        db.execute("CREATE TABLE images (key TEXT PRIMARY KEY, label TEXT, data BLOB)")
        db.executemany(
            "INSERT INTO images VALUES (?, ?, ?)",
            ((rel, label, path.read_bytes()) for rel, path, label in files),
        )
        db.execute("CREATE INDEX by_label ON images (label)")
        db.commit()
        db.close()
        return time.perf_counter() - start

    tar_path = work / "peer-wds.tar"

    def wds_build() -> float:
        tar_path.unlink(missing_ok=True)
        start = time.perf_counter()
        with tarfile.open(tar_path, "w") as tar:
            for rel, path, label in files:
                stem = rel.rsplit(".", 1)[0]
                for name, data in (
                    (f"{stem}.{rel.rsplit('.', 1)[1]}", path.read_bytes()),
                    (f"{stem}.cls", label.encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return time.perf_counter() - start

    sqlite_time = statistics.median(sqlite_build() for _ in range(3))
    wds_time = statistics.median(wds_build() for _ in range(3))
    add(
        "peers",
        "ingest + pack (check, hash, index)",
        build,
        "SQLite: a table and a label index",
        sqlite_time,
        None,
    )
    add("peers", "ingest + pack", build, "WebDataset tar (tarfile, no hashing)", wds_time, None)
    size = sum(p.stat().st_size for p in ([store] if store.is_file() else store.iterdir()))
    add("peers", "store size", size / 1e6, "the image bytes", image_bytes / 1e6, None, unit="MB")
    add("peers", "store size", size / 1e6, "SQLite", db_path.stat().st_size / 1e6, None, unit="MB")
    add(
        "peers",
        "store size",
        size / 1e6,
        "WebDataset tar",
        tar_path.stat().st_size / 1e6,
        None,
        unit="MB",
    )

    ours_store = ImageStore(store)
    prefix = "batch/" if ours_store.keys()[0].startswith("batch/") else ""
    want = f"{prefix}class_042"
    label_value = "class_042"

    def ours() -> int:
        return sum(1 for _ in select(ours_store, f"label={label_value}"))

    db = sqlite3.connect(db_path)

    def sqlite_filter() -> int:
        return len(db.execute("SELECT key FROM images WHERE label = ?", (label_value,)).fetchall())

    def wds_filter() -> int:
        found = 0
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.name.endswith(".cls"):
                    handle = tar.extractfile(member)
                    found += handle is not None and handle.read() == label_value.encode()
        return found

    assert ours() == sqlite_filter() == wds_filter(), (ours(), sqlite_filter(), want)
    ours_ms = _time(ours) * 1e3
    add(
        "peers",
        f"filter label={label_value}",
        ours_ms,
        "SQLite, indexed",
        _time(sqlite_filter) * 1e3,
        None,
        unit="ms",
    )
    add(
        "peers",
        f"filter label={label_value}",
        ours_ms,
        "WebDataset: read the tar",
        _time(wds_filter, 3) * 1e3,
        None,
        unit="ms",
    )
    db.close()
    db_path.unlink()
    tar_path.unlink()
