"""The store: bytes back as they went in, deterministic files, atomic publishing, readers."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lmdb
import pytest

from imageshelf.images.recognise import describe
from imageshelf.store import ImageStore, InvalidKeyError, StoreError, UnsupportedVersionError
from imageshelf.store.lock import ConcurrentWriteError
from imageshelf.store.writer import Item, rebuild

from conftest import FORMATS, build_store, items_for, make_image, md5


def test_every_format_comes_back_byte_identical(tmp_path, six_formats):
    meta = {
        key: {"label": key.split("/")[0], "boxes": [[1, 2, 3, 4]], "text": "é ✓"}
        for key in six_formats
    }
    store = ImageStore(build_store(tmp_path / "s.lmdb", six_formats, meta))

    assert len(store) == len(FORMATS)
    assert store.keys() == sorted(six_formats)
    for key, data in six_formats.items():
        assert store.get(key) == data
        assert store.metadata(key) == meta[key]
        info = store.info(key)
        assert info.size == len(data)
        assert info.format == key.split("/")[0]
        assert (info.width, info.height) == (40 + FORMATS.index(info.format.upper()), 30)
    assert store.get_many(list(reversed(store.keys()))) == [
        six_formats[k] for k in reversed(store.keys())
    ]
    assert store.header.count == len(FORMATS)
    assert store.header.total_bytes == sum(map(len, six_formats.values()))


def test_same_records_in_any_order_and_batching_give_the_same_file(tmp_path):
    images = {f"class_{i % 3}/{i:03d}.png": make_image("PNG", (16, 16), seed=i) for i in range(40)}
    meta = {key: {"label": key.split("/")[0]} for key in images}
    keys = list(images)

    one_go = tmp_path / "one.lmdb"
    rebuild(one_go, items_for(images, meta))

    shuffled = tmp_path / "batches.lmdb"
    random.Random(7).shuffle(keys)
    for start in range(0, len(keys), 7):  # six batches, each in a random order
        batch = {k: images[k] for k in keys[start : start + 7]}
        rebuild(shuffled, items_for(batch, meta))

    with_detour = tmp_path / "detour.lmdb"  # an extra image added, then removed again
    rebuild(with_detour, items_for({**images, "zzz.gif": make_image("GIF")}, meta))
    rebuild(with_detour, removals={"zzz.gif"})

    assert md5(one_go) == md5(shuffled) == md5(with_detour)
    assert ImageStore(shuffled).keys() == sorted(images)


def test_rewriting_unchanged_content_keeps_the_file_byte_identical(tmp_path, six_formats):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    before = md5(path)
    rebuild(path)
    assert md5(path) == before


def test_an_addition_replaces_the_record_with_the_same_key(tmp_path):
    path = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", seed=1)})
    new = make_image("PNG", seed=2)
    rebuild(path, items_for({"a.png": new}, {"a.png": {"label": "new"}}))
    store = ImageStore(path)
    assert store.get("a.png") == new
    assert store.metadata("a.png") == {"label": "new"}


def test_a_failed_write_leaves_the_previous_store_untouched(tmp_path, six_formats):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    before = md5(path)

    def broken() -> bytes:
        raise OSError("disk went away")

    good = items_for({"new/a.png": make_image("PNG", seed=9)})
    bad = Item(describe("new/b.png", make_image("PNG", seed=10)), broken)
    with pytest.raises(StoreError, match="disk went away"):
        rebuild(path, good + [bad])

    assert md5(path) == before
    assert ImageStore(path).keys() == sorted(six_formats)
    assert _leftovers(tmp_path) == []


def test_bytes_that_changed_since_hashing_are_refused(tmp_path):
    record = describe("a.png", make_image("PNG", seed=1))
    with pytest.raises(StoreError, match="a.png: bytes changed"):
        rebuild(tmp_path / "s.lmdb", [Item(record, lambda: make_image("PNG", seed=2))])
    assert not (tmp_path / "s.lmdb").exists()


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from conftest import make_image
    from imageshelf.images.recognise import describe
    from imageshelf.store.writer import Item, rebuild

    def slow(data):
        time.sleep(0.01)
        return data

    items = []
    for i in range(2000):
        data = make_image("PNG", (8, 8), seed=i)
        items.append(Item(describe(f"new/{i:05d}.png", data), lambda d=data: slow(d)))
    print("ready", flush=True)
    rebuild(sys.argv[1], items)
""")


def test_a_killed_write_leaves_the_previous_store_and_the_next_write_cleans_up(
    tmp_path, six_formats
):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    before = md5(path)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not _leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the write: 2000 images at 10 ms each
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    assert _leftovers(tmp_path), "the killed writer should have left its temp file"
    assert md5(path) == before
    assert ImageStore(path).keys() == sorted(six_formats)

    rebuild(path, items_for({"after.png": make_image("PNG", seed=3)}))
    assert _leftovers(tmp_path) == []
    assert "after.png" in ImageStore(path)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from imageshelf.store.writer import writer_lock
    with writer_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_writer_is_refused_while_one_writes(tmp_path, six_formats):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConcurrentWriteError, match=rf"pid {holder.pid}\) is writing"):
            rebuild(path, items_for({"x.png": make_image()}))
    finally:
        holder.kill()
        holder.wait()
    assert "x.png" not in ImageStore(path)
    rebuild(path, items_for({"x.png": make_image()}))  # free again once the holder is gone
    assert "x.png" in ImageStore(path)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_reads_a_read_only_file_in_a_read_only_folder(tmp_path, six_formats):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = build_store(folder / "s.lmdb", six_formats)
    for leftover in folder.glob(".*"):
        leftover.unlink()
    path.chmod(0o444)
    folder.chmod(0o555)
    before = (md5(path), path.stat().st_mtime_ns)
    try:
        store = ImageStore(path)
        assert [store.get(k) for k in store] == [six_formats[k] for k in store]
        assert sorted(p.name for p in folder.iterdir()) == ["s.lmdb"]  # no lock file
        assert (md5(path), path.stat().st_mtime_ns) == before
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only: mounting a read-only filesystem")
def test_reads_from_a_read_only_filesystem_even_as_root(tmp_path, six_formats):
    # As root, chmod stops nothing; a read-only mount does.
    source = build_store(tmp_path / "s.lmdb", six_formats)
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        (mount / "s.lmdb").write_bytes(source.read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(OSError):
            (mount / "probe").write_bytes(b"")
        with ImageStore(mount / "s.lmdb") as store:
            assert _read_all(store) == six_formats
    finally:
        if subprocess.run(["umount", str(mount)]).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def _read_all(store: ImageStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store}


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_works_in_forked_and_spawned_workers(tmp_path, six_formats, method):
    store = ImageStore(build_store(tmp_path / "s.lmdb", six_formats))
    assert store.get(store.keys()[0])  # the parent has it open before the workers start
    context = multiprocessing.get_context(method)
    with context.Pool(3) as pool:
        results = pool.map(_read_all, [store] * 6)
    assert all(result == six_formats for result in results)
    assert _read_all(store) == six_formats  # and the parent still reads


def test_pickles_without_its_open_environment(tmp_path, six_formats):
    store = ImageStore(build_store(tmp_path / "s.lmdb", six_formats))
    store.keys()
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path and clone._parts is None  # nothing open travels
    assert _read_all(clone) == six_formats


def test_two_stores_on_one_file_and_a_replaced_file_in_one_process(tmp_path, six_formats):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    first, second = ImageStore(path), ImageStore(path)
    assert first.keys() == second.keys()
    rebuild(path, items_for({"new.png": make_image()}))
    assert "new.png" not in first  # a snapshot of the version it opened
    assert "new.png" in ImageStore(path)


def test_a_missing_key_raises_key_error_naming_it(tmp_path, six_formats):
    store = ImageStore(build_store(tmp_path / "s.lmdb", six_formats))
    for method in (store.get, store.metadata, store.info):
        with pytest.raises(KeyError, match="no/such.png"):
            method("no/such.png")
    with pytest.raises(KeyError, match="no/such.png"):
        store.get_many([store.keys()[0], "no/such.png"])
    assert "no/such.png" not in store
    with pytest.raises(KeyError):
        store.get("x" * 600)


@pytest.mark.parametrize(
    "key, reason",
    [
        ("a" * 508 + ".png", "at most 511"),
        ("", "empty key"),
        ("/abs.png", "absolute"),
        ("a/../b.png", "'..'"),
        ("a//b.png", "empty"),
    ],
)
def test_a_key_the_store_cannot_hold_is_refused_with_a_reason(tmp_path, key, reason):
    data = make_image()
    with pytest.raises(InvalidKeyError, match=reason):
        rebuild(tmp_path / "s.lmdb", [Item(describe(key, data), lambda: data)])
    assert not (tmp_path / "s.lmdb").exists()


def test_an_unknown_major_version_is_refused_saying_which(tmp_path, six_formats):
    path = build_store(tmp_path / "s.lmdb", six_formats)
    env = lmdb.open(str(path), subdir=False, max_dbs=3, lock=False)
    with env.begin(write=True) as txn:
        txn.put(
            b"header",
            b'{"format":"lmdb-image-store","version":"4.0","hash":"sha256","count":6}',
            db=env.open_db(b"meta", txn=txn),
        )
    env.close()
    with pytest.raises(
        UnsupportedVersionError, match=r"version 4\.0 is not supported.*1\.x and 2\.x and 3\.x"
    ):
        len(ImageStore(path))


def test_a_file_that_is_not_a_store_gives_a_clear_error(tmp_path):
    path = tmp_path / "s.lmdb"
    path.write_bytes(b"not lmdb at all" * 1000)
    with pytest.raises(StoreError, match="cannot open as an image store"):
        ImageStore(path).keys()
    with pytest.raises(StoreError, match="no such store file"):
        ImageStore(tmp_path / "missing.lmdb").keys()


def test_a_truncated_store_file_gives_a_clear_error_not_a_crash(tmp_path):
    images = {f"{i}.png": make_image("PNG", (64, 64), seed=i) for i in range(20)}
    path = build_store(tmp_path / "s.lmdb", images)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(StoreError, match="truncated"):
        ImageStore(path).keys()


def test_records_after_and_before_a_key_in_both_layouts(tmp_path):
    """A page's cursor: the keys after one, or before it nearest first, with one seek."""
    from imageshelf.store.writer import write_sharded

    content = {f"k{i:02d}": make_image("PNG", seed=i) for i in range(30)}
    single = build_store(tmp_path / "one.lmdb", content)
    sharded = tmp_path / "shards"
    for batch in range(3):
        chosen = {k: v for k, v in content.items() if int(k[1:]) % 3 == batch}
        write_sharded(sharded, items_for(chosen), shard_bytes=2_000)
    keys = sorted(content)
    for path in (single, sharded):
        with ImageStore(path) as store:
            after = [k for k, _ in store.raw_records(after="k09")]
            before = [k for k, _ in store.raw_records(before="k09")]
            assert after == keys[10:] and before == keys[:9][::-1]
            assert [k for k, _ in store.raw_records(after="k095")] == keys[10:]  # not a key
            assert [k for k, _ in store.raw_records(after="k" * 600)] == []  # overlong
            assert [k for k, _ in store.raw_records(before="k" * 600)] == keys[::-1]
            assert [k for k, _ in store.raw_records(before="a")] == []
            assert [k for k, _ in store.raw_records(after="")] == keys


def test_canonical_json_writes_the_standard_library_bytes_for_any_value():
    """Records are written by orjson where it gives the same bytes as the standard
    library's sorted, compact, unescaped JSON (format.py): any mix of text (controls,
    separators, astral characters), numbers at and past 64 bits, floats, booleans,
    null, lists and objects gives the standard library's bytes, so a store written
    before and after holds the same records."""
    import json

    from imageshelf.store.format import canonical_json
    from imageshelf.store.values import ImageInfo, Record

    rng = random.Random(0)
    points = [*range(0x80), 0xE9, 0x2028, 0x2029, 0xFEFF, 0x1F600, 0xFFFF, 0x10FFFF]
    numbers = [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64, 10**30, 1.5, 1e16, 1e-7, -0.0]

    def text() -> str:
        return "".join(chr(rng.choice(points)) for _ in range(rng.randrange(6)))

    def value(depth: int = 0):
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind < 2:
            return [text, lambda: rng.choice(numbers), lambda: rng.choice([True, None])][kind]()
        if kind in (2, 3):
            return rng.choice([text(), rng.choice(numbers), False])
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {text(): value(depth + 1) for _ in range(rng.randrange(5))}

    for _ in range(20_000):
        v = value()
        expected = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(v) == expected.encode("utf-8"), v
        record = Record("k", ImageInfo("0" * 64, 1, "png", 1, 1), {"v": v}, "train", ("v",))
        expected = json.dumps(
            record.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        assert record.encode() == expected.encode("utf-8")


def test_where_space_cannot_be_reserved_the_store_is_written_without_the_map(tmp_path, monkeypatch):
    """A store is written through LMDB's map only where posix_fallocate can reserve each
    commit's room first (so a full disk is ENOSPC, never SIGBUS). Without it (macOS, a
    file system without fallocate) it is written the slower way: the same records, the
    same bytes back, and again the same file for the same content."""
    images = {f"d/{i}.png": make_image("PNG", (16, 16), seed=i) for i in range(30)}
    mapped = md5(build_store(tmp_path / "mapped.lmdb", images))
    monkeypatch.delattr(os, "posix_fallocate")
    first = md5(build_store(tmp_path / "plain.lmdb", images))
    assert md5(build_store(tmp_path / "again.lmdb", images)) == first != mapped
    with ImageStore(tmp_path / "plain.lmdb") as store:
        assert {key: store.get(key) for key in store} == images
