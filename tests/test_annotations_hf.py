"""Hugging Face's imagefolder layouts, built as `datasets`' own tests build them
(tests/packaged_modules/test_imagefolder.py), ingested, and compared image by image with
what `datasets.load_dataset("imagefolder", data_dir=...)` gives for the same folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from imageshelf.store import ImageStore, StoreFile

from conftest import hf_load, ingest_and_pack, make_image, put, report, stage

INCOMING = Path("data/incoming")


def split_folders_on() -> None:
    params = Path("params.yaml")
    params.write_text(
        params.read_text().replace("split_from_folder: false", "split_from_folder: true")
    )


def assert_store_gives_what_hf_gives(store: ImageStore, folder: str, hf: dict) -> None:
    """Every image HF loads is in the store, in HF's split (where HF sees splits), with
    every column HF gives it at the same value."""
    for split, rows in hf.items():
        for path, row in rows.items():
            record = store.record(f"{folder}/{path}")
            if len(hf) > 1 or split != "train":
                assert record.split == split, path
            for name, value in row.items():
                assert record.metadata.get(name) == value, (path, name)


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_one_split_with_metadata_at_the_root_and_in_a_subfolder(workspace, tmp_path, kind):
    image = make_image("JPEG", seed=1)
    rows = [
        ("image_rgb.jpg", "Nice image"),
        ("image_rgb2.jpg", "Nice second image"),
        ("subdir/image_rgb3.jpg", "Nice third image"),
    ]
    metadata = (
        "".join(json.dumps({"file_name": f, "caption": c}) + "\n" for f, c in rows)
        if kind == "jsonl"
        else "file_name,caption\n" + "".join(f"{f},{c}\n" for f, c in rows)
    )
    # datasets' fixture copies one image under three names: each keeps its own caption
    put(INCOMING / "hf", {**{f: image for f, _ in rows}, f"metadata.{kind}": metadata})
    store = ingest_and_pack()
    hf = hf_load(INCOMING / "hf", tmp_path / "hf-cache")
    assert sorted(hf["train"]) == sorted(f for f, _ in rows)
    assert_store_gives_what_hf_gives(store, "hf", hf)
    assert len(store) == 3


def test_split_folders_as_datasets_names_them_with_per_split_metadata(workspace, tmp_path):
    split_folders_on()
    files: dict[str, Any] = {}
    for folder, split in (("train2017", "train"), ("val2017", "val"), ("test-images", "test")):
        names = [f"{split}_{i}.png" for i in range(2)]
        files.update({f"{folder}/{n}": make_image(seed=hash((folder, n)) % 1000) for n in names})
        files[f"{folder}/metadata.jsonl"] = "".join(
            json.dumps({"file_name": n, "text": f"{split} {i}", "score": i}) + "\n"
            for i, n in enumerate(names)
        )
    put(INCOMING / "ds", files)
    store = ingest_and_pack()
    hf = hf_load(INCOMING / "ds", tmp_path / "hf-cache")
    assert {split: len(rows) for split, rows in hf.items()} == {"train": 2, "val": 2, "test": 2}
    assert_store_gives_what_hf_gives(store, "ds", hf)


@pytest.mark.parametrize(
    "name, split",
    [
        ("dev", "val"),
        ("eval", "test"),
        ("training", "train"),
        ("my_valid_set", "val"),
        ("devices", None),
    ],
)
def test_split_folder_names_follow_datasets_keywords(workspace, name, split):
    split_folders_on()
    put(INCOMING, {f"{name}/a.png": make_image(seed=1)})
    store = ingest_and_pack()
    assert ("split" in store.metadata(f"{name}/a.png")) == (split is not None)
    if split is not None:
        assert store.record(f"{name}/a.png").split == split


def test_custom_file_name_columns_and_file_names_lists(workspace, tmp_path):
    put(
        INCOMING / "pairs",
        {
            "a.png": make_image(seed=1),
            "b.png": make_image(seed=2),
            "c.png": make_image(seed=3),
            "metadata.jsonl": json.dumps({"picture_file_name": "a.png", "label": "x"})
            + "\n"
            + json.dumps({"picture_file_name": "b.png", "label": "y"})
            + "\n",
        },
    )
    put(
        INCOMING / "groups",
        {
            "a.png": make_image(seed=4),
            "b.png": make_image(seed=5),
            "metadata.jsonl": json.dumps({"file_names": ["a.png", "b.png"], "scene": "kitchen"})
            + "\n",
        },
    )
    store = ingest_and_pack()
    for folder in ("pairs", "groups"):
        assert_store_gives_what_hf_gives(
            store, folder, hf_load(INCOMING / folder, tmp_path / folder)
        )
    assert store.metadata("pairs/a.png") == {"label": "x"}
    assert store.metadata("groups/b.png") == {"scene": "kitchen"}
    assert "pairs/c.png" in store  # HF loads only listed images; the store keeps every one


def test_metadata_parquet_is_read_with_its_types(workspace, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    put(INCOMING / "pq", {"a.png": make_image(seed=1), "b.png": make_image(seed=2)})
    table = pa.Table.from_pylist(
        [
            {"file_name": "a.png", "label": "cat", "id": "007", "boxes": [[1, 2, 3, 4]]},
            {"file_name": "b.png", "label": "dog", "id": "100", "boxes": []},
        ]
    )
    pq.write_table(table, INCOMING / "pq" / "metadata.parquet")
    store = ingest_and_pack()
    assert_store_gives_what_hf_gives(store, "pq", hf_load(INCOMING / "pq", tmp_path / "c"))
    assert store.metadata("pq/a.png") == {"label": "cat", "id": "007", "boxes": [[1, 2, 3, 4]]}
    assert report("ingest")["annotation_files"] == ["pq/metadata.parquet"]


def test_a_csv_column_is_typed_as_a_whole(workspace):
    put(
        INCOMING,
        {
            "a.png": make_image(seed=1),
            "b.png": make_image(seed=2),
            "c.png": make_image(seed=3),
            "metadata.csv": "file_name,id,score,flag,size\na.png,007,1,true,3\n"
            "b.png,100,2.5,false,4\nc.png,,3,TRUE,big\n",
        },
    )
    store = ingest_and_pack()
    assert {k: store.metadata(k) for k in list(store)} == {
        "a.png": {"id": "007", "score": 1.0, "flag": True, "size": "3"},
        "b.png": {"id": "100", "score": 2.5, "flag": False, "size": "4"},
        "c.png": {"score": 3.0, "flag": True, "size": "big"},
    }


def test_the_same_image_under_three_names_keeps_each_name_and_stores_the_bytes_once(workspace):
    image = make_image("JPEG", seed=1)
    put(
        INCOMING,
        {
            "a.jpg": image,
            "b.jpg": image,
            "sub/c.jpg": image,
            "metadata.csv": "file_name,caption\na.jpg,first\nb.jpg,second\nsub/c.jpg,third\n",
        },
    )
    store = ingest_and_pack()
    assert {k: store.metadata(k)["caption"] for k in list(store)} == {
        "a.jpg": "first",
        "b.jpg": "second",
        "sub/c.jpg": "third",
    }
    assert all(store.get(k) == image for k in list(store))
    pack = report("pack")
    assert pack["duplicates"] == [
        {"key": "b.jpg", "same_as": "a.jpg"},
        {"key": "sub/c.jpg", "same_as": "a.jpg"},
    ]
    # one location for the three keys: the file holds the bytes once
    assert sum(size for _chunk, size in StoreFile("data/images.lmdb").chunk_sizes()) == len(image)
    assert store.header.version == "2.1"
    shutil.rmtree("data/incoming")
    result = stage("validate", "--full")
    assert result.exit_code == 0, result.output


def test_images_and_metadata_in_a_zip_as_datasets_reads_them(workspace, tmp_path):
    import zipfile

    images = {"images/a.png": make_image(seed=1), "images/b.png": make_image(seed=2)}
    (INCOMING / "hf").mkdir(parents=True)
    with zipfile.ZipFile(INCOMING / "hf" / "batch.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in images.items():
            archive.writestr(name, data)
        archive.writestr(
            "metadata.jsonl",
            '{"file_name": "images/a.png", "caption": "first"}\n'
            '{"file_name": "images/b.png", "caption": "second"}\n',
        )
    store = ingest_and_pack()
    assert {k: store.metadata(k) for k in list(store)} == {
        "hf/batch.zip/images/a.png": {"caption": "first"},
        "hf/batch.zip/images/b.png": {"caption": "second"},
    }
    assert all(store.get(f"hf/batch.zip/{name}") == data for name, data in images.items())
    hf = hf_load(INCOMING / "hf", tmp_path / "cache")  # HF extracts the zip somewhere
    assert sorted(row["caption"] for row in hf["train"].values()) == ["first", "second"]
    assert stage("validate").exit_code == 0


def test_a_tar_of_images_and_what_cannot_be_read_from_archives(workspace):
    import io
    import tarfile
    import zipfile

    (INCOMING / "tars").mkdir(parents=True)
    with tarfile.open(INCOMING / "tars" / "batch.tar", "w") as archive:
        for name, data in (("cats/1.png", make_image(seed=1)), ("../escape.png", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("cats/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with zipfile.ZipFile(INCOMING / "tars" / "broken.zip", "w") as archive:
        archive.writestr("x.png", make_image(seed=2))
    data = (INCOMING / "tars" / "broken.zip").read_bytes()
    (INCOMING / "tars" / "broken.zip").write_bytes(data[: len(data) // 2])
    (INCOMING / "tars" / "photos.tar.gz").write_bytes(b"\x1f\x8b\x08\x00")
    store = ingest_and_pack()
    assert store.keys() == ["tars/batch.tar/cats/1.png"]
    assert store.get("tars/batch.tar/cats/1.png") == make_image(seed=1)
    rejects = {r["path"]: r["code"] for r in report("ingest")["rejects"]}
    assert rejects == {
        "tars/batch.tar/../escape.png": "bad_member",
        "tars/batch.tar/cats/link.png": "bad_member",
        "tars/broken.zip": "unreadable",
        "tars/photos.tar.gz": "archive",
    }
    assert stage("validate").exit_code == 0


def test_a_table_that_names_an_image_twice_says_so(workspace):
    put(
        INCOMING,
        {
            "a.png": make_image(seed=1),
            "labels.csv": "file_name,label\na.png,cat\na.png,dog\n",
        },
    )
    store = ingest_and_pack()
    assert store.metadata("a.png") == {"label": "dog"}  # the later row, as HF's last row
    notes = report("ingest")["annotation_notes"]
    assert any("labels.csv: 1 row(s) name an image an earlier row named" in n for n in notes)
