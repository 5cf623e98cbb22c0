"""Annotations in the formats datasets ship in, read as their tools write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageshelf.annotations import typed
from imageshelf.store import ImageStore

from conftest import make_image, put, report, stage

INCOMING = Path("data/incoming")
STORE = Path("data/images.lmdb")


def packed() -> ImageStore:
    for name in ("ingest", "pack"):
        result = stage(name)
        assert result.exit_code == 0, result.output
    return ImageStore(STORE)


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


def test_csv_as_excel_saves_it_bom_semicolons_and_any_case_headers(workspace):
    put(
        INCOMING,
        {
            "a.png": make_image(seed=1),
            "b.png": make_image(seed=2),
            "c.png": make_image(seed=3),
            # Excel's "CSV UTF-8" in a locale with a decimal comma: BOM, ';', its own headers
            "labels.csv": "\ufeffPath;Label;Score;OK\r\n"
            "a.png;cat;0,5;TRUE\r\nb.png;dog;0.75;false\r\n",
            "more.tsv": "FILE_NAME\tlabel\tid\nc.png\tbird\t007\n",
        },
    )
    store = packed()
    assert metadata(store) == {
        "a.png": {"label": "cat", "Score": "0,5", "OK": True},
        "b.png": {"label": "dog", "Score": 0.75, "OK": False},
        "c.png": {"label": "bird", "id": "007"},
    }
    result = stage("ls", "--where", "Score>=0.5")
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
    store = packed()
    assert {r.key: (r.metadata.get("label"), r.split) for r in store.records()} == {
        "flowers/train/0001.png": ("rose", "train"),
        "flowers/train/0002.png": ("tulip", "train"),
        "flowers/validation/0003.png": ("rose", "val"),
        "flowers/test/0004.png": (None, "test"),
    }
    assert store.metadata("flowers/train/0001.png")["text"] == "a red rose"
    assert report("ingest")["ignored"] == ["flowers/LICENSE", "flowers/README.md"]


def test_torchvision_imagefolder_labels_from_folders(workspace):
    set_rule("label_from_folder", "true")
    put(
        INCOMING / "pets",
        {
            "cat/1.png": make_image(seed=1),
            "cat/2.png": make_image(seed=2),
            "dog/3.png": make_image(seed=3),
        },
    )
    store = packed()
    assert {k: m["label"] for k, m in metadata(store).items()} == {
        "pets/cat/1.png": "cat",
        "pets/cat/2.png": "cat",
        "pets/dog/3.png": "dog",
    }
    assert store.record("pets/dog/3.png").annotated == ("label",)


COCO = {
    "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
    "licenses": [
        {
            "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
            "id": 1,
            "name": "Attribution-NonCommercial-ShareAlike License",
        }
    ],
    "images": [
        {
            "license": 4,
            "file_name": "000000000139.jpg",
            "coco_url": "",
            "height": 30,
            "width": 40,
            "date_captured": "2013-11-21 01:34:01",
            "flickr_url": "",
            "id": 139,
        },
        {
            "license": 1,
            "file_name": "000000000285.jpg",
            "coco_url": "",
            "height": 30,
            "width": 40,
            "date_captured": "2013-11-18 22:27:34",
            "flickr_url": "",
            "id": 285,
        },
    ],
    "annotations": [
        {
            "segmentation": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
            "area": 88.5,
            "iscrowd": 0,
            "image_id": 139,
            "bbox": [1.5, 2.0, 10.0, 12.25],
            "category_id": 64,
            "id": 26547,
        },
        {
            "segmentation": [[9.0, 9.0, 20.0, 20.0, 9.0, 20.0]],
            "area": 60.0,
            "iscrowd": 0,
            "image_id": 139,
            "bbox": [9.0, 9.0, 11.0, 11.0],
            "category_id": 1,
            "id": 2000,
        },
    ],
    "categories": [
        {"supercategory": "person", "id": 1, "name": "person"},
        {"supercategory": "furniture", "id": 64, "name": "potted plant"},
    ],
}


def test_coco_instances_give_boxes_and_category_names(workspace):
    put(
        INCOMING / "coco",
        {
            "val2017/000000000139.jpg": make_image("JPEG", (40, 30), seed=1),
            "val2017/000000000285.jpg": make_image("JPEG", (40, 30), seed=2),
            "annotations/instances_val2017.json": json.dumps(COCO),
        },
    )
    store = packed()
    assert store.metadata("coco/val2017/000000000139.jpg") == {
        "objects": [
            {"bbox": [1.5, 2.0, 10.0, 12.25], "category": "potted plant"},
            {"bbox": [9.0, 9.0, 11.0, 11.0], "category": "person"},
        ]
    }
    assert store.metadata("coco/val2017/000000000285.jpg") == {"objects": []}
    assert report("ingest")["annotation_files"] == ["coco/annotations/instances_val2017.json"]


def test_yolo_labels_with_data_yaml_give_pixel_boxes(workspace):
    put(
        INCOMING / "coco8",
        {
            "data.yaml": "path: ../datasets/coco8\ntrain: images/train\nval: images/val\n"
            "names:\n  0: person\n  1: bicycle\n",
            "images/train/000000000009.jpg": make_image("JPEG", (64, 48), seed=1),
            "labels/train/000000000009.txt": "0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n",
            "images/val/000000000036.jpg": make_image("JPEG", (64, 48), seed=2),
            "labels/val/000000000036.txt": "",
        },
    )
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("strict: false", "strict: true"))
    store = packed()
    assert store.metadata("coco8/images/train/000000000009.jpg") == {
        "objects": [
            {"bbox": [24, 12, 16, 24], "category": "person"},
            {"bbox": [0, 0, 16, 24], "category": "bicycle"},
        ]
    }
    assert store.metadata("coco8/images/val/000000000036.jpg") == {"objects": []}


def test_pascal_voc_xml(workspace):
    xml = """<annotation>
	<folder>VOC2012</folder>
	<filename>2007_000027.jpg</filename>
	<source><database>The VOC2007 Database</database></source>
	<size><width>48</width><height>40</height><depth>3</depth></size>
	<segmented>0</segmented>
	<object>
		<name>person</name><pose>Unspecified</pose><truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>30</xmax><ymax>35</ymax></bndbox>
	</object>
</annotation>
"""
    put(
        INCOMING / "VOC2012",
        {
            "JPEGImages/2007_000027.jpg": make_image("JPEG", (48, 40)),
            "Annotations/2007_000027.xml": xml,
        },
    )
    store = packed()
    assert store.metadata("VOC2012/JPEGImages/2007_000027.jpg") == {
        "objects": [{"bbox": [10, 5, 20, 30], "category": "person"}]
    }


@pytest.mark.parametrize(
    "name, text, says",
    [
        ("labels.csv", "Image Name;Label\na.png;cat\n", "no column names the image"),
        ("labels.csv", b"path,label\na.png,caf\xe9\n", "not UTF-8"),
        (
            "metadata.jsonl",
            '{"file_name": "a.png"}\n{"file_name": "a.png", "x": 1e999}\n',
            "metadata.jsonl:2: invalid JSON",
        ),
        ("big.csv", "path,text\na.png," + "x" * 200_000 + "\n", "big.csv"),
        ("deep.jsonl", '{"path": "a.png", "x": ' + "[" * 5000 + "]" * 5000 + "}\n", "deep"),
        ("labels/a.txt", "0 0.5 0.5\n", "not a YOLO box"),
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
    """The fixtures above, dropped into one repository as their tools lay them out, and
    packed by a real `dvc repro` with strict ingest."""
    from conftest import sh

    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("strict: false", "strict: true"))
    incoming = repo / "data" / "incoming"
    put(
        incoming / "coco",
        {
            "val2017/000000000139.jpg": make_image("JPEG", (40, 30), seed=1),
            "val2017/000000000285.jpg": make_image("JPEG", (40, 30), seed=2),
            "annotations/instances_val2017.json": json.dumps(COCO),
        },
    )
    put(
        incoming / "coco8",
        {
            "data.yaml": "names: [person, bicycle]\n",
            "README.md": "# coco8\n",
            "images/train/000000000009.jpg": make_image("JPEG", (64, 48), seed=3),
            "labels/train/000000000009.txt": "1 0.5 0.5 0.25 0.5\n",
        },
    )
    put(
        incoming / "VOC2012",
        {
            "JPEGImages/2007_000027.jpg": make_image("JPEG", (48, 40), seed=4),
            "Annotations/2007_000027.xml": "<annotation><filename>2007_000027.jpg</filename>"
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>11</xmax>"
            "<ymax>22</ymax></bndbox></object></annotation>",
        },
    )
    put(
        incoming / "flowers",
        {
            "train/0001.png": make_image(seed=5),
            "train/metadata.csv": "\ufefffile_name;Label;score\r\n0001.png;rose;0.5\r\n",
            "LICENSE": "CC-BY\n",
        },
    )
    sh(repo, "dvc", "repro")
    with ImageStore(repo / "data" / "images.lmdb") as store:
        got = metadata(store)
    assert got == {
        "VOC2012/JPEGImages/2007_000027.jpg": {
            "objects": [{"bbox": [1, 2, 10, 20], "category": "dog"}]
        },
        "coco/val2017/000000000139.jpg": {
            "objects": [
                {"bbox": [1.5, 2.0, 10.0, 12.25], "category": "potted plant"},
                {"bbox": [9.0, 9.0, 11.0, 11.0], "category": "person"},
            ]
        },
        "coco/val2017/000000000285.jpg": {"objects": []},
        "coco8/images/train/000000000009.jpg": {
            "objects": [{"bbox": [24, 12, 16, 24], "category": "bicycle"}]
        },
        "flowers/train/0001.png": {"label": "rose", "score": 0.5},
    }
    ingest_report = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingest_report["rejected"] == 0 and ingest_report["unused_metadata"] == []
    assert ingest_report["ignored"] == ["coco8/README.md", "flowers/LICENSE"]
