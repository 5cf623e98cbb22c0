"""A version read from the DVC remote without a checkout: ranks as separate processes,
each with its own bounded cache, reading their shares; a tampered shard refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageshelf.store import StoreError

from conftest import PROJECT, big_images, command_line, commit, make_repo, put, sh, sharded_params

RANK = """
import hashlib, json, sys
from imageshelf.read.dataset import ImageDataset, shards_for_rank
from imageshelf.read.remote import open_store

repo, rank, cache, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
store = open_store(repo, rev="HEAD", cache=cache, cache_limit=limit)
mine = shards_for_rank(store, rank, 2)
dataset = ImageDataset(store, shards=mine)  # selected from the catalog: nothing fetched yet
before = store.source.fetched
read = {}
for i in range(len(dataset)):
    data, meta = dataset[i]
    read[meta["key"]] = hashlib.sha256(data).hexdigest()
md5s = [store.source.fs.info(f"data/images/{name}")["md5"] for name in mine]
print(json.dumps({"read": read, "fetched": store.source.fetched, "before": before,
                  "md5s": md5s, "shards": len(store.parts)}))
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A sharded store of about 10 MB in 10 shards, pushed; a clone with no DVC data.
    Built once for this file's tests; the one that damages the remote copies it first."""
    tmp_path = tmp_path_factory.mktemp("published")
    repo = make_repo(tmp_path)
    sharded_params(repo, shard_mb=1)
    images = big_images(0, 520)
    labels = "".join(f"{key},{['cat', 'dog'][i % 2]}\n" for i, key in enumerate(sorted(images)))
    put(repo / "data" / "incoming", {**images, "labels.csv": "path,label\n" + labels})
    sh(repo, "dvc", "repro")
    commit(repo, "ten shards")
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    return clone, images


def test_two_ranks_read_their_shares_from_the_remote_with_bounded_caches(published, tmp_path):
    clone, images = published
    limit = 3_000_000  # three of the ten 1 MB shards
    results = []
    for rank in range(2):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                RANK,
                str(clone),
                str(rank),
                str(tmp_path / f"c{rank}"),
                str(limit),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        results.append(json.loads(out.stdout.splitlines()[-1]))
        held = [p.stat().st_size for p in (tmp_path / f"c{rank}" / "objects").rglob("*.lmdb")]
        assert sum(held) <= limit  # least recently used shards made room for the next
    assert results[0]["shards"] >= 8
    read = {**results[0]["read"], **results[1]["read"]}
    assert not results[0]["read"].keys() & results[1]["read"].keys()
    assert read == {k: hashlib.sha256(v).hexdigest() for k, v in images.items()}  # identical
    remote = clone.parent / "remote" / "files" / "md5"
    for result in results:
        assert result["before"] == 0  # selecting read the catalog, fetched no shard
        shard_bytes = sum((remote / m[:2] / m[2:]).stat().st_size for m in result["md5s"])
        assert shard_bytes <= result["fetched"] <= 1.1 * shard_bytes  # its shards, once


def test_the_sampler_fetches_the_next_shards_while_the_current_one_is_read(published, tmp_path):
    from imageshelf.read.dataset import ImageDataset, ShardSampler
    from imageshelf.read.remote import open_store

    clone, images = published
    store = open_store(clone, rev="HEAD", cache=tmp_path / "cache")
    dataset = ImageDataset(store)
    sampler = ShardSampler(dataset, num_replicas=1, rank=0, seed=5)
    read: list[str] = []
    for index in sampler:
        data, meta = dataset[index]
        assert data == images[meta["key"]]
        read.append(dataset.shard_of(index))
        time.sleep(0.004)  # the training step
    assert len(set(read)) >= 8
    # only the first shard may be waited for (the fetcher, started with it, may win)
    assert store.waited in ([], [read[0]])
    assert store.source.fetched > 0


def test_a_hugging_face_dataset_of_a_version_on_the_remote_reads_every_image(
    published, tmp_path, monkeypatch
):
    from imageshelf.read.hf import iterable_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default cache

    clone, images = published
    dataset = iterable_dataset(repo=clone, rev="HEAD", cache_limit=3_000_000)
    assert dataset.n_shards >= 8
    assert {row["key"]: row["image"] for row in dataset} == images


def test_ls_and_export_read_a_version_from_the_remote_fetching_only_what_they_need(
    published, tmp_path
):
    clone, images = published
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    nowhere = tmp_path / "elsewhere"  # no project here: nothing checked out
    nowhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            command_line(*args), cwd=nowhere, env=env, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    listed = run("ls", "--repo", str(clone), "--rev", "HEAD")
    assert sorted(line.split("\t")[-1] for line in listed.stdout.splitlines()) == sorted(images)
    objects = tmp_path / "xdg" / "imageshelf" / "shards" / "objects"
    assert not list(objects.rglob("*.lmdb"))  # listing read the catalog only
    wanted = sorted(images)[:2]
    run("export", "--repo", str(clone), "--out", "out", *wanted)
    assert all((nowhere / "out" / key).read_bytes() == images[key] for key in wanted)
    assert 1 <= len(list(objects.rglob("*.lmdb"))) <= 2  # the shards holding them


def damageable(published, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the published clone whose DVC remote is a copy too, to damage."""
    clone, _images = published
    ours = tmp_path / "clone"
    shutil.copytree(clone, ours, symlinks=True)
    remote = tmp_path / "remote"
    shutil.copytree(clone.parent / "remote", remote)
    sh(ours, "dvc", "remote", "modify", "local", "url", str(remote))
    sh(ours, "git", "commit", "-qam", "our remote")
    return ours, remote


def test_a_shard_tampered_with_on_the_remote_is_refused_in_one_line(published, tmp_path):
    from imageshelf.read.remote import open_store

    ours, remote = damageable(published, tmp_path)
    store = open_store(ours, rev="HEAD", cache=tmp_path / "cache")
    # a shard's object there (the largest): one byte flipped
    objects = [p for p in remote.rglob("*") if p.is_file() and p.stat().st_size > 100_000]
    target = max(objects, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.chmod(0o644)
    target.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="does not match the md5") as caught:
        for part in store.parts:
            store.part(part.name)
    assert "\n" not in str(caught.value)


def test_a_damaged_catalog_on_the_remote_is_said_in_one_line(published, tmp_path):
    from imageshelf.errors import ShelfError
    from imageshelf.read.dataset import ImageDataset
    from imageshelf.read.remote import open_store

    ours, remote = damageable(published, tmp_path)
    # Every version's catalog parts on the remote (which one HEAD's is, the remote's
    # listing order does not say): each damaged alike.
    catalogs = [p for p in remote.rglob("*") if p.is_file() and b'"sha256"' in p.read_bytes()]
    originals = {target: target.read_bytes().splitlines() for target in catalogs}
    # checked against the md5 its revision records before a line is read: one line
    # naming the part (a catalog whose md5 matches but is not records: test_remote_hostile)
    broken = [b"not json", json.dumps({"key": "x.png", "meta": {}}).encode()]
    for at, line in enumerate(broken):
        for target, lines in originals.items():
            target.chmod(0o644)
            target.write_bytes(b"\n".join([lines[0], line, *lines[1:]]) + b"\n")
        store = open_store(ours, rev="HEAD", cache=tmp_path / f"cache{at}")
        with pytest.raises(ShelfError, match=r"data/catalog/shard-\w+\.jsonl: .* md5") as caught:
            ImageDataset(store)
        assert "\n" not in str(caught.value)


def test_the_readmes_many_machines_recipe_runs_as_written(published, tmp_path):
    """In a clone with nothing but git: the streaming recipe's first batch, then Ray."""
    clone, _images = published
    section = (PROJECT / "README.md").read_text().split("## Many machines", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "example.py").write_text(example)
    result = subprocess.run(
        [sys.executable, str(tmp_path / "example.py")],
        cwd=clone,
        text=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(PROJECT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, count = result.stdout.strip().splitlines()[-2:]
    assert first.startswith("16 set0/") and count == "260"  # a batch; the cats, on Ray
