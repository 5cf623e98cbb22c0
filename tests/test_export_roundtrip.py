"""A lossless way out: `imageshelf export` writes what the peers' loaders read back with
the same images, splits and fields (datasets' imagefolder; pycocotools; ultralytics'
documented rule), and ingesting any export into an empty project gives the same content
digest."""

from __future__ import annotations

import copy
import json
import os
import shutil
import urllib.parse
from pathlib import Path

from pycocotools.coco import COCO
from test_annotations_coco import coco2017
from test_annotations_yolo import COCO8_YAML, H, W, ultralytics_rule

from imageshelf.store import ImageStore

from conftest import PROJECT, data_of, hf_load, ingest_and_pack, make_image, put, stage

INCOMING = Path("data/incoming")


def set_params(**rules: str) -> None:
    params = Path("params.yaml")
    text = params.read_text()
    for name, value in rules.items():
        text = text.replace(f"{name}: false", f"{name}: {value}")
    params.write_text(text)


def export(out: Path, *args: str) -> str:
    result = stage("export", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return result.output


def ingested_elsewhere(out: Path, project: Path) -> ImageStore:
    """The export dropped into an empty project with the same params.yaml, packed."""
    here = Path.cwd()
    (project / "data").mkdir(parents=True)
    shutil.copy(here / "params.yaml", project / "params.yaml")
    shutil.copytree(out, project / "data" / "incoming")
    os.chdir(project)
    try:
        return ingest_and_pack()
    finally:
        os.chdir(here)


def test_imagefolder_export_with_split_folders_reads_back_in_datasets_and_ingest(
    workspace, tmp_path
):
    set_params(split_from_folder="true")
    files: dict = {}
    for folder in ("train", "validation"):
        files[f"ds/{folder}/a.png"] = make_image(seed=len(folder))
        files[f"ds/{folder}/b.png"] = make_image(seed=len(folder) + 1)
        files[f"ds/{folder}/metadata.csv"] = (
            f"file_name,caption,id,score\na.png,{folder} a,007,1\nb.png,{folder} b,100,2.5\n"
        )
    put(INCOMING, files)
    store = ingest_and_pack()
    out = tmp_path / "out"
    said = export(out)
    assert "ds/train/metadata.jsonl" in said and "ds/validation/metadata.jsonl" in said
    hf = hf_load(out / "ds", tmp_path / "hf-cache")
    assert {split: sorted(rows) for split, rows in hf.items()} == {
        "train": ["train/a.png", "train/b.png"],
        "val": ["validation/a.png", "validation/b.png"],
    }
    for split, rows in hf.items():
        for path, row in rows.items():
            record = store.record(f"ds/{path}")
            assert record.split == split and row == record.metadata, path
    again = ingested_elsewhere(out, tmp_path / "second")
    # The same data; only where `split` came from differs: the folder rule here, the
    # exported metadata file there (`annotated` says which fields a tracked rule set).
    assert data_of(again) == data_of(store)
    assert store.record("ds/train/a.png").annotated == ("split",)


def test_columns_json_lines_cannot_carry_go_to_metadata_parquet_and_read_back(workspace, tmp_path):
    # COCO polygons beside an RLE mask (one objects column, two shapes), and a JSON
    # Lines file whose "id" holds text beside a number: HF's Arrow reader refuses both.
    coco2017(INCOMING / "coco")
    put(
        INCOMING,
        {
            "misc/train/a.png": make_image(seed=1),
            "misc/train/b.png": make_image(seed=2),
            "misc/train/metadata.jsonl": '{"file_name": "a.png", "id": "007"}\n'
            '{"file_name": "b.png", "id": 100, "note": null}\n',
        },
    )
    store = ingest_and_pack()
    out = tmp_path / "out"
    said = export(out)
    assert "metadata.parquet" in said and "metadata.jsonl" not in said
    hf = hf_load(out, tmp_path / "hf-cache")
    assert sorted([*hf["train"], *hf["val"]]) == sorted(store.keys())
    assert hf["train"]["misc/train/b.png"]["id"] == "100"  # text, as JSON text
    # HF gives COCO objects as a list of records, only the part whose values conflict
    # (polygons beside an RLE mask) as JSON text; every other column as it is.
    row = hf["val"]["coco/val2017/000000000139.jpg"]
    stored = store.metadata("coco/val2017/000000000139.jpg")
    assert isinstance(row["objects"], list) and len(row["objects"]) == len(stored["objects"])
    for got, want in zip(row["objects"], stored["objects"], strict=True):
        assert json.loads(got["segmentation"]) == want["segmentation"]
        assert {k: v for k, v in got.items() if v is not None and k != "segmentation"} == {
            k: v for k, v in want.items() if k != "segmentation"
        }
    assert row["coco_image"] == stored["coco_image"]
    again = ingested_elsewhere(out, tmp_path / "second")
    assert again.header.content_digest == store.header.content_digest


def test_coco_export_reads_in_pycocotools_and_back(workspace, tmp_path):
    coco2017(INCOMING / "coco")
    put(INCOMING, {"coco/val2017/labels.csv": "file_name,label\n000000000139.jpg,busy\n"})
    store = ingest_and_pack()
    out = tmp_path / "out"
    export(out, "--as", "coco")
    coco = COCO(str(out / "annotations" / "instances.json"))
    by_file = {image["file_name"]: image for image in coco.imgs.values()}
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for record in store.records():
        image = by_file[record.key]
        assert (image["width"], image["height"]) == (record.info.width, record.info.height)
        assert os.path.exists(out / image["file_name"])
        anns = coco.imgToAnns[image["id"]]
        assert [
            {**{k: v for k, v in a.items() if k != "image_id"}, "category": names[a["category_id"]]}
            for a in anns
        ] == record.metadata.get("objects", [])
    captions = COCO(str(out / "annotations" / "captions.json"))
    assert len(captions.anns) == 3
    # the categories come back whole: supercategory, keypoint names, skeleton
    from test_annotations_coco import CATEGORIES, KEYPOINTS

    given = {c["id"]: c for c in CATEGORIES}
    for category in KEYPOINTS["categories"]:
        given[category["id"]] = {**given.get(category["id"], {}), **category}
    for number in coco.getCatIds():
        assert coco.loadCats(number)[0] == given[number]
    again = ingested_elsewhere(out, tmp_path / "second")
    assert again.header.content_digest == store.header.content_digest


def test_yolo_export_reads_by_ultralytics_rule_and_back(workspace, tmp_path):
    labels = {
        "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.9 0.1 0.5 0.9\n",
        "labels/val/b.txt": "2 0.4 0.6 0.2 0.1\n",
    }
    put(
        INCOMING / "coco8",
        {
            "data.yaml": COCO8_YAML,
            "images/train/a.jpg": make_image("JPEG", (W, H), seed=1),
            "images/val/b.jpg": make_image("JPEG", (W, H), seed=2),
            "images/val/c.jpg": make_image("JPEG", (W, H), seed=3),
            **labels,
        },
    )
    store = ingest_and_pack()
    out = tmp_path / "out"
    export(out, "--as", "yolo")
    names = {0: "person", 1: "bicycle", 2: "car"}
    for rel, text in labels.items():
        written = (out / "coco8" / rel).read_text()
        key = "coco8/" + rel.replace("labels/", "images/").replace(".txt", ".jpg")
        assert [ultralytics_rule(ln, names) for ln in written.splitlines()] == [
            ultralytics_rule(ln, names) for ln in text.splitlines()
        ]
        assert store.metadata(key)["objects"] == [
            ultralytics_rule(ln, names) for ln in written.splitlines()
        ]
    assert (out / "train.txt").read_text() == "./coco8/images/train/a.jpg\n"
    assert 'names:\n  0: "person"' in (out / "data.yaml").read_text()
    again = ingested_elsewhere(out, tmp_path / "second")
    assert again.header.content_digest == store.header.content_digest


def test_the_docs_say_what_each_export_gives():
    readme = (PROJECT / "README.md").read_text()
    assert "--as coco" in readme and "docs/READING.md" in readme
    reading = (PROJECT / "docs" / "READING.md").read_text()
    for layout in (
        "--as coco",
        "--as yolo",
        "--as label-studio",
        "--as webdataset",
        "metadata.parquet",
    ):
        assert layout in reading


def test_split_folders_give_hugging_face_the_stores_own_splits(workspace, tmp_path):
    """Splits pack drew from each key's hash have no folder of their own; --split-folders
    writes each image under its split's folder, where HF reads the split."""
    put(INCOMING, {f"cats/{i:02d}.png": make_image(seed=i) for i in range(30)})
    put(INCOMING, {"cats/labels.csv": "file_name,caption\n00.png,the first\n"})
    store = ingest_and_pack()
    splits = {r.key: r.split for r in store.records()}
    assert set(splits.values()) > {"train"}  # the hash gave more than one split
    out = tmp_path / "out"
    export(out, "--split-folders")
    hf = hf_load(out, tmp_path / "hf-cache")
    got = {path.split("/", 1)[1]: split for split, rows in hf.items() for path in rows}
    assert got == splits
    assert (
        hf[splits["cats/00.png"]][f"{splits['cats/00.png']}/cats/00.png"]["caption"] == "the first"
    )


def test_a_label_studio_export_round_trips_through_a_labelling_session(workspace, tmp_path):
    coco2017(INCOMING / "coco")
    put(
        INCOMING / "cls",
        {"a.png": make_image(seed=7), "metadata.csv": "file_name,label,text\na.png,cat,TOTAL 3\n"},
    )
    store = ingest_and_pack()
    before = {key: store.metadata(key) for key in store}
    out = tmp_path / "ls"
    notes = export(out, "--as", "label-studio")
    assert "an object's RLE mask goes as its box" in notes  # the crowd
    tasks = json.loads((out / "tasks.json").read_text())
    config = (out / "label_config.xml").read_text()
    # every image a task, its file where Label Studio serves it from (the folder its root)
    assert sorted(t["data"]["key"] for t in tasks) == sorted(before)
    for task in tasks:
        path = urllib.parse.unquote(task["data"]["image"].removeprefix("/data/local-files/?d="))
        assert (out / path).read_bytes() == store.get(task["data"]["key"])
    assert '<Label value="dog"/>' in config and '<Choice value="cat"/>' in config
    assert '<TextArea name="text"' in config
    # a person submits every task as it came, the dog relabelled a wolf; the project's
    # JSON export goes into data/annotations/
    for task in tasks:
        result = copy.deepcopy(task["predictions"][0]["result"]) if "predictions" in task else []
        for item in result:
            if item["value"].get("polygonlabels") == ["dog"]:
                item["value"]["polygonlabels"] = ["wolf"]
        task["annotations"] = [{"id": task["id"], "result": result, "was_cancelled": False}]
    put(Path("data/annotations"), {"project-1-at-2026-12-03.json": json.dumps(tasks)})
    store = ingest_and_pack()
    for key, old in before.items():
        new = store.metadata(key)
        assert [o["category"] for o in new.get("objects", [])] == [
            "wolf" if o["category"] == "dog" else o["category"] for o in old.get("objects", [])
        ]
        for was, now in zip(old.get("objects", []), new.get("objects", []), strict=True):
            if isinstance(was.get("segmentation"), list):  # a polygon: its points
                assert all(
                    abs(a - b) < 1e-3
                    for a, b in zip(was["segmentation"][0], now["segmentation"][0], strict=True)
                )
            else:
                assert all(abs(a - b) < 1e-3 for a, b in zip(was["bbox"], now["bbox"], strict=True))
    assert store.metadata("cls/a.png")["label"] == "cat"
    assert store.metadata("cls/a.png")["text"] == "TOTAL 3"
