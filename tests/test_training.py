"""The training side: splits, filters, the PyTorch dataset and WebDataset export."""

from __future__ import annotations

import io
import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from imageshelf.read.dataset import ImageDataset, collate
from imageshelf.read.query import QueryError, compile_where, select
from imageshelf.records.splits import assign_split
from imageshelf.store import ImageStore, Record
from imageshelf.store.writer import Item, rebuild

from conftest import build_store, make_image, put, stage

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


# ------------------------------------------------------------------ stable splits


def _packed(workspace: Path, files: dict[str, bytes | str]) -> ImageStore:
    put(workspace / "data" / "incoming", files)
    assert stage("ingest").exit_code == 0
    result = stage("pack")
    assert result.exit_code == 0, result.output
    return ImageStore(workspace / "data" / "images.lmdb")


def test_splits_follow_the_ratios_and_adding_images_moves_none(workspace):
    first = {f"a/{i:04d}.png": make_image("PNG", (4, 4), seed=i) for i in range(1000)}
    store = _packed(workspace, first)
    before = {r.key: r.split for r in store.records()}
    store.close()
    counts = Counter(before.values())
    assert set(counts) == {"train", "val", "test"}
    assert 740 <= counts["train"] <= 860 and 60 <= counts["val"] <= 140  # 1000 draws

    more = {f"b/{i:04d}.png": make_image("PNG", (4, 4), seed=5000 + i) for i in range(500)}
    store = _packed(workspace, more)
    after = {r.key: r.split for r in store.records()}
    assert {k: after[k] for k in before} == before  # nobody moved
    assert all(after[k] for k in after)
    assert json.loads(Path("reports/pack.json").read_text())["resplit"] == 0


def test_changing_the_ratios_moves_images_and_metadata_splits_stay(workspace):
    files = {f"x/{i:03d}.png": make_image("PNG", (4, 4), seed=i) for i in range(200)}
    files["x/labels.csv"] = "file,label,split\n000.png,cat,test\n"
    store = _packed(workspace, files)
    assert store.record("x/000.png").split == "test"  # named by its metadata
    store.close()
    params = Path("params.yaml")
    params.write_text(
        params.read_text().replace("train: 0.8", "train: 0.5").replace("val: 0.1", "val: 0.4")
    )
    result = stage("pack")
    assert result.exit_code == 0 and "moved to another split" in result.output
    store = ImageStore("data/images.lmdb")
    splits = {r.key: r.split for r in store.records()}
    assert splits["x/000.png"] == "test"
    assert {k: v for k, v in splits.items() if k != "x/000.png"} == {
        k: assign_split(k, {"train": 0.5, "val": 0.4, "test": 0.1})
        for k in splits
        if k != "x/000.png"
    }


@pytest.mark.parametrize(
    "bad, says",
    [
        ("{train: 0.8, val: 0.1}", "add up to 1"),
        ("{train: -1, val: 2}", "from 0 to 1"),
        ("[train, val]", "mapping"),
    ],
)
def test_bad_split_ratios_are_one_line_errors(workspace, bad, says):
    params = Path("params.yaml")
    text = params.read_text()
    start = text.index("  split:")
    end = text.index("stats:")
    params.write_text(text[:start] + f"  split: {bad}\n\n" + text[end:])
    put(workspace / "data" / "incoming", {"a.png": make_image()})
    stage("ingest")
    result = stage("pack")
    assert result.exit_code != 0
    assert says in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ filters


@pytest.fixture
def flowers(tmp_path) -> ImageStore:
    images, meta = {}, {}
    for i in range(60):
        key = f"{['rose', 'tulip', 'daisy'][i % 3]}/{i:03d}.png"
        images[key] = make_image("PNG", (8 + i, 8), seed=i)
        meta[key] = {"label": key.split("/")[0], "score": i / 10, "ok": i % 2 == 0}
    meta["rose/000.png"]["text"] = 'say "hi"'
    path = tmp_path / "flowers.lmdb"
    rebuild(path, [Item(_with(r, RATIOS), read) for r, read in _described(images, meta)])
    return ImageStore(path)


def _described(images, meta):
    from imageshelf.images.recognise import describe

    return [(describe(k, v, meta[k]), lambda v=v: v) for k, v in images.items()]


def _with(record: Record, ratios) -> Record:
    from imageshelf.records.splits import with_split

    return with_split(record, ratios)


def keys(store, where):
    return [r.key for r in select(store, where)]


def test_filters_by_equality_set_range_and_split(flowers):
    assert len(keys(flowers, "label=rose")) == 20
    assert len(keys(flowers, "label=rose,tulip")) == 40
    assert len(keys(flowers, "label!=rose")) == 40
    assert keys(flowers, ["label=daisy", "width>=65"]) == ["daisy/059.png"]
    assert keys(flowers, "width=10..12") == ["daisy/002.png", "rose/003.png", "tulip/004.png"]
    assert len(keys(flowers, "score<1")) == 10
    assert len(keys(flowers, "ok=true")) == 30
    assert keys(flowers, 'text=say "hi"') == ["rose/000.png"]
    assert keys(flowers, "key=tulip/001.png") == ["tulip/001.png"]
    by_split = Counter(r.split for r in flowers.records())
    assert len(keys(flowers, "split=val")) == by_split["val"]
    assert len(keys(flowers, {"label": {"rose", "tulip"}, "width": lambda w: w < 20})) == 8
    with pytest.raises(QueryError, match="no image has a field 'no_such_field'; the fields"):
        keys(flowers, "no_such_field=1")


@pytest.mark.parametrize("bad", ["label", "=rose", "width>=", ">=3"])
def test_unreadable_conditions_say_how_to_write_them(bad):
    with pytest.raises(QueryError, match="FIELD=VALUE"):
        compile_where(bad)


def test_ls_where_on_the_command_line(workspace):
    files = {
        f"{lab}/{i}.png": make_image("PNG", (4, 4), seed=i)
        for i, lab in enumerate(["rose", "tulip", "rose", "daisy"])
    }
    files["labels.csv"] = "file,label\n" + "".join(f"{k},{k.split('/')[0]}\n" for k in files)
    _packed(workspace, files).close()
    result = stage("ls", "--where", "label=rose")
    assert result.exit_code == 0
    assert [line.split("\t")[-1] for line in result.stdout.splitlines()] == [
        "rose/0.png",
        "rose/2.png",
    ]
    bad = stage("ls", "--where", "label")
    assert bad.exit_code == 2 and "FIELD=VALUE" in bad.output


def test_filtering_100000_records_reads_no_image_bytes(tmp_path):
    """The records sit together at the front of the file: a filter over 100,000 of them
    brings only those pages into memory, never the images' (checked with mincore)."""
    import os

    path = tmp_path / "big.lmdb"
    data = bytes(range(256)) * 4  # 1 KB per image, 100 MB of image pages

    def image(i: int) -> bytes:  # each its own bytes: the same bytes are stored once
        return i.to_bytes(4, "big") + data[4:]

    rebuild(
        path,
        lambda: (
            Item(
                Record(f"{i:06d}.jpg", _info(image(i)), {"label": f"label{i % 50}"}, "train"),
                lambda i=i: image(i),
                trusted=True,
            )
            for i in range(100_000)
        ),
    )
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # start cold
    os.close(fd)
    store = ImageStore(path)
    start = time.perf_counter()
    found = keys(store, "label=label7")
    elapsed = time.perf_counter() - start
    assert len(found) == 2000
    resident, size = _resident_bytes(path), path.stat().st_size
    print(
        f"filtered 100,000 records in {elapsed:.2f} s; {resident / 1e6:.1f} MB of the "
        f"{size / 1e6:.0f} MB file was read"
    )
    assert size > 100_000_000
    # Records and index are a fifth of the file, images the rest: the kernel's
    # read-around may bring in every record page, never the images'.
    assert resident < size * 0.4


def _resident_bytes(path: Path) -> int:
    """How much of a file is in the page cache: mincore(2) over a fresh mapping of it
    (mapping a file reads none of it)."""
    import ctypes
    import mmap
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size, page = path.stat().st_size, mmap.PAGESIZE
    with open(path, "rb") as fh:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fh.fileno(), 0)
    assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (ctypes.c_ubyte * ((size + page - 1) // page))()
        assert libc.mincore(address, size, pages) == 0, os.strerror(ctypes.get_errno())
        return sum(flag & 1 for flag in pages) * page
    finally:
        libc.munmap(address, size)


def _info(data: bytes):
    import hashlib

    from imageshelf.store import ImageInfo

    return ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "jpeg", 1, 1)


# ------------------------------------------------------------------ the dataset


def test_dataset_gives_original_bytes_or_decoded_images(flowers, six_formats, tmp_path):
    path = build_store(
        tmp_path / "six.lmdb", six_formats, {k: {"label": k.split("/")[0]} for k in six_formats}
    )
    raw = ImageDataset(path)
    assert len(raw) == 6
    got = dict((meta["key"], image) for image, meta in (raw[i] for i in range(len(raw))))
    assert got == six_formats  # byte-identical
    decoded = ImageDataset(path, decode="RGB")
    image, meta = decoded[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert meta["label"] == meta["key"].split("/")[0]
    as_is = ImageDataset(path, decode=True, where="format=gif")
    assert len(as_is) == 1 and as_is[0][0].mode == "P"
    with pytest.raises(TypeError, match="decode"):
        ImageDataset(path, decode=3)


def test_dataset_offers_classes_and_class_to_idx_like_torchvision(flowers):
    everything = ImageDataset(flowers)
    assert everything.classes == ["daisy", "rose", "tulip"]
    assert everything.class_to_idx == {"daisy": 0, "rose": 1, "tulip": 2}
    some = ImageDataset(flowers, where="label!=rose", target_transform=lambda m: m["label"])
    assert some.classes == ["daisy", "tulip"]
    assert {some.class_to_idx[some[i][1]] for i in range(len(some))} == {0, 1}


def test_dataset_filters_split_and_transforms(flowers):
    roses = ImageDataset(
        flowers,
        where={"label": "rose"},
        split="train",
        transform=len,
        target_transform=lambda m: m["label"],
    )
    assert 0 < len(roses) < 20
    size, label = roses[0]
    assert label == "rose" and size == flowers.info(roses.keys[0]).size
    wide = ImageDataset(flowers.path, filter=lambda f: f["width"] > 60)
    assert len(wide) == 7
    with pytest.raises(IndexError):
        wide[7]


def _to_tensor(image: Image.Image) -> torch.Tensor:
    image = image.resize((16, 16))
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(16, 16, 3)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_with_workers_under_fork_and_spawn(flowers, start_method):
    dataset = ImageDataset(flowers.path, decode="RGB", transform=_to_tensor)
    loader = DataLoader(
        dataset,
        batch_size=8,
        shuffle=True,
        num_workers=2,
        collate_fn=collate,
        multiprocessing_context=multiprocessing.get_context(start_method),
    )
    seen = []
    for images, metas in loader:
        assert images.shape[1:] == (16, 16, 3) and images.dtype == torch.uint8
        assert len(metas) == len(images)
        seen += [m["key"] for m in metas]
    assert sorted(seen) == sorted(flowers.keys())  # every image once, from two workers


def test_dataloader_with_raw_bytes_and_persistent_workers(flowers):
    dataset = ImageDataset(flowers.path, split="val")
    assert len(dataset) > 0
    loader = DataLoader(
        dataset, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=collate
    )
    for _epoch in range(2):
        got = {
            m["key"]: image
            for images, metas in loader
            for image, m in zip(images, metas, strict=True)
        }
        assert got == {k: flowers.get(k) for k in dataset.keys}


# ------------------------------------------------------------------ export


def test_export_webdataset_shards_read_back_with_webdataset(flowers, tmp_path, monkeypatch):
    import webdataset as wds

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "shards"
    result = stage(
        "export",
        "--store",
        str(flowers.path),
        "--out",
        str(out),
        "--as",
        "webdataset",
        "--where",
        "label=rose,tulip",
        "--shard-images",
        "15",
    )
    assert result.exit_code == 0, result.output
    shards = sorted(out.glob("*.tar"))
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == 40
    for sample in samples:
        meta = json.loads(sample["json"])
        assert sample["png"] == flowers.get(meta["key"])  # the original bytes
        assert meta["label"] in ("rose", "tulip") and meta["split"]
    first = [s.read_bytes() for s in shards]
    stage(
        "export",
        "--store",
        str(flowers.path),
        "--out",
        str(out),
        "--as",
        "webdataset",
        "--where",
        "label=rose,tulip",
        "--shard-images",
        "15",
        "--overwrite",
    )
    assert [s.read_bytes() for s in shards] == first  # deterministic
    again = stage(
        "export",
        "--store",
        str(flowers.path),
        "--out",
        str(out),
        "--as",
        "webdataset",
        "--where",
        "label=rose,tulip",
        "--overwrite",
    )  # one shard now: the two older ones are not this export's, so they stay, named
    assert [s.name for s in sorted(out.glob("*"))] == [s.name for s in shards]
    assert "2 older shard file(s)" in again.output and "delete them" in again.output


def test_webdataset_names_keep_dotted_keys_apart(tmp_path, monkeypatch):
    images = {
        "a/x.1.png": make_image(seed=1),
        "a/x_1.png": make_image(seed=2),
        "a/x.1": make_image(seed=3),
    }
    path = build_store(tmp_path / "dots.lmdb", images)
    monkeypatch.chdir(tmp_path)
    assert stage("export", "--store", str(path), "--out", "w", "--as", "webdataset").exit_code == 0
    import webdataset as wds

    samples = list(wds.WebDataset(str(tmp_path / "w" / "shard-000000.tar"), shardshuffle=False))
    assert sorted(json.loads(s["json"])["key"] for s in samples) == sorted(images)
    assert all(s["png"] == images[json.loads(s["json"])["key"]] for s in samples)


def test_export_filtered_files_are_byte_identical(flowers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = stage(
        "export",
        "--store",
        str(flowers.path),
        "--out",
        "out",
        "--label",
        "daisy",
        "--split",
        "train",
        "--split",
        "val",
    )
    assert result.exit_code == 0, result.output
    written = {
        str(p.relative_to("out")): p.read_bytes() for p in Path("out").rglob("*") if p.is_file()
    }
    expected = {
        r.key
        for r in flowers.records()
        if r.metadata["label"] == "daisy" and r.split in ("train", "val")
    }
    listed = [json.loads(line) for line in written.pop("metadata.jsonl").splitlines()]
    assert set(written) == expected and expected
    assert all(flowers.get(k) == v for k, v in written.items())
    assert [line["file_name"] for line in listed] == sorted(expected)
    assert all(line["label"] == "daisy" for line in listed)


def test_dataset_iterates_in_key_order_with_valid_images(flowers):
    dataset = ImageDataset(flowers, where="label=tulip")
    metas = []
    for image, meta in dataset:  # plain iteration, as without a DataLoader
        Image.open(io.BytesIO(image)).verify()
        metas.append(meta)
    assert len(metas) == 20  # the tulips: a third of 60
    assert [m["key"] for m in metas] == sorted(m["key"] for m in metas) == dataset.keys


def test_the_core_never_imports_torch(flowers):
    """PyTorch is an optional extra: the store, the stages and the dataset work without
    importing it (collate imports it only when handed tensors)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import imageshelf.cli.main, imageshelf.read.dataset, imageshelf.read.query\n"
        "import imageshelf.export\n"
        "from imageshelf.read.dataset import ImageDataset, collate\n"
        f"ds = ImageDataset({str(flowers.path)!r}, decode='RGB', split='train')\n"
        "images, metas = collate([ds[0], ds[1]])\n"
        "assert len(images) == 2 and metas[0]['split'] == 'train'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
