"""SIGKILL `dvc repro` while pack writes: the store survives, every time.

Named in docs/GUARANTEES.md. Slow (about two minutes), and part of `make test`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageshelf.stages.validate import validate_store
from imageshelf.store import ImageStore

from conftest import env, make_image, md5, packed, put, sh

KILLS = 6  # random points inside the write; with LATE_KILLS, about 8 s each
# With DVC's default cache type (reflink,copy) a kill while DVC commits the output can
# leave no store at all: DVC deletes the workspace file and copies it back from the cache.
# The committed cache.type = copy avoids that; these kills check it.
LATE_KILLS = 2


def _images(first: int, count: int) -> dict[str, bytes]:
    return {
        f"batch/{i // 100:03d}/{i:05d}.png": make_image("PNG", (64, 64), seed=i)
        for i in range(first, first + count)
    }


def _temps(repo: Path) -> list[Path]:
    return list((repo / "data").glob(".images.lmdb.tmp-*"))


def _wait_for_pack(repo: Path, proc: subprocess.Popen) -> float:
    """Block until pack's temp file appears; return when it did."""
    while not _temps(repo):
        if proc.poll() is not None:
            raise AssertionError("dvc repro ended before pack started writing")
        time.sleep(0.001)
    return time.monotonic()


def _grow_to(repo: Path, proc: subprocess.Popen, size: float) -> None:
    """Block until pack's temp file holds `size` bytes (or pack published, or ended):
    a point inside the write however fast the machine is at the moment (a fixed delay
    missed the write when other tests ran beside this one)."""
    while proc.poll() is None:
        temps = _temps(repo)
        if not temps:
            return
        try:
            if temps[0].stat().st_size >= size:
                return
        except FileNotFoundError:
            return
        time.sleep(0.0005)


def _repro(repo: Path) -> subprocess.Popen:
    # A session of its own, so the kill takes dvc and the stage it runs, as a killed
    # job or a lost machine would.
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=repo,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _restore(repo: Path, store_bytes: bytes, lock_text: str) -> None:
    store = repo / "data" / "images.lmdb"
    store.unlink()
    store.write_bytes(store_bytes)
    (repo / "dvc.lock").write_text(lock_text)


# DVC writes these files of its own in place, so a kill can tear them; the store is not
# affected. Each remedy is what docs/GUARANTEES.md tells a user to do.
DVC_TORN_FILES = {
    "dvc.lock' validation failed": ["git", "checkout", "dvc.lock"],
    "Unable to read RWLock-file": ["rm", "-f", ".dvc/tmp/rwlock"],  # treeverse/dvc#7615
}


def _recover(repo: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`dvc repro` after a kill, mending DVC's own torn files as a user would."""
    remedies: list[str] = []
    for _attempt in range(len(DVC_TORN_FILES) + 1):
        result = sh(repo, "dvc", "repro", check=False)
        symptom = next((s for s in DVC_TORN_FILES if s in result.stderr), None)
        if not result.returncode or symptom is None:
            return result, remedies
        remedies.append(" ".join(DVC_TORN_FILES[symptom]))
        sh(repo, *DVC_TORN_FILES[symptom])
    return result, remedies


@pytest.mark.slow
def test_killing_dvc_repro_during_pack_never_loses_the_store(repo):
    store = repo / "data" / "images.lmdb"
    packed(repo, _images(0, 300), "first version")
    previous = (store.read_bytes(), (repo / "dvc.lock").read_text())
    previous_md5 = md5(store)

    # An uninterrupted run: the md5 every recovery must reach, and how long pack writes.
    put(repo / "data" / "incoming", _images(300, 1500))
    proc = _repro(repo)
    _wait_for_pack(repo, proc)
    assert proc.wait() == 0
    complete_md5 = md5(store)
    complete_size = store.stat().st_size
    assert complete_md5 != previous_md5

    rng = random.Random(20261123)
    mid_write = 0
    torn: list[str] = []
    for trial in range(KILLS + LATE_KILLS):
        _restore(repo, *previous)
        proc = _repro(repo)
        _wait_for_pack(repo, proc)
        if trial < KILLS:
            _grow_to(repo, proc, rng.uniform(0.05, 0.9) * complete_size)  # inside the write
        else:  # after pack published: DVC is hashing the store and committing it to cache
            while _temps(repo):
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.4))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

        assert store.exists(), f"trial {trial}: the store file is gone"
        published = md5(store)
        assert published in (previous_md5, complete_md5), f"trial {trial}: a third version"
        with ImageStore(store) as survivor:
            assert not validate_store(survivor).failures, f"trial {trial}"
            assert len(survivor) == (300 if published == previous_md5 else 1800)
        if published == previous_md5 and _temps(repo):
            mid_write += 1

        recovery, remedies = _recover(repo)
        torn.extend(remedies)
        assert recovery.returncode == 0, recovery.stderr
        assert md5(store) == complete_md5, f"trial {trial}: recovery differs"
        assert _temps(repo) == [], f"trial {trial}: temp files left behind"

    assert mid_write >= KILLS // 2, f"only {mid_write} of {KILLS} kills landed mid-write"
    print(f"{mid_write} kills mid-write; DVC files torn and mended: {torn or 'none'}")


SHARDED_KILLS = 3


@pytest.mark.slow
def test_killing_a_sharded_pack_leaves_a_whole_version(repo, tmp_path):
    """The sharded layout publishes by renaming its index: a kill at any moment leaves
    the old index with all of its shards, or the new one with all of its."""
    import shutil

    from conftest import sharded_params

    sharded_params(repo)
    folder = repo / "data" / "images"
    packed(repo, _images(0, 300), "first version, sharded")
    saved = tmp_path / "saved"
    shutil.copytree(folder, saved)
    lock_text = (repo / "dvc.lock").read_text()
    previous = ImageStore(folder).header.content_digest

    def temps() -> list[Path]:
        return list(folder.glob(".*.tmp-*"))

    def restore() -> None:
        shutil.rmtree(folder)
        shutil.copytree(saved, folder)
        (repo / "dvc.lock").write_text(lock_text)

    put(repo / "data" / "incoming", _images(300, 1500))
    proc = _repro(repo)
    while not temps():
        assert proc.poll() is None, "dvc repro ended before pack started writing"
        time.sleep(0.001)
    started = time.monotonic()
    while temps():
        time.sleep(0.001)
    window = time.monotonic() - started
    assert proc.wait() == 0
    complete = ImageStore(folder).header.content_digest

    rng = random.Random(11)
    for trial in range(SHARDED_KILLS):
        restore()
        proc = _repro(repo)
        while not temps() and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 1.2 * window))  # some land after the index is renamed
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with ImageStore(folder) as survivor:
            digest = survivor.header.content_digest
            assert digest in (previous, complete), f"trial {trial}: a third version"
            # A shard written but never published may be left over: reported, and removed
            # by the next pack. The version itself is whole.
            failures = [
                f
                for f in validate_store(survivor).failures
                if "not in the index" not in f["problem"]
            ]
            assert not failures, f"trial {trial}: {failures}"
            assert len(survivor) == (300 if digest == previous else 1800)
        recovery, _remedies = _recover(repo)
        assert recovery.returncode == 0, recovery.stderr
        assert ImageStore(folder).header.content_digest == complete
        assert temps() == [], f"trial {trial}: temp files left behind"
