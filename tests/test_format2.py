"""Format 2.0: image bytes back to back in chunks, indexed fields, and every 1.x store
still read (docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import lmdb
import pytest
from legacy import expected_1x, write_1x_store

from imageshelf.read.query import select
from imageshelf.stages.validate import validate_store
from imageshelf.store import ImageInfo, ImageStore, Record
from imageshelf.store.build import Item
from imageshelf.store.format import CHUNK_KEY, LOCATION
from imageshelf.store.writer import rebuild, write_sharded

from conftest import make_image, put, stage


def _expected() -> dict[str, dict[str, str | None]]:
    return expected_1x()


@pytest.mark.parametrize("name", ["images.lmdb", "images"])
def test_a_store_written_in_1_2_still_opens_reads_and_validates(tmp_path, name):
    copy = write_1x_store(tmp_path / name)
    store = ImageStore(copy)
    expected = _expected()
    assert store.keys() == sorted(expected)
    for key, want in expected.items():
        assert hashlib.sha256(store.get(key)).hexdigest() == want["sha256"]
        record = store.record(key)
        assert (record.metadata["label"], record.split) == (want["label"], want["split"])
    assert [r.key for r in select(store, "label=cat")] == sorted(k for k in expected if "cat" in k)
    assert not validate_store(ImageStore(copy), full=True).failures


def _run(*args: str) -> str:
    result = stage(*args)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_next_pack_rewrites_a_1_2_store_in_2_0_with_the_same_records(workspace):
    store_path = workspace / "data" / "images.lmdb"
    write_1x_store(store_path)
    before = list(ImageStore(store_path).records())
    _run("ingest")
    # Rewritten in 2.0, and measured once: a 1.x store predates properties (its images
    # are not in data/incoming/: pack measures the bytes it holds).
    assert "8 measured" in _run("pack")
    store = ImageStore(store_path)
    assert store.header.version == "2.0" and store.header.indexed == ("label", "split")
    after = list(store.records())
    assert all(record.props is not None for record in after)
    assert [r.replace(props=None) for r in after] == before  # the records otherwise unchanged
    for key, want in _expected().items():
        assert hashlib.sha256(store.get(key)).hexdigest() == want["sha256"]
    _run("validate")
    assert "unchanged, not rewritten" in _run("pack")

    params = workspace / "params.yaml"
    params.write_text(params.read_text().replace("index: [label, split]", "index: [label]"))
    assert "rewritten to index label" in _run("pack")
    assert ImageStore(store_path).header.indexed == ("label",)
    _run("validate")


def test_a_sharded_1_2_store_is_rewritten_shard_by_shard_in_2_0(workspace):
    params = workspace / "params.yaml"
    text = params.read_text().replace("layout: single", "layout: sharded")
    params.write_text(text.replace("store: data/images.lmdb", "store: data/images"))
    folder = workspace / "data" / "images"
    write_1x_store(folder)
    put(workspace / "data" / "incoming", {"birds/000.png": make_image(seed=77)})
    _run("ingest")
    _run("pack")
    store = ImageStore(folder)
    assert len(store.parts) == 3
    assert {store.part(p.name).header.version for p in store.parts} == {"2.0"}
    assert len(store) == 9
    _run("validate")


# ------------------------------------------------------------------ size


def _items(count: int, size: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    items = []
    for i in range(count):
        data = rng.randbytes(int(size * (0.5 + rng.random())))
        key = f"class_{i % 20:02d}/{i:06d}.jpg"
        info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "jpeg", 64, 64)
        record = Record(key, info, {"label": key[:8]}, "val" if i % 10 == 0 else "train")
        items.append(Item(record, lambda data=data: data))
    return items


@pytest.mark.parametrize("size", [4_000, 20_000, 200_000])
def test_the_store_is_within_3_percent_of_what_it_holds(tmp_path, size):
    items = _items(max(200, 8_000_000 // size), size)
    path = tmp_path / "s.lmdb"
    rebuild(path, items)
    images = sum(item.record.info.size for item in items)
    records = sum(len(item.record.key) + len(item.record.encode()) for item in items)
    assert path.stat().st_size <= 1.03 * (images + records)
    if size >= 20_000:  # the records are 1% of the images or less
        assert path.stat().st_size <= 1.03 * images


# ------------------------------------------------------------------ indexed fields

WHERE = [
    "label=a",
    "label=a,b",
    "label=zz",
    "meta.label=b",
    "split=val",
    "split=val,test",
    ["label=a", "split=train"],
    ["split=train", "width>=10"],
    {"label": "b"},
    {"label": {"a", "c"}},
    {"split": "val", "label": "c"},
    "label=7",
    "label!=a",
]


def test_filters_through_the_index_give_what_a_scan_gives(tmp_path):
    rng = random.Random(3)
    images = {}
    metadata = {}
    for i in range(300):
        key = f"{rng.choice('xyz')}/{i:04d}.png"
        data = make_image(size=(8, 8), seed=i)
        images[key] = data
        label = rng.choice(["a", "b", "c", 7, None, ["a"], "x" * 600, "ünï"])
        metadata[key] = {} if label is None else {"label": label}
        if i % 7 == 0:
            metadata[key]["split"] = "test"
    from conftest import items_for

    items = items_for(images, metadata)
    indexed = tmp_path / "indexed.lmdb"
    rebuild(indexed, items)
    plain = tmp_path / "plain.lmdb"
    rebuild(plain, items, indexed=())
    sharded = tmp_path / "sharded"
    write_sharded(sharded, items[:150])
    write_sharded(sharded, items[150:])

    with_index, without, shards = ImageStore(indexed), ImageStore(plain), ImageStore(sharded)
    # A label too long to be a key leaves `label` out of the index, never half in it.
    assert with_index.header.version == "2.0"
    assert with_index.part("indexed.lmdb").indexed == ("split",)
    short = tmp_path / "short.lmdb"
    rebuild(short, [i for i in items if metadata[i.record.key].get("label") != "x" * 600])
    assert ImageStore(short).part("short.lmdb").indexed == ("label", "split")
    for where in WHERE:
        want = [r.key for r in select(without, where)]
        assert [r.key for r in select(with_index, where)] == want, where
        assert [r.key for r in select(shards, where)] == want, where
        short_want = [k for k in want if metadata[k].get("label") != "x" * 600]
        assert [r.key for r in select(ImageStore(short), where)] == short_want, where
    assert ImageStore(short).indexed_records("label", ["a"]) is not None
    assert ImageStore(plain).indexed_records("label", ["a"]) is None


def _tamper(path: Path, db_name: bytes, key: bytes, change) -> None:
    env = lmdb.open(str(path), subdir=False, lock=False, max_dbs=5)
    with env.begin(write=True) as txn:
        db = env.open_db(db_name, txn)
        txn.put(key, change(txn.get(key, db=db)), db=db)
    env.close()


def test_validate_finds_an_index_or_a_location_that_does_not_match_the_records(tmp_path):
    from conftest import items_for

    images = {f"c/{i:03d}.png": make_image(size=(8, 8), seed=i) for i in range(20)}
    items = items_for(
        images, {k: {"label": "cat" if i % 2 else "dog"} for i, k in enumerate(images)}
    )
    good = tmp_path / "good.lmdb"
    rebuild(good, items)

    def failures(path: Path) -> list[str]:
        return [f["problem"] for f in validate_store(ImageStore(path), full=True).failures]

    assert failures(good) == []
    hidden = tmp_path / "hidden.lmdb"
    shutil.copy(good, hidden)
    # The index no longer lists the first cat: a filter would miss it.
    _tamper(hidden, b"fields", b"label\0cat", lambda raw: raw[3 + raw[2] :])
    assert any("field index does not match" in p for p in failures(hidden))

    moved = tmp_path / "moved.lmdb"
    shutil.copy(good, moved)
    record = ImageStore(good).part("good.lmdb")
    second = images["c/001.png"]

    def shift(raw: bytes) -> bytes:
        chunk, at, size = LOCATION.unpack_from(raw)
        return LOCATION.pack(chunk, at + 1, size)

    _tamper(moved, b"locations", b"c/001.png", shift)
    problems = failures(moved)
    assert any("not where the layout puts them" in p for p in problems), problems
    assert any("do not match their sha256" in p for p in problems), problems
    assert len(record.get("c/001.png")) == len(second)
    assert CHUNK_KEY.size == 4


def test_a_damaged_header_is_read_as_json_reads_it_or_refused_in_one_line():
    """The header is parsed by json: bytes damaged anywhere give the header json reads
    there, or a StoreError naming the file, never another exception."""
    from imageshelf.store import Header, StoreError

    raw = Header(3, 10, "ab" * 32, indexed=("label", "a,b")).encode()
    assert Header.decode(raw, "s.lmdb") == Header(3, 10, "ab" * 32, indexed=("label", "a,b"))
    rng = random.Random(11)
    alphabet = b'{}[]",:\\0123456789abc_-. \xc3\xa9\x00'
    for _ in range(3000):
        damaged = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(damaged))
            if rng.random() < 0.5:
                damaged[at] = rng.choice(alphabet)
            else:
                del damaged[at]
        try:
            header = Header.decode(bytes(damaged), "s.lmdb")
        except StoreError as exc:
            assert str(exc).startswith("s.lmdb: ") and "\n" not in str(exc)
            continue
        assert header.encode() == Header.decode(header.encode(), "s.lmdb").encode()
        assert header.count == json.loads(bytes(damaged))["count"]


def test_the_catalog_lists_each_record_with_its_key_exactly_as_encoding_it_would(tmp_path):
    # The catalog splices "key" into each stored record's JSON instead of parsing and
    # encoding it again: the lines must be the same bytes encoding gives, whatever the
    # metadata holds (text that looks like a field, nested objects, other scripts).
    from imageshelf.records.manifest import encode_line
    from imageshelf.versions.catalog import write_catalog

    tricky = [
        ("a.png", {}, None, ()),
        ("b/ü ✓.png", {"label": 'x","meta":{', "z": [1, {"meta": 2}]}, "train", ()),
        ("c.png", {"meta": {"meta": "meta"}, "label": "cat"}, "val", ("label", "meta")),
        ("d.png", {"text": "line\nbreak \\ \u0001"}, "test", ("text",)),
    ]
    items = []
    for number, (key, meta, split, annotated) in enumerate(tricky):
        data = make_image("PNG", seed=number)
        info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "png", 32, 24)
        record = Record(key, info, meta, split, annotated)
        items.append(Item(record, lambda data=data: data))
    rebuild(tmp_path / "images.lmdb", items)
    store = ImageStore(tmp_path / "images.lmdb")
    write_catalog(store, tmp_path / "catalog")
    lines = (tmp_path / "catalog" / "images.jsonl").read_bytes()
    assert lines == b"".join(encode_line(record) for record in store.records())
    assert lines.count(b"\n") == len(tricky)
