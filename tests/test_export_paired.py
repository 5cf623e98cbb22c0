"""Paired images out as they came in: the default export writes each mask where it
arrived, beside its image, with a ROLE_file_name column Hugging Face reads as a second
image column; ingested again, the same records come back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from test_paired import voc

from imageshelf.store import ImageStore

from conftest import PROJECT, ingest_and_pack, put, stage

INCOMING = Path("data/incoming")


def exported(out: Path, *args: str) -> str:
    result = stage("export", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return result.output


def ingested_elsewhere(folder: Path, where: Path) -> ImageStore:
    (where / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "params.yaml", where / "params.yaml")
    shutil.copytree(folder, where / "data" / "incoming")
    here = os.getcwd()
    os.chdir(where)
    try:
        return ingest_and_pack()
    finally:
        os.chdir(here)


def test_a_voc_segmentation_store_exports_as_it_came_and_reads_back_the_same(workspace, tmp_path):
    files = voc()
    put(INCOMING, files)
    store = ingest_and_pack()
    out = tmp_path / "out"
    exported(out)
    for rel, data in files.items():
        if "ImageSets" not in rel:
            assert (out / rel).read_bytes() == data  # each where it came from, byte for byte
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    masked = {row["file_name"]: row for row in rows if "mask_file_name" in row}
    assert masked["VOC2012/JPEGImages/2007_000000.jpg"]["mask_file_name"] == (
        "VOC2012/SegmentationClass/2007_000000.png"
    )
    again = ingested_elsewhere(out, tmp_path / "second")
    assert again.header.content_digest == store.header.content_digest


def test_hugging_face_reads_image_and_mask_as_two_columns_of_one_row(workspace, tmp_path):
    files = voc()
    put(INCOMING, files)
    store = ingest_and_pack()
    out = tmp_path / "out"
    exported(out, "--split-folders")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "c"))
    seen = 0
    for split in loaded.values():
        table = split.cast_column("image", datasets.Image(decode=False))
        if "mask" in table.features:
            table = table.cast_column("mask", datasets.Image(decode=False))
        for row in table:
            key = os.path.relpath(row["image"]["path"], out).split("/", 1)[1]
            assert Path(row["image"]["path"]).read_bytes() == store.get(key)
            if store.record(key).paired:
                mask = Path(row["mask"]["path"]).read_bytes()
                assert mask == store.get_paired(key, "mask")
                seen += 1
    assert seen == 3


def test_coco_and_yolo_objects_export_under_the_demo_setup_and_load_as_records(workspace, tmp_path):
    """The README's setup (`make demo`: the demo extra) carries pyarrow, so an export
    whose metadata files differ in columns (COCO at the top, YOLO in a split folder:
    HF refuses JSON Lines files whose features differ) writes metadata.parquet; HF
    gives `objects` as a list of records in both."""
    import tomllib
    from test_annotations_coco import coco2017

    from conftest import hf_load, make_image

    extras = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    pipeline = extras["optional-dependencies"]["pipeline"]
    assert any(dep.startswith("pyarrow") for dep in pipeline)  # demo = pipeline + view
    coco2017(INCOMING / "coco")
    put(
        INCOMING / "yolo",
        {
            "images/train/a.jpg": make_image("JPEG", (40, 30), seed=3),
            "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n",
            "data.yaml": "train: images/train\nnames: [cat]\n",
        },
    )
    store = ingest_and_pack()
    out = tmp_path / "out"
    said = exported(out)
    assert "metadata.parquet" in said
    hf = hf_load(out, tmp_path / "hf")
    rows = {key: row for split in hf.values() for key, row in split.items()}
    assert set(rows) == set(store.keys())
    for key, row in rows.items():
        want = store.metadata(key).get("objects")
        if want:
            assert isinstance(row["objects"], list) and len(row["objects"]) == len(want)
            assert all(isinstance(obj, dict) and obj["category"] for obj in row["objects"])
    again = ingested_elsewhere(out, tmp_path / "second")
    assert again.header.content_digest == store.header.content_digest
