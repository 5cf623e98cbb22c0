"""What no build made of separate stage commands can skip, measured on the bench's images
(issue 28): the floor under the first-build rows of `make bench`.

- each stage command starts Python and imports its stage (`python pipeline/X.py --help`);
- ingest reads and hashes every image once, over both cores (two threads: `os.read` and
  SHA-256 release the GIL);
- pack reads every image again and writes it into LMDB through its map, then syncs;
- validate hashes every stored byte again, read from the store.

No per-image work beyond that: no header check, no manifest, no records, splits, index
or catalog. Called by bench.py; every figure is best of three.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lmdb

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "pack", "validate", "stats")


@dataclass
class Floor:
    starts: dict[str, float]  # stage -> seconds to start and import it
    hash_two_cores: float
    write_and_sync: float
    rehash: float

    @property
    def ingest_and_pack(self) -> float:
        starts = self.starts["ingest"] + self.starts["pack"]
        return starts + self.hash_two_cores + self.write_and_sync

    @property
    def four_stages(self) -> float:
        rest = self.starts["validate"] + self.starts["stats"] + self.rehash
        return self.ingest_and_pack + rest

    def parts(self) -> str:
        return (
            f"four starts {sum(self.starts.values()):.2f} s, read + hash on two cores "
            f"{self.hash_two_cores:.2f} s, read + LMDB write + sync {self.write_and_sync:.2f} s, "
            f"re-hash {self.rehash:.2f} s"
        )


def _best(fn, times: int = 3) -> float:
    return min(fn() for _ in range(times))


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _start(stage: str, env: dict[str, str]) -> float:
    script = str(PROJECT / "pipeline" / f"{stage}.py")
    start = time.perf_counter()
    subprocess.run([sys.executable, script, "--help"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _hash_two_cores(files: list[str]) -> float:
    def hash_all(part: list[str]) -> None:
        for path in part:
            hashlib.sha256(_read(path)).digest()

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hash_all, (files[0::2], files[1::2])))
    return time.perf_counter() - start


def _write_and_sync(files: list[str], out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    env = lmdb.open(str(out), subdir=False, map_size=1 << 40, lock=False, writemap=True, sync=False)
    for first in range(0, len(files), 1000):
        batch = [(path.encode(), _read(path)) for path in files[first : first + 1000]]
        with env.begin(write=True) as txn:
            txn.cursor().putmulti(batch, append=True)
    env.sync(True)
    env.close()
    return time.perf_counter() - start


def _rehash(store: Path) -> float:
    start = time.perf_counter()
    env = lmdb.open(str(store), subdir=False, readonly=True, lock=False)
    with env.begin(buffers=True) as txn:
        for _key, value in txn.cursor():
            hashlib.sha256(value).digest()
    env.close()
    return time.perf_counter() - start


def measure(images: Path, work: Path, env: dict[str, str]) -> Floor:
    files = sorted(str(p) for p in images.rglob("*") if p.is_file() and p.suffix != ".csv")
    store = work / "floor.lmdb"
    floor = Floor(
        starts={stage: _best(lambda stage=stage: _start(stage, env)) for stage in STAGES},
        hash_two_cores=_best(lambda: _hash_two_cores(files)),
        write_and_sync=_best(lambda: _write_and_sync(files, store)),
        rehash=_best(lambda: _rehash(store)),
    )
    store.unlink()
    return floor
