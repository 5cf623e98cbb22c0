"""A run costs what changed: what each stage skips, and proof that skipping never hides a
change. (How fast, at 100,000 images and more, is benchmarks/scale.py's to measure.)"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest
import yaml

from imageshelf.store import ImageStore
from imageshelf.store.writer import write_sharded

from conftest import PROJECT, items_for, make_image, put, sh, sharded_params, up_to_date


def images(first: int, count: int) -> dict[str, bytes]:
    """Keys of every class in each batch: shards' key ranges overlap."""
    return {
        f"c{i % 4}/{i:05d}.png": make_image("PNG", (16, 16), seed=i)
        for i in range(first, first + count)
    }


def grown(folder: Path, batches: int, size: int) -> dict[str, bytes]:
    """A sharded store grown by `batches` appends of `size` images of every class (their
    key ranges overlap); returns every image by key."""
    everything: dict[str, bytes] = {}
    for batch in range(batches):
        content = images(batch * size, size)
        everything.update(content)
        write_sharded(folder, items_for(content))
    return everything


def report(root: Path, name: str) -> dict:
    return json.loads((root / "reports" / f"{name}.json").read_text())


def test_dvc_never_walks_the_incoming_folder():
    ingest = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]["ingest"]
    assert ingest["always_changed"] is True
    assert not any(str(dep).startswith("data/incoming") for dep in ingest["deps"])


def test_only_what_would_change_the_store_is_staged(repo):
    sharded_params(repo)
    first = images(0, 30)
    put(repo / "data" / "incoming", first)
    sh(repo, "dvc", "repro")
    assert up_to_date(repo)
    manifest = (repo / "data" / "staged.jsonl").read_bytes()
    again = sh(repo, "dvc", "repro").stdout  # the originals are still in incoming
    assert "ingest: 0 images staged (0.0 MB), 30 already in the store" in again
    # Nothing new since the run that staged them, and they are packed: ingest leaves its
    # manifest and report as they were, so pack is not even run and dvc.lock stays.
    assert (repo / "data" / "staged.jsonl").read_bytes() == manifest
    assert "Stage 'pack' didn't change, skipping" in again
    assert "is empty" not in again  # DVC has no empty output to warn about

    put(
        repo / "data" / "incoming",
        {**images(100, 3), "c0/labels.csv": "path,label\n00000.png,zero\n"},
    )
    out = sh(repo, "dvc", "repro").stdout
    assert "ingest: 4 images staged" in out and "29 already in the store" in out
    staged = [json.loads(line).get("key") for line in (repo / "data" / "staged.jsonl").open()][1:]
    assert staged == ["c0/00000.png", "c0/00100.png", "c1/00101.png", "c2/00102.png"]
    with ImageStore(repo / "data" / "images") as store:
        assert store.metadata("c0/00000.png") == {"label": "zero"} and len(store) == 33


def test_a_file_changed_in_place_is_read_again(repo):
    put(repo / "data" / "incoming", images(0, 5))
    sh(repo, "dvc", "repro")
    victim = repo / "data" / "incoming" / "c1" / "00001.png"
    stat = victim.stat()
    with open(victim, "r+b") as fh:  # overwritten in place, as `cp` over it does
        fh.write(make_image("PNG", (16, 16), seed=999))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    result = sh(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert "have the key of a stored image but different bytes: c1/00001.png" in result.stderr


def test_the_label_files_of_images_already_stored_are_not_read_again(workspace):
    """YOLO ships a label file per image: with the originals kept, reading 100,000 of
    them on every run cost more than the rest of ingest. With every annotation file
    unchanged (dev, inode, size, mtime), those of images already stored as they are
    are not read; a label file that changes is, and its image is staged again."""
    from conftest import report, stage

    (workspace / ".dvc").mkdir()  # ingest keeps what it learned in .dvc/tmp
    incoming = workspace / "data" / "incoming"
    files: dict[str, bytes | str] = {"ds/data.yaml": "names: [cat, dog]\n"}
    for i in range(4):
        files[f"ds/images/{i}.png"] = make_image("PNG", (20, 10), seed=i)
        files[f"ds/labels/{i}.txt"] = f"{i % 2} 0.5 0.5 0.5 0.5\n"
    put(incoming, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    assert report("ingest")["unused_metadata"] == []

    # Same size, same mtime: not read, so this damage goes unseen, as for an image.
    unseen = incoming / "ds" / "labels" / "1.txt"
    before = unseen.stat()
    unseen.write_text("x 0.5 0.5 0.5 0.5\n")
    os.utime(unseen, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = stage("ingest").output
    assert "0 images staged" in out and "4 already in the store" in out, out
    seen = report("ingest")
    assert len(seen["annotation_files"]) == 5 and seen["unused_metadata"] == []
    unseen.write_text("1 0.5 0.5 0.5 0.5\n")  # as it was: read again below

    changed = incoming / "ds" / "labels" / "2.txt"
    changed.write_text("1 0.25 0.25 0.5 0.5\n")
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    out = stage("ingest").output
    assert "1 images staged" in out and "3 already in the store" in out, out
    staged = [json.loads(line) for line in (workspace / "data" / "staged.jsonl").open()][1:]
    assert [(r["key"], r["meta"]) for r in staged] == [
        (
            "ds/images/2.png",
            {"objects": [{"bbox": [0, 0, 10, 5], "category": "dog", "category_id": 1}]},
        )
    ]


def test_a_changed_label_table_looks_up_only_the_images_it_speaks_of(workspace):
    """Originals kept, a label table per batch, sharded: a new batch's table, a removed
    table or a changed one sends only its own images to the store for a look-up; a file
    that gives meaning to others (here a COCO file) sends every image, as before."""
    from conftest import report, stage

    (workspace / ".dvc").mkdir()  # ingest keeps what it learned in .dvc/tmp
    sharded_params(workspace)
    incoming = workspace / "data" / "incoming"

    def batch(name: str, first: int, count: int, label: str) -> dict[str, bytes | str]:
        files: dict[str, bytes | str] = {
            f"{name}/{i}.png": make_image("PNG", (8, 8), seed=i)
            for i in range(first, first + count)
        }
        rows = "".join(f"{i}.png,{label}\n" for i in range(first, first + count))
        return {**files, f"{name}/labels.csv": "path,label\n" + rows}

    def ingest_and_pack() -> tuple[int, int]:
        assert stage("ingest").exit_code == 0
        seen = report("ingest")
        assert stage("pack").exit_code == 0
        return seen["staged"], seen["looked_up"]

    put(incoming, {**batch("a", 0, 6, "cat"), **batch("b", 6, 4, "dog")})
    ingest_and_pack()
    put(incoming, batch("c", 10, 3, "bird"))
    # The unchanged tables, every row an image already stored, are not even read: this
    # damage (same size, same mtime) goes unseen, as for an image.
    unseen = incoming / "b" / "labels.csv"
    text, before = unseen.read_text(), unseen.stat()
    unseen.write_text(text.replace("dog", "d,g"))
    os.utime(unseen, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ingest_and_pack() == (3, 3)  # staged, looked up: only the new batch
    assert report("ingest")["unused_metadata"] == [] and report("ingest")["annotation_notes"] == []
    unseen.write_text(text)
    os.utime(unseen, ns=(before.st_atime_ns, before.st_mtime_ns))

    (incoming / "b" / "labels.csv").unlink()  # a removal never takes labels away
    assert ingest_and_pack() == (0, 4)
    put(incoming, {"c/coco.json": json.dumps({"images": [], "annotations": [], "categories": []})})
    assert ingest_and_pack() == (0, 13)

    table = incoming / "a" / "labels.csv"
    table.write_text(table.read_text().replace("1.png,cat", "1.png,zebra"))
    assert ingest_and_pack() == (1, 6)
    with ImageStore(workspace / "data" / "images") as store:
        assert store.metadata("a/1.png") == {"label": "zebra"}
        assert store.metadata("a/2.png") == {"label": "cat"}
        assert store.metadata("b/7.png") == {"label": "dog"}


def test_a_new_yolo_export_looks_up_only_its_own_images(workspace):
    """Originals kept, YOLO exports side by side, sharded: a new export's data.yaml
    reaches the images below it and in the folders it names, so only those go to the
    store for a look-up; so does a changed one, with those it reached before (kept with
    its fingerprint: sources/incoming.py)."""
    from conftest import report, stage

    (workspace / ".dvc").mkdir()  # ingest keeps what it learned in .dvc/tmp
    sharded_params(workspace)
    incoming = workspace / "data" / "incoming"

    def export(name: str, first: int, count: int, extra: str = "") -> dict[str, bytes | str]:
        files: dict[str, bytes | str] = {
            f"{name}/data.yaml": f"train: images/train\nnames: [cat, dog]\n{extra}"
        }
        for i in range(first, first + count):
            files[f"{name}/images/train/{i}.png"] = make_image("PNG", (8, 8), seed=i)
            files[f"{name}/labels/train/{i}.txt"] = f"{i % 2} 0.5 0.5 0.5 0.5\n"
        return files

    def ingest_and_pack() -> tuple[int, int]:
        assert stage("ingest").exit_code == 0
        seen = report("ingest")
        assert stage("pack").exit_code == 0
        return seen["staged"], seen["looked_up"]

    put(incoming, {**export("a", 0, 5), **export("b", 5, 4)})
    assert ingest_and_pack() == (9, 0)  # no store yet: nothing to look up
    put(incoming, export("c", 9, 3))
    assert ingest_and_pack() == (3, 3)  # only the new export's images
    # A new export whose data.yaml also names a sibling's images as its val split.
    put(incoming, export("d", 12, 2, extra="val: ../b/images/train\n"))
    assert ingest_and_pack() == (6, 6)  # its own 2, and b's 4, which now have a split
    with ImageStore(workspace / "data" / "images") as store:
        assert store.metadata("b/images/train/5.png")["split"] == "val"
        assert store.metadata("c/images/train/9.png")["objects"][0]["category"] == "dog"

    yaml = incoming / "a" / "data.yaml"
    yaml.write_text(yaml.read_text().replace("[cat, dog]", "[lion, wolf]"))
    assert ingest_and_pack() == (5, 5)  # a's 5 looked up and relabeled, no other
    with ImageStore(workspace / "data" / "images") as store:
        assert store.metadata("a/images/train/0.png")["objects"][0]["category"] == "lion"


def test_validate_proves_what_changed_and_full_proves_everything(repo):
    sharded_params(repo)
    put(repo / "data" / "incoming", images(0, 40))
    sh(repo, "dvc", "repro")
    first = report(repo, "validate")
    assert first["proven_earlier"] == 0 and first["records"] == 40

    shutil.rmtree(repo / "data" / "incoming")
    put(repo / "data" / "incoming", images(100, 5))
    sh(repo, "dvc", "repro")
    second = report(repo, "validate")
    assert (second["records"], second["proven_earlier"]) == (45, 40)
    with ImageStore(repo / "data" / "images") as store:
        new = [p for p in store.parts if p.count == 5]
        assert len(new) == 1 and second["bytes_checked"] == new[0].total_bytes

    full = sh(repo, "python", "pipeline/validate.py", "--full").stdout
    assert "45 records intact" in full and "proven earlier" not in full
    assert report(repo, "validate")["bytes_checked"] == sum(
        p.total_bytes for p in ImageStore(repo / "data" / "images").parts
    )


def test_a_shard_replaced_by_a_damaged_copy_is_read_again_and_caught(repo):
    sharded_params(repo)
    content = images(0, 30)
    put(repo / "data" / "incoming", content)
    sh(repo, "dvc", "repro")
    shard = next((repo / "data" / "images").glob("shard-*.lmdb"))
    data = bytearray(shard.read_bytes())
    victim = content[sorted(content)[3]]
    at = bytes(data).index(victim[40:80])
    data[at] ^= 0xFF
    shard.unlink()  # a new file with the old name: a new inode, a new fingerprint
    shard.write_bytes(bytes(data))
    result = sh(repo, "python", "pipeline/validate.py", check=False)
    assert result.returncode == 1 and "do not match their sha256" in result.stderr


def test_losing_the_cache_costs_time_never_correctness(repo):
    put(
        repo / "data" / "incoming",
        {
            **images(0, 10),
            "labels.csv": "path,label\n" + "".join(f"{k},x\n" for k in images(0, 10)),
        },
    )
    sh(repo, "dvc", "repro")
    (repo / "data" / "annotations" / "fix.csv").write_text("path,label\nc1/00001.png,y\n")
    shutil.rmtree(repo / ".dvc" / "tmp" / "imageshelf")
    sh(repo, "dvc", "repro")
    with ImageStore(repo / "data" / "images.lmdb") as store:
        assert store.metadata("c1/00001.png") == {"label": "y"}
        assert store.metadata("c2/00002.png") == {"label": "x"}
    assert report(repo, "validate")["proven_earlier"] == 0  # all read again: no cache


def _read_all(args: tuple[str, list[str]]) -> dict[str, bytes]:
    path, keys = args
    store = ImageStore(path)
    return {key: store.get(key) for key in keys}


def test_reads_by_key_across_overlapping_shards(tmp_path):
    """Every batch holds every class, so every shard's key range overlaps the others':
    lookups build a key -> shard map and stay right, in this process and in forked and
    spawned workers."""
    folder = tmp_path / "shards"
    everything = grown(folder, batches=6, size=10)
    store = ImageStore(folder)
    keys = sorted(everything)
    assert len(store.parts) == 6
    for _ in range(3):  # enough lookups to make building the map pay
        assert all(store.get(key) == everything[key] for key in keys)
    assert store._by_key is not None
    assert all(key in store for key in keys) and "c9/99999.png" not in store
    with pytest.raises(KeyError, match="c9/99999.png"):
        store.get("c9/99999.png")
    assert store.part_of(keys[0]) in {p.name for p in store.parts}
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            got = pool.map(_read_all, [(str(folder), keys[:30]), (str(folder), keys[30:])])
        assert {**got[0], **got[1]} == everything


def test_the_key_map_reads_right_in_threads_after_fork_and_from_1x_shards(tmp_path):
    """Once mapped, a read goes straight to the shard the map names: right in other
    threads, in a child forked after the map was built, and for 1.x shards."""
    import threading

    from legacy import expected_1x, write_1x_store

    folder = tmp_path / "shards"
    everything = grown(folder, batches=4, size=8)
    store = ImageStore(folder)
    store._index_keys()
    keys = sorted(everything)
    assert all(store.get(key) == everything[key] for key in keys)
    got: dict[str, bytes] = {}
    worker = threading.Thread(target=lambda: got.update((k, store.get(k)) for k in keys))
    worker.start()
    worker.join()
    assert got == everything
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the map, inherited; the parent's open files are not used
        try:
            os.write(writing, hashlib.sha256(store.get(keys[5])).digest())
        finally:
            os._exit(0)
    os.close(writing)
    assert os.read(reading, 64) == hashlib.sha256(everything[keys[5]]).digest()
    os.waitpid(child, 0)
    for missing in ("c9/99999.png", 7, b"c0/00000.png", ["x"]):
        with pytest.raises(KeyError):
            store.get(missing)  # type: ignore[arg-type]

    old = ImageStore(write_1x_store(tmp_path / "old"))
    old._index_keys()
    for key, want in expected_1x().items():
        assert hashlib.sha256(old.get(key)).hexdigest() == want["sha256"]
        assert key in old and old.part_of(key) in {p.name for p in old.parts}


def test_a_location_outside_its_chunk_is_a_damaged_store_through_the_map(tmp_path):
    import lmdb

    from imageshelf.store.format import LOCATION, StoreError

    folder = tmp_path / "shards"
    content = images(0, 8)
    write_sharded(folder, items_for(content))
    write_sharded(folder, items_for(images(8, 8)))
    shard = ImageStore(folder).part_of("c0/00000.png")
    env = lmdb.open(str(folder / shard), subdir=False, lock=False, max_dbs=5)
    with env.begin(write=True) as txn:
        db = env.open_db(b"locations", txn)
        chunk, at, size = LOCATION.unpack(txn.get(b"c0/00000.png", db=db))
        txn.put(b"c0/00000.png", LOCATION.pack(chunk, at, size + 10**6), db=db)
        txn.put(b"c0/00004.png", LOCATION.pack(chunk + 9, at, size), db=db)
    env.close()
    store = ImageStore(folder)
    store._index_keys()
    with pytest.raises(StoreError, match="an image lies outside its chunk"):
        store.get("c0/00000.png")
    with pytest.raises(StoreError, match="chunk 9 is missing"):
        store.get("c0/00004.png")
    assert store.get("c1/00001.png") == content["c1/00001.png"]


def test_pack_says_when_the_single_file_has_grown_past_a_few_gb(workspace, monkeypatch):
    from imageshelf.stages.pack import outcome as pack_outcome

    from conftest import stage

    monkeypatch.setattr(pack_outcome, "SHARDED_FROM", 1000)  # a few GB, scaled down
    put(workspace / "data" / "incoming", images(0, 5))
    stage("ingest")
    result = stage("pack")
    assert result.exit_code == 0
    assert "is rewritten (and pushed) whole on every change; the sharded layout" in result.stderr


@pytest.mark.parametrize("by_entry_from", [4096, 8])  # folders shared whole, or by entry
def test_a_walk_on_every_core_finds_what_one_walk_finds(tmp_path, monkeypatch, by_entry_from):
    from imageshelf.sources import walk as walking
    from imageshelf.sources.walk import walk

    monkeypatch.setattr(walking, "BY_ENTRY_FROM", by_entry_from)

    put(
        tmp_path,
        {
            **images(0, 40),
            "top.png": make_image(seed=1),
            "labels.csv": "path,label\n",
            "c1/README.md": "# c1\n",
            "notes/README.md": "x",
            "c2/deep/er/x.png": make_image(seed=2),
            "c3/labels/a.txt": "0 0.5 0.5 0.1 0.1\n",
        },
    )
    os.symlink(tmp_path / "c0", tmp_path / "link")  # a folder symlink: rejected, either way
    os.mkfifo(tmp_path / "c2" / "pipe.png")
    one, many = (
        walk(str(tmp_path), ("README*", "notes")),
        walk(str(tmp_path), ("README*", "notes"), jobs=2),
    )
    assert len(one.files) == 42
    for name in ("files", "annotations", "ignored", "stamps"):
        assert getattr(many, name) == getattr(one, name), name
    assert sorted(many.rejects, key=lambda r: r.path) == sorted(one.rejects, key=lambda r: r.path)
    assert {r.path for r in one.rejects} == {"link", "c2/pipe.png"}


def test_pack_says_so_when_the_single_file_holds_many_images(workspace, monkeypatch):
    from imageshelf.stages.pack import outcome as pack_outcome

    from conftest import stage

    monkeypatch.setattr(pack_outcome, "SHARDED_FROM_IMAGES", 5)  # 50,000, scaled down
    put(workspace / "data" / "incoming", images(0, 5))
    stage("ingest")
    result = stage("pack")
    assert result.exit_code == 0
    assert "holds 5 images" in result.stderr and "the sharded layout" in result.stderr


def test_relabeling_one_image_rewrites_one_bounded_shard(tmp_path, monkeypatch):
    """Shards are cut by images as well as bytes, so fixing a label in a store of many
    small images rewrites at most SHARD_IMAGES records; a shard grown larger (an older
    store, a conversion) is split the first time one of its keys changes."""
    from imageshelf.store import ImageStore, writer

    from conftest import items_for

    folder = tmp_path / "images"
    pictures = images(0, 30)
    writer.write_sharded(folder, items_for(pictures))  # one shard of 30: made before the cap
    monkeypatch.setattr(writer, "SHARD_IMAGES", 8)
    key = sorted(pictures)[3]
    relabeled = items_for({key: pictures[key]}, {key: {"label": "fixed"}})
    writer.write_sharded(folder, relabeled, touched=[key])
    with ImageStore(folder) as store:
        assert [p.count for p in store.parts] == [8, 8, 8, 6]  # split as it was rewritten
        assert store.metadata(key) == {"label": "fixed"} and len(store) == 30
        before = {p.name for p in store.parts}
    other = sorted(pictures)[20]
    writer.write_sharded(
        folder, items_for({other: pictures[other]}, {other: {"label": "x"}}), touched=[other]
    )
    with ImageStore(folder) as store:
        rewritten = {p.name for p in store.parts} - before
        assert len(rewritten) == 1 and len(before - {p.name for p in store.parts}) == 1
        assert store.metadata(other) == {"label": "x"}
