"""Tables as their own tools read them (issue 38): Hugging Face's second image column is
the image's paired image (`datasets.load_dataset("imagefolder")` on the same folder is
the reference); Open Images' CSVs (FiftyOne 1.22's `OpenImagesV6DatasetImporter` on the
same files is the reference, its output written below); a list of image pairs; Label
Studio's CSV, TSV and JSON_MIN exports (made from the tasks of
test_annotations_labelstudio.py and from label-studio-sdk's own fixture by
label-studio-sdk 2.1.2's `Converter.convert_to_csv` / `convert_to_json_min`, kept in
tests/fixtures/); and a table no reader places, which is reported alone instead of
stopping the ingest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_paired import mask_png

from imageshelf.store import ImageStore

from conftest import PROJECT, ingest_and_pack, make_image, put, report, sh, stage

INCOMING = Path("data/incoming")
FIXTURES = Path(__file__).parent / "fixtures"


def close(a: Any, b: Any, within: float = 1e-3) -> bool:
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(close(x, y, within) for x, y in zip(a, b, strict=True))
        )
    return abs(a - b) <= within


# ------------------------------------------------------- Hugging Face: image and mask


def hf_masks(root: Path, kind: str = "jsonl") -> dict[str, dict[str, Any]]:
    """An imagefolder whose metadata names a mask beside each image (`mask_file_name`),
    in folders no segmentation layout of paired.py knows (only the column pairs them).
    Returns key -> {"fields": metadata, "mask": the mask's key or None}."""
    names = ("a", "b", "c")
    files: dict[str, bytes | str] = {
        f"photos/{n}.jpg": make_image("JPEG", (32, 24), seed=i) for i, n in enumerate(names)
    }
    files.update({f"masks/{n}_seg.png": mask_png(seed=i) for i, n in enumerate(names[:2])})
    rows = [
        {"file_name": f"photos/{n}.jpg", "mask_file_name": f"masks/{n}_seg.png", "caption": n}
        for n in names[:2]
    ]
    rows.append({"file_name": "photos/c.jpg", "caption": "c"})  # no mask: HF gives None
    if kind == "jsonl":
        files["metadata.jsonl"] = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        files["metadata.csv"] = "file_name,mask_file_name,caption\n" + "".join(
            f"{r['file_name']},{r.get('mask_file_name', '')},{r['caption']}\n" for r in rows
        )
    put(root, files)
    folder = root.name
    return {
        f"{folder}/{row['file_name']}": {
            "fields": {"caption": row["caption"]},
            "mask": f"{folder}/{row['mask_file_name']}" if "mask_file_name" in row else None,
        }
        for row in rows
    }


def hf_rows(folder: Path, cache: Path) -> list[dict[str, Any]]:
    """The rows `datasets` gives for an imagefolder: each image column as its path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    (split,) = datasets.load_dataset(
        "imagefolder", data_dir=str(folder), cache_dir=str(cache)
    ).values()
    images = [n for n, f in split.features.items() if isinstance(f, datasets.Image)]
    for name in images:
        split = split.cast_column(name, datasets.Image(decode=False))
    rows = []
    for row in split:
        rows.append({n: (v["path"] if n in images and v else v) for n, v in row.items()})
    return rows


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_second_file_name_column_is_the_images_paired_image_as_datasets_loads_it(
    workspace, tmp_path, kind
):
    """HF: one row, two image columns (`image`, `mask`). Before: the masks were images
    of their own (5 records), each row's image with `mask_file_name` as a field."""
    expected = hf_masks(INCOMING / "hf", kind)
    store = ingest_and_pack()
    rows = hf_rows(INCOMING / "hf", tmp_path / "cache")
    assert len(store) == len(rows) == 3  # a record per row: no mask is a sample
    root = os.path.realpath(INCOMING)
    for row in rows:
        key = os.path.relpath(os.path.realpath(row.pop("image")), root)
        mask = row.pop("mask")
        assert store.get(key) == Path(INCOMING / key).read_bytes()
        assert store.metadata(key) == row == expected[key]["fields"]
        record = store.record(key)
        if mask is None:
            assert record.paired == {}
            continue
        assert record.paired["mask"].file == expected[key]["mask"]
        assert store.get_paired(key, "mask") == Path(mask).read_bytes()  # the bytes HF reads
    assert report("ingest")["paired"] == 2


def test_a_paired_file_not_here_and_a_role_that_cannot_be_are_reported_with_their_rows(
    workspace,
):
    put(
        INCOMING / "hf",
        {
            "a.png": make_image(seed=1),
            "b.png": make_image(seed=2),
            "a_depth.png": make_image(seed=3),
            "metadata.jsonl": json.dumps(
                {"file_name": "a.png", "depth_file_name": "a_depth.png", "a/b_file_name": "x"}
            )
            + "\n"
            + json.dumps({"file_name": "b.png", "depth_file_name": "gone.png"})
            + "\n",
        },
    )
    store = ingest_and_pack()
    assert sorted(store.keys()) == ["hf/a.png", "hf/b.png"]
    assert store.record("hf/a.png").paired["depth"].file == "hf/a_depth.png"
    assert store.metadata("hf/a.png") == {"a/b_file_name": "x"}
    assert store.record("hf/b.png").paired == {}
    got = report("ingest")
    assert got["unused_metadata"] == [
        "hf/metadata.jsonl:2: gone.png (the depth of hf/b.png: no such image)"
    ]
    assert got["annotation_notes"] == [
        "hf/metadata.jsonl: column 'a/b_file_name': 'a/b' cannot name a paired image (1 to "
        "64 characters, no '/'); kept as a field"
    ]


def test_a_changed_mask_relabels_its_image_and_nothing_new_stages_nothing(workspace):
    hf_masks(INCOMING / "hf")
    ingest_and_pack()
    again = stage("ingest")  # the table is settled: the masks stay paired
    assert again.exit_code == 0 and "ingest: 0 images staged" in again.output
    put(INCOMING / "hf", {"masks/b_seg.png": mask_png(seed=5)})
    store = ingest_and_pack()
    assert report("ingest")["staged"] == 1
    assert store.get_paired("hf/photos/b.jpg", "mask") == mask_png(seed=5)
    assert len(store) == 3


def records(path: Path) -> dict[str, tuple[dict, dict, bytes]]:
    """key -> (metadata, {role: (file, sha256)}, bytes) of every record of a store."""
    with ImageStore(path) as store:
        return {
            r.key: (
                r.metadata,
                {role: (p.file, p.info.sha256) for role, p in r.paired.items()},
                store.get(r.key),
            )
            for r in store.records()
        }


def test_an_export_ingested_in_a_fresh_project_gives_the_same_records_masks_included(
    workspace, tmp_path
):
    """Out and back: `imageshelf export` writes mask_file_name; a new project's ingest
    of the export pairs by that column alone (no layout rule knows photos/ and masks/).
    Before: the masks came back as images of their own, mask_file_name as a field."""
    hf_masks(INCOMING / "hf")
    ingest_and_pack()
    before = records(Path("data/images.lmdb").resolve())
    out = tmp_path / "out"
    assert stage("export", "--out", str(out)).exit_code == 0
    second = tmp_path / "second"
    (second / "data").mkdir(parents=True)
    shutil.copy(PROJECT / "params.yaml", second / "params.yaml")
    shutil.copytree(out, second / "data" / "incoming")
    here = os.getcwd()
    os.chdir(second)
    try:
        ingest_and_pack()
    finally:
        os.chdir(here)
    after = records(second / "data" / "images.lmdb")
    assert after == before
    assert sum(1 for _m, paired, _b in after.values() if paired) == 2


# ------------------------------------------------------------------ Open Images

OPEN_IMAGES = {  # ImageID -> size; the third has no labels
    "000002b66c9c498e": (64, 48),
    "000002b97e5471a0": (40, 30),
    "0000048549557964": (20, 20),
}
BOXES = (
    (
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,"
        "IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
    )
    + """000002b66c9c498e,xclick,/m/01g317,1,0.0125,0.195312,0.148438,0.5875,0,1,0,0,0
000002b66c9c498e,activemil,/m/0284d,1,0.25,0.75,0.5,1,1,0,1,0,0
000002b97e5471a0,xclick,/m/01g317,1,0.1,0.6,0.2,0.9,0,0,0,1,0
ffffffffffffffff,xclick,/m/01g317,1,0.1,0.2,0.1,0.2,0,0,0,0,0
"""
)
IMAGE_LABELS = """ImageID,Source,LabelName,Confidence
000002b66c9c498e,verification,/m/01g317,1
000002b66c9c498e,verification,/m/0284d,0
000002b97e5471a0,crowdsource-verification,/m/01g317,1
"""
CLASSES = "/m/01g317,Person\n/m/0284d,Dairy Product\n"  # class-descriptions-boxable.csv
# What FiftyOne's OpenImagesV6DatasetImporter(label_types=["detections",
# "classifications"]) gives for these files in its layout: per image, its detections
# (label, bounding_box relative [x, y, w, h], the Is* flags as booleans) and its
# positive and negative labels (label, confidence).
FIFTYONE = {
    "000002b66c9c498e": {
        "detections": [
            ("Person", [0.0125, 0.148438, 0.182812, 0.43906200000000006], (0, 1, 0, 0, 0)),
            ("Dairy Product", [0.25, 0.5, 0.5, 0.5], (1, 0, 1, 0, 0)),
        ],
        "positive_labels": [("Person", 1.0)],
        "negative_labels": [("Dairy Product", 0.0)],
    },
    "000002b97e5471a0": {
        "detections": [("Person", [0.1, 0.2, 0.5, 0.7], (0, 0, 0, 1, 0))],
        "positive_labels": [("Person", 1.0)],
        "negative_labels": [],
    },
}
FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")


def open_images_fiftyone(root: Path) -> dict[str, str]:
    """FiftyOne's Open Images layout: data/ID.jpg, labels/detections.csv,
    labels/classifications.csv, metadata/classes.csv. Returns key -> ImageID."""
    files: dict[str, bytes | str] = {
        f"data/{image_id}.jpg": make_image("JPEG", size, seed=i)
        for i, (image_id, size) in enumerate(OPEN_IMAGES.items())
    }
    files.update(
        {
            "labels/detections.csv": BOXES,
            "labels/classifications.csv": IMAGE_LABELS,
            "metadata/classes.csv": CLASSES,
        }
    )
    put(root, files)
    return {f"{root.name}/data/{image_id}.jpg": image_id for image_id in OPEN_IMAGES}


def open_images_own(root: Path) -> dict[str, str]:
    """The dataset's own files as downloaded: train/ID.jpg beside the CSVs, the image
    list with its URLs and rotation."""
    files: dict[str, bytes | str] = {
        f"train/{image_id}.jpg": make_image("JPEG", size, seed=i)
        for i, (image_id, size) in enumerate(OPEN_IMAGES.items())
    }
    files.update(
        {
            "oidv6-train-annotations-bbox.csv": BOXES,
            "train-annotations-human-imagelabels-boxable.csv": IMAGE_LABELS,
            "class-descriptions-boxable.csv": CLASSES,
            "train-images-boxable-with-rotation.csv": "ImageID,Subset,OriginalURL,Rotation\n"
            "0000048549557964,train,https://farm3.staticflickr.com/x.jpg,0.0\n",
        }
    )
    put(root, files)
    return {f"{root.name}/train/{image_id}.jpg": image_id for image_id in OPEN_IMAGES}


def assert_as_fiftyone(metadata: dict[str, dict], images: dict[str, str]) -> None:
    """Every image's fields as FiftyOne's importer gives them, in pixels, every column
    of each row kept."""
    rows = [line.split(",") for line in BOXES.splitlines()]
    for key, image_id in images.items():
        fields = metadata[key]
        want = FIFTYONE.get(image_id)
        if want is None:
            assert "objects" not in fields and "positive_labels" not in fields
            continue
        assert fields["open_images_id"] == image_id
        width, height = OPEN_IMAGES[image_id]
        mine = [dict(zip(rows[0], row, strict=True)) for row in rows[1:] if row[0] == image_id]
        for obj, (label, box, flags), row in zip(
            fields["objects"], want["detections"], mine, strict=True
        ):
            x, y, w, h = box
            assert obj["category"] == label
            assert close(obj["bbox"], [x * width, y * height, w * width, h * height])
            assert tuple(obj[name] for name in FLAGS) == flags
            assert obj["Source"] == row["Source"] and obj["LabelName"] == row["LabelName"]
            assert obj["XMax"] == float(row["XMax"]) and obj["Confidence"] == 1
        for name in ("positive_labels", "negative_labels"):
            got = [(entry["label"], entry["Confidence"]) for entry in fields[name]]
            assert got == want[name]
            assert all(entry["Source"] and entry["LabelName"] for entry in fields[name])


def test_open_images_in_fiftyones_layout_reads_as_its_importer_reads_it(workspace):
    images = open_images_fiftyone(INCOMING / "oi")
    store = ingest_and_pack()
    assert sorted(store.keys()) == sorted(images)
    assert_as_fiftyone({k: store.metadata(k) for k in images}, images)
    assert report("ingest")["unused_metadata"] == [
        "oi/labels/detections.csv: 1 row(s) for 1 ImageID(s) with no image of that name "
        "under oi/ (first: ffffffffffffffff)"
    ]


def test_open_images_own_files_the_image_list_and_no_class_names(workspace):
    """Before: each of these CSVs stopped the whole ingest ("no column names the
    image")."""
    images = open_images_own(INCOMING / "oi")
    store = ingest_and_pack()
    metadata = {k: store.metadata(k) for k in images}
    assert_as_fiftyone(metadata, images)
    assert metadata["oi/train/0000048549557964.jpg"] == {
        "open_images_id": "0000048549557964",
        "Subset": "train",
        "OriginalURL": "https://farm3.staticflickr.com/x.jpg",
        "Rotation": 0.0,
    }
    (INCOMING / "oi" / "class-descriptions-boxable.csv").unlink()
    store = ingest_and_pack()
    assert store.metadata("oi/train/000002b97e5471a0.jpg")["objects"][0]["category"] == (
        "/m/01g317"
    )
    assert (
        "oi/oidv6-train-annotations-bbox.csv: no class descriptions "
        "(class-descriptions-boxable.csv) in its dataset's folder; each label is named by its "
        "id (first: /m/01g317)"
    ) in report("ingest")["annotation_notes"]


# ------------------------------------------------------------------ image pairs


def change_pairs(root: Path) -> dict[str, dict[str, Any]]:
    """A change-detection list (LEVIR-CD's A/ and B/ folders): each row names a before
    and an after image. Returns key -> expected fields."""
    files: dict[str, bytes | str] = {
        f"{side}/{name}.png": make_image(seed=hash((side, name)) % 997)
        for side in "AB"
        for name in ("x", "y")
    }
    files["pairs.csv"] = (
        "image_a,image_b,changed\nA/x.png,B/x.png,true\nA/y.png,B/y.png,false\n"
        "A/z.png,B/z.png,true\n"
    )
    put(root, files)
    top = root.name
    expected = {}
    for name, changed in (("x", True), ("y", False)):
        a, b = f"{top}/A/{name}.png", f"{top}/B/{name}.png"
        expected[a] = {"changed": changed, "pair": {"image_b": b}}
        expected[b] = {"changed": changed, "pair": {"image_a": a}}
    return expected


def test_a_list_of_image_pairs_gives_both_images_the_row_and_each_its_pair(workspace):
    """Before and after are both photographs, both samples: each keeps a record of its
    own, with the row's fields and the other image's key."""
    expected = change_pairs(INCOMING / "cd")
    store = ingest_and_pack()
    assert {key: store.metadata(key) for key in store} == expected
    assert report("ingest")["unused_metadata"] == [
        "cd/pairs.csv:4: A/z.png (no such image)",
        "cd/pairs.csv:4: B/z.png (no such image)",
    ]


# ------------------------------------------------------------- tables none places


def test_a_table_no_reader_places_is_reported_alone_and_the_param_places_it(workspace):
    """Before: each stopped the whole ingest, nothing stored."""
    put(
        INCOMING,
        {
            "photos/a.png": make_image(seed=1),
            "photos/labels.csv": "Image Name;Label\na.png;cat\n",
            "runs/scores.csv": "epoch,loss\n1,0.5\n",
            "runs/empty.jsonl": "",
        },
    )
    store = ingest_and_pack()
    assert list(store.keys()) == ["photos/a.png"] and store.metadata("photos/a.png") == {}
    assert report("ingest")["unused_metadata"] == [
        "photos/labels.csv: a table of columns 'Image Name', 'label'; its column 'Image Name' "
        "names images here but no image column is named as Hugging Face names one "
        "(file_name); not read: set annotations.image_column: Image Name in params.yaml to "
        "read it",
        "runs/empty.jsonl: an empty table (no header, no rows); not read",
        "runs/scores.csv: a table of columns 'epoch', 'loss', none of which names an image "
        "here (file_name, *_file_name, file_names, path, file, filename, image, image_path, "
        "key; Open Images' ImageID); not read: set annotations.image_column in params.yaml "
        "to the column that does",
    ]
    params = Path("params.yaml")
    params.write_text(params.read_text().replace('image_column: ""', 'image_column: "Image Name"'))
    store = ingest_and_pack()
    assert store.metadata("photos/a.png") == {"label": "cat"}


# ------------------------------------------------------------------ Label Studio

LS_IMAGES = {"cat.jpg": (100, 100), "scans/receipt.png": (200, 80), "dogs/dog.jpg": (60, 40)}


def label_studio_tasks(root: Path, export: str) -> None:
    """The tasks of test_annotations_labelstudio.py (an upload `/data/upload/1/
    1a2b3c4d-cat.jpg`, local files, cloud storage, a task of an image not here) as
    Label Studio exports them: `export` is the fixture's name, or None for the JSON."""
    from test_annotations_labelstudio import EXPORT

    files: dict[str, bytes | str] = {
        name: make_image("PNG" if name.endswith(".png") else "JPEG", size, seed=i)
        for i, (name, size) in enumerate(LS_IMAGES.items())
    }
    if export == "json":
        files["project-1-at-2026-11-05-10-00-1a2b3c4d.json"] = json.dumps(EXPORT)
    else:
        suffix = ".json" if export.endswith("_min.json") else Path(export).suffix
        files[f"project-1-at-2026-11-05-10-00-1a2b3c4d{suffix}"] = (FIXTURES / export).read_text()
    put(root, files)


def shapes(metadata: dict[str, Any]) -> list[tuple]:
    """What an image's objects are, whatever the export: category and pixels."""
    return sorted(
        (
            o.get("category"),
            o.get("bbox"),
            o.get("segmentation"),
            o.get("keypoints"),
            o.get("ocr_label"),
        )
        for o in metadata.get("objects", [])
    )


@pytest.mark.parametrize(
    "export", ["label_studio_tasks.csv", "label_studio_tasks.tsv", "label_studio_tasks_min.json"]
)
def test_label_studio_csv_and_json_min_give_what_its_json_export_gives(workspace, export):
    """The same tasks exported as JSON (read as the converter reads it:
    test_annotations_labelstudio.py) and as CSV, TSV or JSON_MIN give each image the same
    objects in pixels, its choice, its transcription and its data. Before: the CSV's
    upload paths were "no such image" beside cat.jpg; JSON_MIN was refused."""
    label_studio_tasks(INCOMING / "json", "json")
    label_studio_tasks(INCOMING / "other", export)
    store = ingest_and_pack()
    for name in LS_IMAGES:
        reference, got = store.metadata(f"json/{name}"), store.metadata(f"other/{name}")
        assert shapes(got) == shapes(reference), name
        task = reference["label_studio"]
        assert got["label_studio"]["id"] == task["id"]
        assert got["label_studio"]["annotation_id"] == task["used_annotation"]
        assert got["label_studio"]["image"] == task["data"]["image"]
    cat, receipt = store.metadata("other/cat.jpg"), store.metadata("other/scans/receipt.png")
    assert cat["choice"] == "indoor" and cat["label_studio"]["lead_time"] == 12.5
    assert receipt["note"] == "blurry" and receipt["transcription"] == "TOTAL 12.50"
    (region,) = receipt["objects"]  # a box and its label in two tags: one region
    assert region["from_name"] == "bbox" and region["value"]["width"] == 50
    unused = report("ingest")["unused_metadata"]
    assert [u.split(": ", 1)[1] for u in unused if u.startswith("other/")] == [
        f"{'item 4: ' if export.endswith('.json') else ''}task 4: "
        "image=/data/upload/1/99999999-gone.jpg (names no image here)"
    ]


SDK_FIXTURE = {  # label_studio_sdk_export.json's image, as the converter's COCO gives it
    "categories": ["rectangle_label", "polygon_label", "keypoint_label1", "keypoint_label2"],
    "bbox": [159.70961887477313, 13.163120567375884, 31.76043557168784, 31.773049645390074],
    "polygon": [
        208.7114337568058,
        11.347517730496454,
        207.80399274047187,
        39.0354609929078,
        226.86025408348456,
        39.94326241134752,
    ],
    "keypoints": [113, 102, 2, 89, 91, 2],  # joined into one annotation, rounded
}


def label_studio_fixture(root: Path, export: str) -> None:
    put(root, {"test_image1.jpg": make_image("JPEG", (500, 320)), export: ""})
    name = (
        "label_studio_sdk_export.csv"
        if export.endswith(".csv")
        else "label_studio_sdk_export_min.json"
    )
    (root / export).write_text((FIXTURES / name).read_text())


def assert_sdk_fixture(fields: dict[str, Any]) -> None:
    objects = fields["objects"]
    by_category = {o["category"]: o for o in objects}
    assert sorted(by_category) == sorted(SDK_FIXTURE["categories"])
    assert close(by_category["rectangle_label"]["bbox"], SDK_FIXTURE["bbox"])
    assert close(by_category["polygon_label"]["segmentation"], [SDK_FIXTURE["polygon"]])
    points = (
        by_category["keypoint_label1"]["keypoints"] + by_category["keypoint_label2"]["keypoints"]
    )
    assert close(points, SDK_FIXTURE["keypoints"], within=0.5)
    assert fields["label_studio"] == {
        "id": 175210175,
        "annotation_id": 60205850,
        "created_at": "2025-05-02T08:49:24.923036Z",
        "updated_at": "2025-05-02T08:49:24.923046Z",
        "lead_time": 18.158,
        "agreement": 100.0,
        "image": "test_image1.jpg",
    }


@pytest.mark.parametrize("export", ["result.csv", "result.json"])
def test_the_sdk_own_fixture_exported_as_csv_and_json_min_reads_as_the_converter(workspace, export):
    label_studio_fixture(INCOMING, export)
    assert_sdk_fixture(ingest_and_pack().metadata("test_image1.jpg"))


def test_several_annotations_of_a_task_keep_the_latest_and_say_so(workspace):
    box = {"x": 0, "y": 0, "width": 50, "height": 50, "rotation": 0}
    items = [
        {
            "image": "/data/upload/2/0a1b2c3d-a.png",
            "id": 1,
            "label": [{**box, "rectanglelabels": [name]}],
            "annotator": 1,
            "annotation_id": number,
            "updated_at": when,
        }
        for number, name, when in ((2, "new", "2026-02-01"), (1, "old", "2026-01-01"))
    ]
    put(INCOMING, {"a.png": make_image(size=(40, 20)), "min.json": json.dumps(items)})
    store = ingest_and_pack()
    fields = store.metadata("a.png")
    assert [o["category"] for o in fields["objects"]] == ["new"]
    assert fields["objects"][0]["bbox"] == [0, 0, 20, 10]
    assert report("ingest")["annotation_notes"] == [
        "min.json: 1 item(s) name an image another item names (several annotations of a "
        "task, or several tasks); the latest (updated_at) is kept, the others are not "
        "(first: a.png); the JSON export keeps every one"
    ]


# ------------------------------------------------------------------ a real project


def test_every_table_layout_side_by_side_through_dvc_repro(repo):
    """Every layout above in one project's data/incoming/, one `dvc repro`: each image's
    stored fields as its reference gives them, the masks under their images, the table
    no reader places reported, nothing rejected."""
    incoming = repo / "data" / "incoming"
    masks = hf_masks(incoming / "hf")
    fiftyone = open_images_fiftyone(incoming / "oi-fiftyone")
    own = open_images_own(incoming / "oi")
    pairs = change_pairs(incoming / "cd")
    label_studio_fixture(incoming / "ls-csv", "result.csv")
    label_studio_fixture(incoming / "ls-min", "result.json")
    put(incoming / "runs", {"scores.csv": "epoch,loss\n1,0.5\n"})
    sh(repo, "dvc", "repro")
    with ImageStore(repo / "data" / "images.lmdb") as store:
        metadata = {r.key: r.metadata for r in store.records()}
        paired = {r.key: {k: p.file for k, p in r.paired.items()} for r in store.records()}
    expected_keys = [
        *masks,
        *fiftyone,
        *own,
        *pairs,
        "ls-csv/test_image1.jpg",
        "ls-min/test_image1.jpg",
    ]
    assert sorted(metadata) == sorted(expected_keys)
    for key, want in masks.items():
        assert metadata[key] == want["fields"]
        assert paired[key] == ({"mask": want["mask"]} if want["mask"] else {})
    assert_as_fiftyone(metadata, fiftyone)
    assert_as_fiftyone(metadata, own)
    assert {key: metadata[key] for key in pairs} == pairs
    assert_sdk_fixture(metadata["ls-csv/test_image1.jpg"])
    assert_sdk_fixture(metadata["ls-min/test_image1.jpg"])
    ingest = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingest["rejected"] == 0 and ingest["paired"] == 2
    assert any(
        u.startswith("runs/scores.csv: a table of columns") for u in ingest["unused_metadata"]
    )


def test_a_table_reported_says_so_in_a_line_of_bounded_length_and_a_bad_param_stops(workspace):
    put(
        INCOMING,
        {"a.png": make_image(seed=1), "wide.csv": "x" * 100_000 + ",y\n1,2\n"},
    )
    ingest_and_pack()
    (said,) = report("ingest")["unused_metadata"]
    assert said.startswith("wide.csv: a table of columns 'xxx") and len(said) < 400
    params = Path("params.yaml")
    params.write_text(params.read_text().replace('image_column: ""', "image_column: [a, b]"))
    result = stage("ingest")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "annotations.image_column must be a column" in line
