"""The sharded layout: a folder of immutable shards that grows by adding files."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageshelf.read.dataset import ImageDataset, ShardSampler, collate, shards_for_rank
from imageshelf.read.query import QueryError
from imageshelf.stages.validate import validate_store
from imageshelf.store import ImageStore, StoreError
from imageshelf.store.writer import Item, rebuild, write_sharded

from conftest import (
    big_images,
    command_line,
    commit,
    items_for,
    make_image,
    md5,
    publish,
    put,
    sh,
    sharded_params,
    up_to_date,
)


def images(first: int, count: int, folder: str = "a") -> dict[str, bytes]:
    return {
        f"{folder}/{i:04d}.png": make_image("PNG", (24, 24), seed=i)
        for i in range(first, first + count)
    }


def files_of(folder: Path) -> dict[str, str]:
    return {p.name: md5(p) for p in sorted(folder.glob("shard-*.lmdb"))}


# ------------------------------------------------------------------ the store itself


def test_a_sharded_store_reads_like_a_single_file(tmp_path):
    content = {**images(0, 40), **images(100, 10, "b")}
    meta = {k: {"label": k[0]} for k in content}
    single = tmp_path / "one.lmdb"
    rebuild(single, items_for(content, meta))
    folder = tmp_path / "shards"
    write_sharded(folder, items_for(content, meta), shard_bytes=20_000)

    a, b = ImageStore(single), ImageStore(folder)
    assert (a.layout, b.layout) == ("single", "sharded")
    assert len(a.parts) == 1 and len(b.parts) > 3
    assert len(b) == len(a) == 50
    assert b.keys() == a.keys() == sorted(content)
    assert list(b.records()) == list(a.records())  # key order across shards
    assert all(b.get(k) == content[k] for k in content)  # byte-identical
    assert b.get_many(["b/0100.png", "a/0003.png"]) == [
        content["b/0100.png"],
        content["a/0003.png"],
    ]
    assert "a/0001.png" in b and "zzz" not in b and 7 not in b
    with pytest.raises(KeyError):
        b.get("a/9999.png")
    again = pickle.loads(pickle.dumps(b))
    assert again.layout == "sharded" and again.get("a/0005.png") == content["a/0005.png"]
    assert validate_store(b).failures == []


def test_new_images_add_a_shard_and_leave_the_others_byte_identical(tmp_path):
    folder = tmp_path / "shards"
    write_sharded(folder, items_for(images(0, 40)), shard_bytes=20_000)
    before = files_of(folder)
    write_sharded(folder, items_for(images(40, 3)), shard_bytes=20_000)
    after = files_of(folder)
    assert {k: after[k] for k in before} == before  # not one old shard touched
    assert len(after) == len(before) + 1
    assert len(ImageStore(folder)) == 43


def test_shards_are_deterministic_and_named_by_content(tmp_path):
    content = images(0, 30)
    one, two = tmp_path / "one", tmp_path / "two"
    write_sharded(one, items_for(content), shard_bytes=20_000)
    write_sharded(two, items_for(dict(reversed(list(content.items())))), shard_bytes=20_000)
    assert files_of(one) == files_of(two)
    assert (one / "index.json").read_bytes() == (two / "index.json").read_bytes()
    parts = ImageStore(one).parts
    assert sorted(p.name for p in parts) == sorted(files_of(one))
    for part in parts:
        assert part.name == f"shard-{part.content_digest[:16]}.lmdb"


def test_removal_rewrites_only_the_shard_that_held_the_key(tmp_path):
    folder = tmp_path / "shards"
    write_sharded(folder, items_for(images(0, 40)), shard_bytes=20_000)
    store = ImageStore(folder)
    holder = store.part_of("a/0010.png")
    before = files_of(folder)
    store.close()
    write_sharded(folder, removals=["a/0010.png"], shard_bytes=20_000)
    after = files_of(folder)
    assert set(before) - set(after) == {holder}
    assert len(set(after) - set(before)) == 1
    assert "a/0010.png" not in ImageStore(folder) and len(ImageStore(folder)) == 39


def test_a_failed_write_leaves_the_last_version(tmp_path):
    folder = tmp_path / "shards"
    write_sharded(folder, items_for(images(0, 20)), shard_bytes=20_000)
    before = {p.name: md5(p) for p in folder.iterdir()}
    good = items_for(images(20, 5))

    def broken() -> bytes:
        raise OSError(5, "Input/output error")

    bad = Item(good[0].record.__class__("a/9999.png", good[0].record.info), broken)
    with pytest.raises(StoreError, match="previous store is unchanged"):
        write_sharded(folder, [*good[1:], bad], shard_bytes=20_000)
    assert {p.name: md5(p) for p in folder.iterdir()} == before  # and no leftovers


def test_validate_finds_a_damaged_and_a_missing_shard(tmp_path):
    folder = tmp_path / "shards"
    content = images(0, 30)
    write_sharded(folder, items_for(content), shard_bytes=20_000)
    first, second = (folder / p.name for p in ImageStore(folder).parts[:2])
    data = bytearray(first.read_bytes())
    image = content[ImageStore(first).keys()[0]]
    at = bytes(data).index(image[100:140])
    data[at] ^= 0xFF  # one flipped bit inside an image's bytes
    first.chmod(0o644)
    first.write_bytes(bytes(data))
    second.unlink()
    problems = [f["key"] + " " + f["problem"] for f in validate_store(ImageStore(folder)).failures]
    assert any(first.name in p and "sha256" in p for p in problems), problems
    assert any(second.name in p and "missing" in p for p in problems), problems


# ------------------------------------------------------------------ training on shards


@pytest.fixture
def sharded(tmp_path) -> Path:
    folder = tmp_path / "shards"
    content = {**images(0, 60), **images(200, 20, "b")}
    write_sharded(
        folder, items_for(content, {k: {"label": k[0]} for k in content}), shard_bytes=15_000
    )
    return folder


def test_ranks_get_whole_shards_balanced_and_disjoint(sharded):
    store = ImageStore(sharded)
    owned = [shards_for_rank(store, r, 3) for r in range(3)]
    assert sorted(sum(owned, [])) == sorted(p.name for p in store.parts)
    counts = {p.name: p.count for p in store.parts}
    loads = [sum(counts[n] for n in names) for names in owned]
    assert max(loads) - min(loads) <= max(counts.values())
    assert owned == [shards_for_rank(ImageStore(sharded), r, 3) for r in range(3)]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_shard_sampler_gives_each_rank_its_shards_and_equal_lengths(sharded, start_method):
    from torch.utils.data import DataLoader

    dataset = ImageDataset(sharded, where="label=a")
    seen = []
    lengths = set()
    for rank in range(2):
        sampler = ShardSampler(dataset, num_replicas=2, rank=rank, seed=1)
        sampler.set_epoch(3)
        lengths.add(len(sampler))
        mine = set(shards_for_rank(sharded, rank, 2))
        assert {dataset.shard_of(i) for i in sampler} <= mine
        loader = DataLoader(
            dataset,
            batch_size=5,
            sampler=sampler,
            num_workers=2,
            collate_fn=collate,
            multiprocessing_context=multiprocessing.get_context(start_method),
        )
        seen += [m["key"] for _images, metas in loader for m in metas]
    assert len(lengths) == 1  # every rank runs the same number of steps
    assert set(seen) == {f"a/{i:04d}.png" for i in range(60)}


RESUMABLE_RANK = """
import json, os, sys, time
from imageshelf.read.dataset import ImageDataset, ShardSampler

store, state_file = sys.argv[1], sys.argv[2]
sampler = ShardSampler(ImageDataset(store), num_replicas=2, rank=1, seed=7)
sampler.set_epoch(2)
state = {"log": []}
if os.path.exists(state_file):
    state = json.load(open(state_file))
    sampler.load_state_dict(state["sampler"])
for index in sampler:  # a training step, then a checkpoint: both, or neither
    state["log"].append(index)
    state["sampler"] = sampler.state_dict(consumed=len(state["log"]))
    with open(state_file + ".tmp", "w") as out:
        json.dump(state, out)
    os.replace(state_file + ".tmp", state_file)
    time.sleep(float(os.environ.get("STEP", "0")))
"""


def test_a_rank_killed_mid_epoch_goes_on_with_exactly_what_it_had_not_seen(sharded, tmp_path):
    expected = ShardSampler(ImageDataset(sharded), num_replicas=2, rank=1, seed=7)
    expected.set_epoch(2)
    expected = list(expected)
    state = tmp_path / "state.json"
    args = [sys.executable, "-c", RESUMABLE_RANK, str(sharded), str(state)]
    job = subprocess.Popen(args, env={**os.environ, "STEP": "0.05"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not state.exists() or len(json.loads(state.read_text())["log"]) < 7
    ):
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)  # preempted mid-epoch
    job.wait()
    killed_at = len(json.loads(state.read_text())["log"])
    assert 7 <= killed_at < len(expected)
    subprocess.run(args, check=True, timeout=120)  # the job restarted
    assert json.loads(state.read_text())["log"] == expected  # none twice, none skipped


def test_a_changed_world_size_shares_out_what_the_old_ranks_had_not_seen(sharded):
    dataset = ImageDataset(sharded)
    old = [ShardSampler(dataset, num_replicas=2, rank=r, seed=3) for r in range(2)]
    seen = []
    for sampler in old:
        sampler.set_epoch(1)
        seen += list(itertools.islice(iter(sampler), 12))
    states = [sampler.state_dict(consumed=12) for sampler in old]
    new = [ShardSampler(dataset, num_replicas=3, rank=r, seed=3) for r in range(3)]
    rest = []
    for sampler in new:
        sampler.load_state_dict(states[0])
        assert sampler.epoch == 1
        rest.append(list(sampler))
    assert len({len(r) for r in rest}) == 1  # every new rank runs the same number of steps
    left = set(itertools.chain(*rest))
    assert not left & set(seen) and left | set(seen) == set(range(len(dataset)))
    with pytest.raises(ValueError, match="seed=3"):
        ShardSampler(dataset, num_replicas=2, rank=0, seed=4).load_state_dict(states[0])


# ------------------------------------------------------------------ with real git and DVC


def remote_objects(remote: Path) -> dict[str, int]:
    return {str(p.relative_to(remote)): p.stat().st_size for p in remote.rglob("*") if p.is_file()}


def test_sharded_push_after_adding_1_percent_uploads_one_new_shard(repo, tmp_path):
    sharded_params(repo)
    first = big_images(0, 300)
    publish(repo, first, "300 images, sharded")
    remote = tmp_path / "remote"
    before = remote_objects(remote)
    shards_before = files_of(repo / "data" / "images")
    catalog = repo / "data" / "catalog"
    stamp = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in catalog.glob("*.parquet")}

    shutil.rmtree(repo / "data" / "incoming" / "set0")
    new = big_images(1000, 3)  # 1%
    put(repo / "data" / "incoming", new)
    sh(repo, "dvc", "repro")
    after_shards = files_of(repo / "data" / "images")
    assert {k: after_shards[k] for k in shards_before} == shards_before
    # The columnar catalog costs what changed: the new shard's file, the rest untouched.
    now = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in catalog.glob("*.parquet")}
    assert {k: now[k] for k in stamp} == stamp and len(now) == len(stamp) + 1
    commit(repo, "3 more")
    sh(repo, "dvc", "push")
    uploaded = sorted(v for k, v in remote_objects(remote).items() if k not in before)
    new_bytes = sum(len(v) for v in new.values())
    # One new shard: the new images plus LMDB's fixed pages (about 44 KB a shard, which
    # is why the 1.2x goal is measured at 20,000 images by `make bench`, not here), and
    # small files: the shard's catalog and its columnar form (Parquet's schema and
    # footer: about 8 KB), the index, two folder listings (the staged manifest is an
    # intermediate, never pushed).
    *small, shard = uploaded
    assert new_bytes < shard <= new_bytes + 64 * 1024, uploaded
    assert len(small) == 5 and all(size < 16384 for size in small), uploaded
    assert up_to_date(repo)

    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    sh(teammate, "dvc", "pull")
    with ImageStore(teammate / "data" / "images") as store:
        assert {k: store.get(k) for k in store} == {**first, **new}


def test_switching_layouts_converts_the_store_and_back(repo):
    content = big_images(0, 80)  # 1.6 MB: two shards of 1 MB
    put(repo / "data" / "incoming", content)
    sh(repo, "dvc", "repro")
    single_md5 = md5(repo / "data" / "images.lmdb")
    commit(repo, "single")

    sharded_params(repo)
    out = sh(repo, "dvc", "repro")
    assert "converted from data/images.lmdb" in out.stdout
    with ImageStore(repo / "data" / "images") as store:
        assert len(store.parts) > 1
        assert {k: store.get(k) for k in store} == content
    assert up_to_date(repo)
    commit(repo, "sharded")

    (repo / "data" / "images.lmdb").unlink()
    params = repo / "params.yaml"
    params.write_text(
        params.read_text()
        .replace("layout: sharded", "layout: single")
        .replace("store: data/images ", "store: data/images.lmdb ")
    )
    out = sh(repo, "dvc", "repro")
    assert "converted from data/images" in out.stdout
    assert md5(repo / "data" / "images.lmdb") == single_md5  # the same content, same bytes


def test_compact_merges_small_shards_and_dvc_records_it(repo):
    sharded_params(repo)
    everything = {}
    for batch in range(4):
        new = big_images(batch * 1000, 5)
        everything.update(new)
        put(repo / "data" / "incoming", new)
        sh(repo, "dvc", "repro")
        shutil.rmtree(repo / "data" / "incoming" / f"set{batch}")
    assert len(ImageStore(repo / "data" / "images").parts) == 4
    out = sh(repo, *command_line("compact"))
    assert "in 1 shard(s), from 4" in out.stdout
    sh(repo, "dvc", "commit", "-f", "pack")
    sh(repo, "dvc", "repro")
    assert up_to_date(repo)
    with ImageStore(repo / "data" / "images") as store:
        assert {k: store.get(k) for k in store} == everything
    validate = json.loads((repo / "reports" / "validate.json").read_text())
    assert validate["ok"] and validate["records"] == 20


def test_a_node_pulls_only_its_shards_and_trains_on_them(repo, tmp_path):
    sharded_params(repo)
    content = big_images(0, 120)
    publish(repo, content, "sharded")
    names = [p.name for p in ImageStore(repo / "data" / "images").parts]
    assert len(names) >= 3

    node = tmp_path / "node"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(node))
    sh(node, "dvc", "pull", "data/images/index.json")
    listed = sh(node, *command_line("shards", "--rank", "1", "--world-size", "2")).stdout.split()
    mine = [Path(p).name for p in listed]
    assert mine == shards_for_rank(repo / "data" / "images", 1, 2)
    sh(node, "dvc", "pull", *listed)
    present = sorted(p.name for p in (node / "data" / "images").glob("shard-*.lmdb"))
    assert present == sorted(mine) and len(present) < len(names)  # only its share

    dataset = ImageDataset(node / "data" / "images", shards=mine)
    got = {meta["key"]: image for image, meta in dataset}
    assert got and all(content[k] == v for k, v in got.items())
    with pytest.raises(StoreError, match="dvc pull"):
        ImageStore(node / "data" / "images").part(sorted(set(names) - set(mine))[0]).get("x")

    # Or read one shard straight from the remote through DVC's filesystem, no checkout.
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(repo))
    local = tmp_path / "one-shard.lmdb"
    fs.get_file(f"data/images/{names[0]}", str(local))
    with ImageStore(local) as shard:
        assert all(shard.get(k) == content[k] for k in shard) and len(shard) > 0
    assert local.read_bytes() == (repo / "data" / "images" / names[0]).read_bytes()


@pytest.mark.parametrize(
    "layout, store, says",
    [
        ("sharded", "data/images.lmdb", "pack.store must be a folder"),
        ("single", "data/images", "must be a file ending in .lmdb"),
        ("tiled", "data/images", "pack.layout must be one of single, sharded"),
    ],
)
def test_a_layout_that_does_not_match_its_store_is_a_one_line_error(workspace, layout, store, says):
    from conftest import stage

    params = workspace / "params.yaml"
    text = params.read_text().replace("layout: single ", f"layout: {layout} ")
    params.write_text(text.replace("store: data/images.lmdb ", f"store: {store} "))
    put(workspace / "data" / "incoming", {"a.png": make_image()})
    stage("ingest")
    result = stage("pack")
    assert result.exit_code == 1 and says in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_field_only_newer_shards_hold_filters_and_a_typo_is_still_refused(tmp_path):
    folder = tmp_path / "shards"
    write_sharded(folder, items_for(images(0, 5), {k: {"label": "x"} for k in images(0, 5)}))
    newer = images(100, 5, "b")
    write_sharded(folder, items_for(newer, {k: {"label": "y", "checked": True} for k in newer}))
    assert len(ImageStore(folder).parts) == 2
    assert sorted(ImageDataset(folder, where="checked=true").keys) == sorted(newer)
    listed = sh(tmp_path, *command_line("ls", "--store", str(folder), "--where", "checked=true"))
    assert sorted(line.split("\t")[-1] for line in listed.stdout.splitlines()) == sorted(newer)
    with pytest.raises(QueryError, match="checkd"):
        ImageDataset(folder, where="checkd=true")
