"""Annotations in the formats datasets ship in, read as their tools write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageshelf.annotations import typed, typed_column
from imageshelf.store import ImageStore

from conftest import ingest_and_pack, make_image, put, report, stage

INCOMING = Path("data/incoming")
STORE = Path("data/images.lmdb")


def set_rule(name: str, value: str) -> None:
    params = Path("params.yaml")
    params.write_text(params.read_text().replace(f"{name}: false", f"{name}: {value}"))


def metadata(store: ImageStore) -> dict[str, dict]:
    return {record.key: record.metadata for record in store.records()}


def test_typed_cells_follow_one_rule():
    assert [
        typed(v)
        for v in (
            "0.9",
            "-3",
            "42",
            "007",
            "1e-3",
            "TRUE",
            "false",
            " cat ",
            "[1, 2]",
            "{bad",
            "nan",
            "",
        )
    ] == [0.9, -3, 42, "007", 0.001, True, False, "cat", [1, 2], "{bad", "nan", ""]
    # a column is typed as a whole: one cell that is not a number keeps them all text
    assert typed_column(["007", "100"]) == ["007", "100"]
    assert typed_column(["1", "2.5"]) == [1.0, 2.5]
    assert typed_column(["1", "x"]) == ["1", "x"]
    assert typed_column(["true", "0"]) == ["true", "0"]


def test_csv_as_excel_saves_it_bom_semicolons_and_any_case_headers(workspace):
    put(
        INCOMING,
        {
            "a.png": make_image(seed=1),
            "b.png": make_image(seed=2),
            "c.png": make_image(seed=3),
            # Excel's "CSV UTF-8" in a locale with a decimal comma: BOM, ';', its own headers
            "labels.csv": "\ufeffPath;Label;Score;Weight;OK\r\n"
            "a.png;cat;0,5;0.25;TRUE\r\nb.png;dog;0.75;1;false\r\n",
            "more.tsv": "FILE_NAME\tlabel\tid\nc.png\tbird\t007\n",
        },
    )
    store = ingest_and_pack()
    assert metadata(store) == {
        "a.png": {"label": "cat", "Score": "0,5", "Weight": 0.25, "OK": True},
        "b.png": {"label": "dog", "Score": "0.75", "Weight": 1.0, "OK": False},
        "c.png": {"label": "bird", "id": "007"},
    }
    result = stage("ls", "--where", "Weight>=0.5")
    assert [line.split("\t")[-1] for line in result.stdout.splitlines()] == ["b.png"]


def test_hugging_face_imagefolder_with_metadata_and_split_folders(workspace):
    set_rule("split_from_folder", "true")
    put(
        INCOMING / "flowers",
        {
            "train/0001.png": make_image(seed=1),
            "train/0002.png": make_image(seed=2),
            "train/metadata.csv": "file_name,label,text\n0001.png,rose,a red rose\n"
            "0002.png,tulip,\n",
            "validation/0003.png": make_image(seed=3),
            "validation/metadata.jsonl": '{"file_name": "0003.png", "label": "rose"}\n',
            "test/0004.png": make_image(seed=4),
            "README.md": "# Flowers\n",
            "LICENSE": "CC-BY-4.0\n",
        },
    )
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("strict: false", "strict: true"))
    store = ingest_and_pack()
    assert {r.key: (r.metadata.get("label"), r.split) for r in store.records()} == {
        "flowers/train/0001.png": ("rose", "train"),
        "flowers/train/0002.png": ("tulip", "train"),
        "flowers/validation/0003.png": ("rose", "val"),
        "flowers/test/0004.png": (None, "test"),
    }
    assert store.metadata("flowers/train/0001.png")["text"] == "a red rose"
    assert report("ingest")["ignored"] == ["flowers/LICENSE", "flowers/README.md"]


@pytest.mark.parametrize(
    "name, text, says",
    [
        ("labels.csv", b"path,label\na.png,caf\xe9\n", "not UTF-8"),
        (
            "metadata.jsonl",
            '{"file_name": "a.png"}\n{"file_name": "a.png", "x": 1e999}\n',
            "metadata.jsonl:2: invalid JSON",
        ),
        ("big.csv", "path,text\na.png," + "x" * 200_000 + "\n", "big.csv"),
        ("deep.jsonl", '{"path": "a.png", "x": ' + "[" * 5000 + "]" * 5000 + "}\n", "deep"),
    ],
)
def test_an_annotation_file_that_does_not_parse_fails_the_stage_in_one_line(
    workspace, name, text, says
):
    put(INCOMING, {"a.png": make_image(seed=1), "images/a.png": make_image(seed=2), name: text})
    result = stage("ingest")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], lines
    assert name.rpartition("/")[2] in lines[0] or says in lines[0]
    assert not Path("data/staged.jsonl").exists()  # nothing staged from a half-read dataset


def test_every_format_together_through_dvc_repro(repo):
    """The peers' layouts of the per-format tests, dropped into one repository as their
    tools write them, packed by a real `dvc repro` with strict ingest: nothing rejected,
    nothing unused, every image with what its format gave it."""
    from test_annotations_coco import IMAGES, coco2017
    from test_annotations_voc import VOC_XML

    from conftest import sh

    params = repo / "params.yaml"
    text = params.read_text().replace("strict: false", "strict: true")
    params.write_text(text.replace("split_from_folder: false", "split_from_folder: true"))
    incoming = repo / "data" / "incoming"
    coco2017(incoming / "coco")
    put(
        incoming / "coco8-seg",
        {
            "data.yaml": "path: coco8-seg\ntrain: images/train\nval: images/val\n"
            "names:\n  0: person\n  1: bicycle\n",
            "README.md": "# coco8-seg\n",
            "images/train/000000000009.jpg": make_image("JPEG", (64, 48), seed=3),
            "labels/train/000000000009.txt": "1 0.1 0.1 0.9 0.1 0.5 0.9\n",
            "labels/train.cache": b"ultralytics cache",
        },
    )
    put(
        incoming / "cvat",
        {
            "obj.names": "cat\n",
            "obj.data": "classes = 1\ntrain = data/train.txt\nnames = data/obj.names\n",
            "train.txt": "data/obj_train_data/1.jpg\n",
            "obj_train_data/1.jpg": make_image("JPEG", (40, 30), seed=4),
            "obj_train_data/1.txt": "0 0.5 0.5 0.5 0.5\n",
        },
    )
    put(
        incoming / "VOC2012",
        {
            "JPEGImages/2007_000027.jpg": make_image("JPEG", (48, 40), seed=5),
            "Annotations/2007_000027.xml": VOC_XML,
            "ImageSets/Main/val.txt": "2007_000027\n",
        },
    )
    put(
        incoming / "flowers",
        {
            "train/0001.png": make_image(seed=6),
            "train/metadata.csv": "\ufefffile_name;Label;score\r\n0001.png;rose;0.5\r\n",
            "LICENSE": "CC-BY\n",
        },
    )
    sh(repo, "dvc", "repro")
    with ImageStore(repo / "data" / "images.lmdb") as store:
        got = {r.key: (r.split, r.metadata) for r in store.records()}
    assert len(got) == len(IMAGES) + 4
    split, meta = got["coco/val2017/000000000139.jpg"]
    assert split == "val" and [o["category"] for o in meta["objects"]] == [
        "person",
        "dog",
        "person",
    ]
    assert len(meta["captions"]) == 2 and meta["objects"][0]["keypoints"][:3] == [12, 7, 2]
    split, meta = got["coco8-seg/images/train/000000000009.jpg"]
    assert split == "train"
    assert meta["objects"][0]["segmentation"] == [[6.4, 4.8, 57.6, 4.8, 32, 43.2]]
    cvat = {"bbox": [10, 7.5, 20, 15], "category": "cat", "category_id": 0}
    assert got["cvat/obj_train_data/1.jpg"] == ("train", {"objects": [cvat], "split": "train"})
    split, meta = got["VOC2012/JPEGImages/2007_000027.jpg"]
    assert split == "val" and meta["objects"][0]["parts"][1]["category"] == "hand"
    rose = {"label": "rose", "score": 0.5, "split": "train"}
    assert got["flowers/train/0001.png"] == ("train", rose)
    ingest_report = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingest_report["rejected"] == 0 and ingest_report["unused_metadata"] == []
    assert ingest_report["ignored"] == [
        "coco8-seg/README.md",
        "coco8-seg/labels/train.cache",
        "flowers/LICENSE",
    ]
