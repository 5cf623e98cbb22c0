"""COCO as pycocotools reads it: laid out as the COCO 2017 download is (`val2017/`,
`annotations/instances_val2017.json` beside `person_keypoints_val2017.json` and
`captions_val2017.json`, the fields of cocodataset.org's format page), and as Roboflow
exports it (`train/_annotations.coco.json` beside the images). Each image's store record
is compared with what pycocotools' `COCO(file).imgToAnns` gives for it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pycocotools.coco import COCO

from conftest import ingest_and_pack, make_image, put, report

INCOMING = Path("data/incoming")

IMAGES = [
    {
        "license": 4,
        "file_name": "000000000139.jpg",
        "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg",
        "height": 30,
        "width": 40,
        "date_captured": "2013-11-21 01:34:01",
        "flickr_url": "http://farm9.staticflickr.com/8035/8024364858_9c41dc1666_z.jpg",
        "id": 139,
    },
    {"license": 1, "file_name": "000000000285.jpg", "height": 30, "width": 40, "id": 285},
    {"license": 1, "file_name": "000000000632.jpg", "height": 30, "width": 40, "id": 632},
]
INFO = {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017}
LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "BY-NC-SA"}
]
PERSON = {"supercategory": "person", "id": 1, "name": "person"}
CATEGORIES = [
    PERSON,
    {"supercategory": "animal", "id": 18, "name": "dog"},
    {"supercategory": "indoor", "id": 90, "name": "toothbrush"},
]
INSTANCES = {
    "info": INFO,
    "licenses": LICENSES,
    "images": IMAGES,
    "annotations": [
        {  # a person: polygons
            "segmentation": [[10.0, 5.5, 20.0, 5.5, 20.0, 25.0, 10.0, 25.0]],
            "area": 195.0,
            "iscrowd": 0,
            "image_id": 139,
            "bbox": [10.0, 5.5, 10.0, 19.5],
            "category_id": 1,
            "id": 2001,
        },
        {  # a dog beside it
            "segmentation": [[1.0, 1.0, 8.0, 1.0, 8.0, 8.0]],
            "area": 24.5,
            "iscrowd": 0,
            "image_id": 139,
            "bbox": [1.0, 1.0, 7.0, 7.0],
            "category_id": 18,
            "id": 2002,
        },
        {  # a crowd of people: an uncompressed RLE mask, not polygons
            "segmentation": {"counts": [0, 5, 1195], "size": [30, 40]},
            "area": 5,
            "iscrowd": 1,
            "image_id": 139,
            "bbox": [0, 0, 1, 5],
            "category_id": 1,
            "id": 900100139,
        },
        {
            "segmentation": [[2, 2, 6, 2, 6, 9]],
            "area": 14.0,
            "iscrowd": 0,
            "image_id": 285,
            "bbox": [2, 2, 4, 7],
            "category_id": 90,
            "id": 3001,
        },
    ],
    "categories": CATEGORIES,
}
KEYPOINTS = {
    "info": INFO,
    "licenses": LICENSES,
    "images": IMAGES,
    "annotations": [
        {  # the same person as in instances, with its keypoints
            "segmentation": [[10.0, 5.5, 20.0, 5.5, 20.0, 25.0, 10.0, 25.0]],
            "num_keypoints": 2,
            "area": 195.0,
            "iscrowd": 0,
            "keypoints": [12, 7, 2, 18, 7, 1, 0, 0, 0],
            "image_id": 139,
            "bbox": [10.0, 5.5, 10.0, 19.5],
            "category_id": 1,
            "id": 2001,
        }
    ],
    "categories": [
        {
            **PERSON,
            "keypoints": ["nose", "left_eye", "right_eye"],
            "skeleton": [[1, 2], [1, 3]],
        }
    ],
}
CAPTIONS = {
    "info": INFO,
    "licenses": LICENSES,
    "images": IMAGES,
    "annotations": [
        {"image_id": 139, "id": 1, "caption": "A person and a dog in a room."},
        {"image_id": 139, "id": 7, "caption": "A man stands beside his dog."},
        {"image_id": 632, "id": 9, "caption": "An empty bedroom."},
    ],
}


def coco2017(root: Path) -> Path:
    files = {
        f"val2017/{image['file_name']}": make_image("JPEG", (40, 30), seed=image["id"])
        for image in IMAGES
    }
    files["annotations/instances_val2017.json"] = json.dumps(INSTANCES)
    files["annotations/person_keypoints_val2017.json"] = json.dumps(KEYPOINTS)
    files["annotations/captions_val2017.json"] = json.dumps(CAPTIONS)
    put(root, files)
    return root


def pycocotools_objects(*files: Path) -> dict[int, dict[int, dict]]:
    """image id -> annotation id -> the annotation as pycocotools gives it, the files'
    annotations of one id combined (the keypoints file adds keypoints to a person)."""
    out: dict[int, dict[int, dict]] = {}
    for path in files:
        coco = COCO(str(path))
        names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        for image_id, anns in coco.imgToAnns.items():
            for ann in anns:
                merged = out.setdefault(image_id, {}).setdefault(ann["id"], {})
                merged.update({k: v for k, v in ann.items() if k != "image_id"})
                merged["category"] = names[ann["category_id"]]
    return out


def test_a_coco_2017_annotations_folder_keeps_every_object_field_and_caption(workspace):
    root = coco2017(INCOMING / "coco")
    store = ingest_and_pack()
    expected = pycocotools_objects(
        root / "annotations/instances_val2017.json",
        root / "annotations/person_keypoints_val2017.json",
    )
    captions = COCO(str(root / "annotations/captions_val2017.json"))
    for image in IMAGES:
        meta = store.metadata(f"coco/val2017/{image['file_name']}")
        assert meta["objects"] == list(expected.get(image["id"], {}).values())
        assert meta["captions"] == [
            {"caption": a["caption"], "id": a["id"]} for a in captions.imgToAnns[image["id"]]
        ]
        assert meta["coco_image"] == {k: v for k, v in image.items() if k != "file_name"}
    # the dog and the toothbrush are still there beside the persons of the keypoints file
    dog = store.metadata("coco/val2017/000000000139.jpg")["objects"][1]
    assert dog["category"] == "dog" and dog["segmentation"] == [[1.0, 1.0, 8.0, 1.0, 8.0, 8.0]]
    person = store.metadata("coco/val2017/000000000139.jpg")["objects"][0]
    assert person["keypoints"] == [12, 7, 2, 18, 7, 1, 0, 0, 0] and person["area"] == 195.0
    crowd = store.metadata("coco/val2017/000000000139.jpg")["objects"][2]
    assert crowd["segmentation"] == {"counts": [0, 5, 1195], "size": [30, 40]}
    ingest = report("ingest")
    assert sorted(ingest["annotation_files"]) == [
        "coco/annotations/captions_val2017.json",
        "coco/annotations/instances_val2017.json",
        "coco/annotations/person_keypoints_val2017.json",
    ]
    # what describes the dataset, not an image, is reported as not stored; the
    # categories' other fields are kept with the images whose objects name them
    notes = "\n".join(ingest["annotation_notes"])
    assert "info, licenses: the dataset's, not an image's; not stored" in notes
    assert "categories'" not in notes
    kept = store.metadata("coco/val2017/000000000139.jpg")["coco_categories"]
    assert kept["18"] == {"supercategory": "animal"}
    assert kept["1"]["supercategory"] == "person" and kept["1"]["skeleton"]


def test_annotations_no_image_takes_and_an_id_given_twice_are_reported(workspace):
    doc = copy.deepcopy(INSTANCES)
    doc["images"] = [IMAGES[0], {**IMAGES[1], "id": 139}]  # one id, two files
    doc["annotations"].append({**doc["annotations"][0], "id": 5, "image_id": 4242})
    put(
        INCOMING / "coco",
        {
            "val2017/000000000139.jpg": make_image("JPEG", (40, 30), seed=1),
            "val2017/000000000285.jpg": make_image("JPEG", (40, 30), seed=2),
            "annotations/instances_val2017.json": json.dumps(doc),
        },
    )
    store = ingest_and_pack()
    for name in ("000000000139.jpg", "000000000285.jpg"):
        assert len(store.metadata(f"coco/val2017/{name}")["objects"]) == 3
    ingest = report("ingest")
    assert any(
        "2 annotation(s) of an image id the file does not list (first: annotation 3001)" in u
        for u in ingest["unused_metadata"]
    )
    assert any("image id 139 names 2 files" in n for n in ingest["annotation_notes"])


def test_roboflow_coco_export_beside_its_images(workspace):
    # Roboflow's "COCO JSON" export: a split folder with _annotations.coco.json in it
    doc = {
        "info": {"year": "2024"},
        "categories": [
            {"id": 0, "name": "cells", "supercategory": "none"},
            {"id": 1, "name": "rbc", "supercategory": "cells"},
        ],
        "images": [
            {"id": 0, "license": 1, "file_name": "a_jpg.rf.1.jpg", "height": 30, "width": 40}
        ],
        "annotations": [
            {
                "id": 0,
                "image_id": 0,
                "category_id": 1,
                "bbox": [3, 4, 5, 6],
                "area": 30,
                "segmentation": [],
                "iscrowd": 0,
            },
        ],
    }
    put(
        INCOMING / "bccd",
        {
            "train/a_jpg.rf.1.jpg": make_image("JPEG", (40, 30), seed=1),
            "train/_annotations.coco.json": json.dumps(doc),
        },
    )
    store = ingest_and_pack()
    assert store.metadata("bccd/train/a_jpg.rf.1.jpg")["objects"] == [
        {
            "id": 0,
            "category_id": 1,
            "category": "rbc",
            "bbox": [3, 4, 5, 6],
            "area": 30,
            "segmentation": [],
            "iscrowd": 0,
        }
    ]


def test_panoptic_segments_keep_their_png_and_category_names(workspace):
    doc = {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 30, "width": 40}],
        "annotations": [
            {
                "image_id": 139,
                "file_name": "000000000139.png",
                "segments_info": [
                    {
                        "id": 3226956,
                        "category_id": 1,
                        "iscrowd": 0,
                        "bbox": [1, 2, 3, 4],
                        "area": 12,
                    }
                ],
            }
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "isthing": 1}],
    }
    put(
        INCOMING / "coco",
        {
            "val2017/000000000139.jpg": make_image("JPEG", (40, 30), seed=1),
            "annotations/panoptic_val2017.json": json.dumps(doc),
        },
    )
    store = ingest_and_pack()
    panoptic = store.metadata("coco/val2017/000000000139.jpg")["panoptic"]
    assert panoptic["file_name"] == "000000000139.png"
    assert panoptic["segments_info"] == [
        {
            "id": 3226956,
            "category_id": 1,
            "category": "person",
            "iscrowd": 0,
            "bbox": [1, 2, 3, 4],
            "area": 12,
        }
    ]
