"""Label Studio's JSON export, as label-studio-sdk's converter reads it. The reference:
what `Converter(CONFIG).convert_to_coco` (label-studio-sdk 2.1.2) gives for these tasks,
its images given as local files, written here as its output (the SDK pulls in OpenCV,
NLTK and a code generator, too much to install for the tests); and the SDK's own test
fixture, a real export (`fixtures/label_studio_sdk_export.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ingest_and_pack, make_image, put, report

INCOMING = Path("data/incoming")
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="cat"/><Label value="dog"/><Label value="Text"/>
  </RectangleLabels>
  <PolygonLabels name="outline" toName="image"><Label value="dog"/></PolygonLabels>
  <EllipseLabels name="round" toName="image"><Label value="eye"/></EllipseLabels>
  <KeyPointLabels name="point" toName="image"><Label value="nose" model_index="0"/></KeyPointLabels>
  <Rectangle name="bbox" toName="image"/>
  <Labels name="ocr_label" toName="image"><Label value="Text"/></Labels>
  <TextArea name="transcription" toName="image" perRegion="true"/>
  <Choices name="choice" toName="image"><Choice value="indoor"/><Choice value="outdoor"/></Choices>
</View>"""


def _result(rid, kind, name, value, size, **extra):
    width, height = size
    return {
        "id": rid,
        "type": kind,
        "from_name": name,
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": value,
        "origin": "manual",
        **extra,
    }


CAT, RECEIPT, DOG = (100, 100), (200, 80), (60, 40)
# An export as the UI and API give it: an upload, a local-files image, one from cloud
# storage; boxes (one turned), an ellipse, a keypoint, an OCR region with its label and
# transcription, a classification; a cancelled annotation; predictions; a task for an
# image that is not here.
EXPORT = [
    {
        "id": 1,
        "data": {"image": "/data/upload/1/1a2b3c4d-cat.jpg"},
        "file_upload": "1a2b3c4d-cat.jpg",
        "annotations": [
            {
                "id": 11,
                "completed_by": 1,
                "result": [
                    _result(
                        "c1",
                        "rectanglelabels",
                        "label",
                        {
                            "x": 10,
                            "y": 20,
                            "width": 30,
                            "height": 40,
                            "rotation": 0,
                            "rectanglelabels": ["cat"],
                        },
                        CAT,
                    ),
                    _result(
                        "c2",
                        "rectanglelabels",
                        "label",
                        {
                            "x": 50,
                            "y": 10,
                            "width": 20,
                            "height": 10,
                            "rotation": 30,
                            "rectanglelabels": ["cat"],
                        },
                        CAT,
                    ),
                    _result(
                        "c3",
                        "ellipselabels",
                        "round",
                        {
                            "x": 30,
                            "y": 30,
                            "radiusX": 5,
                            "radiusY": 3,
                            "rotation": 0,
                            "ellipselabels": ["eye"],
                        },
                        CAT,
                    ),
                    _result(
                        "c4",
                        "keypointlabels",
                        "point",
                        {"x": 25.5, "y": 40, "width": 0.5, "keypointlabels": ["nose"]},
                        CAT,
                    ),
                    {
                        "id": "k9",
                        "type": "choices",
                        "from_name": "choice",
                        "to_name": "image",
                        "value": {"choices": ["indoor"]},
                        "origin": "manual",
                    },
                ],
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": "2026-11-02T10:00:00.000000Z",
                "updated_at": "2026-11-02T10:01:00.000000Z",
                "lead_time": 12.5,
                "task": 1,
            }
        ],
        "predictions": [
            {
                "id": 5,
                "model_version": "yolo-v8",
                "score": 0.8,
                "result": [
                    _result(
                        "p1",
                        "rectanglelabels",
                        "label",
                        {
                            "x": 11,
                            "y": 21,
                            "width": 29,
                            "height": 39,
                            "rotation": 0,
                            "rectanglelabels": ["cat"],
                        },
                        CAT,
                        score=0.8,
                    ),
                ],
            }
        ],
        "meta": {"source": "phone"},
        "created_at": "2026-11-01T09:00:00.000000Z",
        "project": 1,
    },
    {
        "id": 2,
        "data": {"image": "/data/local-files/?d=scans/receipt.png", "note": "blurry"},
        "annotations": [
            {
                "id": 21,
                "result": [
                    _result(
                        "r1",
                        "rectangle",
                        "bbox",
                        {"x": 5, "y": 10, "width": 50, "height": 25, "rotation": 0},
                        RECEIPT,
                    ),
                    _result(
                        "r1",
                        "labels",
                        "ocr_label",
                        {
                            "x": 5,
                            "y": 10,
                            "width": 50,
                            "height": 25,
                            "rotation": 0,
                            "labels": ["Text"],
                        },
                        RECEIPT,
                    ),
                    _result(
                        "r1",
                        "textarea",
                        "transcription",
                        {
                            "x": 5,
                            "y": 10,
                            "width": 50,
                            "height": 25,
                            "rotation": 0,
                            "text": ["TOTAL 12.50"],
                        },
                        RECEIPT,
                    ),
                ],
                "was_cancelled": False,
                "created_at": "2026-11-03T10:00:00.000000Z",
                "updated_at": "2026-11-03T10:00:00.000000Z",
            }
        ],
        "predictions": [],
    },
    {
        "id": 3,
        "data": {"image": "s3://pets-bucket/raw/dogs/dog.jpg"},
        "annotations": [
            {
                "id": 31,
                "result": [
                    _result(
                        "d0",
                        "rectanglelabels",
                        "label",
                        {
                            "x": 0,
                            "y": 0,
                            "width": 100,
                            "height": 100,
                            "rotation": 0,
                            "rectanglelabels": ["dog"],
                        },
                        DOG,
                    ),
                ],
                "was_cancelled": True,
                "created_at": "2026-11-04T10:00:00.000000Z",
                "updated_at": "2026-11-04T12:00:00.000000Z",
            },
            {
                "id": 32,
                "result": [
                    _result(
                        "d1",
                        "polygonlabels",
                        "outline",
                        {
                            "points": [[10, 10], [90, 20], [50, 95]],
                            "closed": True,
                            "polygonlabels": ["dog"],
                        },
                        DOG,
                    ),
                ],
                "was_cancelled": False,
                "created_at": "2026-11-04T10:00:00.000000Z",
                "updated_at": "2026-11-04T10:05:00.000000Z",
            },
        ],
        "predictions": [],
    },
    {
        "id": 4,
        "data": {"image": "/data/upload/1/99999999-gone.jpg"},
        "annotations": [],
        "predictions": [],
    },
]


# What the converter gives for EXPORT: file -> (category, bbox, segmentation or keypoints)
# per COCO annotation. It skips the ellipse and the bare rectangle (no label), and rounds
# keypoints to whole pixels.
CONVERTER = {
    "cat.jpg": [
        ("cat", [10.0, 20.0, 30.0, 40.0], None),
        ("cat", [45.0, 9.999999999999996, 22.320508075688778, 18.660254037844386], None),
        ("default", [26, 40, 0, 0], [26, 40, 2]),
    ],
    "scans/receipt.png": [("Text", [10.0, 8.0, 100.0, 20.0], None)],
    "dogs/dog.jpg": [("dog", [6.0, 4.0, 48.0, 34.0], [[6.0, 4.0, 54.0, 8.0, 30.0, 38.0]])],
}


def close(a, b, within: float = 1e-3) -> bool:
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(close(x, y, within) for x, y in zip(a, b, strict=True))
        )
    return abs(a - b) <= within


@pytest.fixture
def exported(workspace) -> Path:
    root = INCOMING / "ls"
    put(
        root,
        {
            "cat.jpg": make_image("JPEG", CAT, seed=1),
            "scans/receipt.png": make_image("PNG", RECEIPT, seed=2),
            "dogs/dog.jpg": make_image("JPEG", DOG, seed=3),
            "project-1-at-2026-11-05-10-00-1a2b3c4d.json": json.dumps(EXPORT, indent=2),
        },
    )
    return root


def test_every_region_is_kept_in_pixels_as_the_converter_computes_them(exported):
    store = ingest_and_pack()
    for name, expected in CONVERTER.items():
        objects = store.metadata(f"ls/{name}")["objects"]
        labelled = [o for o in objects if o["type"] != "ellipselabels"]
        assert [o["category"] for o in labelled[:2]] == [c for c, _, _ in expected[:2]]
        for obj, (_, bbox, shape) in zip(labelled, expected, strict=True):
            if obj["type"] == "keypointlabels":
                assert close(obj["keypoints"], shape, within=0.5)  # it rounds, we do not
                continue
            assert close(obj["bbox"], bbox)
            if shape is not None:
                assert close(obj["segmentation"], shape)
    cat = store.metadata("ls/cat.jpg")
    ellipse = next(o for o in cat["objects"] if o["type"] == "ellipselabels")
    assert ellipse["category"] == "eye" and ellipse["bbox"] == [25, 27, 10, 6]
    # the turned box's corners, clockwise about its top-left corner (as the viewer draws)
    turned = [50, 10, 67.321, 20, 62.321, 28.66, 45, 18.66]
    assert cat["objects"][1]["segmentation"] == [turned]
    # every field of each result as Label Studio wrote it, its value in percent
    assert cat["objects"][0]["value"] == EXPORT[0]["annotations"][0]["result"][0]["value"]
    assert cat["objects"][0]["id"] == "c1" and cat["objects"][0]["origin"] == "manual"


def test_transcriptions_choices_and_the_rest_of_the_task_are_kept(exported):
    store = ingest_and_pack()
    receipt = store.metadata("ls/scans/receipt.png")
    (region,) = receipt["objects"]  # three results of one region: one object
    assert region["category"] == "Text" and region["transcription"] == "TOTAL 12.50"
    assert region["ocr_label"] == "Text" and region["type"] == "rectangle"
    assert receipt["label_studio"]["data"]["note"] == "blurry"
    cat = store.metadata("ls/cat.jpg")
    assert cat["choice"] == "indoor"  # as Label Studio's JSON_MIN export gives it
    task = cat["label_studio"]
    assert task["predictions"] == EXPORT[0]["predictions"] and task["meta"] == {"source": "phone"}
    assert task["used_annotation"] == 11 and task["file_upload"] == "1a2b3c4d-cat.jpg"
    assert "result" not in task["annotations"][0]  # it is in objects and choice
    assert task["annotations"][0]["lead_time"] == 12.5
    # the cancelled annotation is kept, whole, and not used
    dog = store.metadata("ls/dogs/dog.jpg")
    assert dog["label_studio"]["used_annotation"] == 32
    assert dog["label_studio"]["annotations"][0] == EXPORT[2]["annotations"][0]
    ingest = report("ingest")
    assert "ls/project-1-at-2026-11-05-10-00-1a2b3c4d.json" in ingest["annotation_files"]
    assert ingest["unused_metadata"] == [
        "ls/project-1-at-2026-11-05-10-00-1a2b3c4d.json: task 4: "
        "image=/data/upload/1/99999999-gone.jpg (names no image here)"
    ]


def test_the_sdk_own_fixture_a_real_export_reads_as_the_converter_reads_it(workspace):
    fixture = Path(__file__).parent / "fixtures" / "label_studio_sdk_export.json"
    put(
        INCOMING,
        {
            "test_image1.jpg": make_image("JPEG", (500, 320)),
            "export.json": fixture.read_text(),
        },
    )
    objects = ingest_and_pack().metadata("test_image1.jpg")["objects"]
    assert [o["category"] for o in objects] == [
        "rectangle_label",
        "polygon_label",
        "keypoint_label1",
        "keypoint_label2",
    ]
    # the converter's COCO annotations for it
    assert close(
        objects[0]["bbox"],
        [159.70961887477313, 13.163120567375884, 31.76043557168784, 31.773049645390074],
    )
    assert close(
        objects[1]["segmentation"],
        [
            [
                208.7114337568058,
                11.347517730496454,
                207.80399274047187,
                39.0354609929078,
                226.86025408348456,
                39.94326241134752,
            ]
        ],
    )
    assert close(
        objects[1]["bbox"],
        [207.80399274047187, 11.347517730496454, 19.056261343012693, 28.595744680851062],
    )
    # it joins the keypoints into one annotation: [113, 102, 2, 89, 91, 2], rounded
    assert close(
        objects[2]["keypoints"] + objects[3]["keypoints"], [113, 102, 2, 89, 91, 2], within=0.5
    )


def test_the_ground_truth_wins_and_a_bad_task_is_reported_not_fatal(workspace):
    box = {"x": 0, "y": 0, "width": 50, "height": 50, "rectanglelabels": ["a"]}
    late = {**box, "rectanglelabels": ["b"]}

    def annotation(number, value, **extra):
        result = [
            {
                "id": f"r{number}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "value": value,
            }
        ]
        return {"id": number, "result": result, "updated_at": f"2026-01-0{number}", **extra}

    tasks = [
        {
            "id": 1,
            "data": {"image": "a.png"},
            "annotations": [annotation(1, box, ground_truth=True), annotation(2, late)],
        },
        {
            "id": 2,
            "data": {"image": "b.png"},
            "annotations": [annotation(3, box), annotation(4, late)],
        },
        "not a task",
        {"id": 4, "data": {"image": "cat.png"}, "annotations": []},  # two of that name
        {"id": 5, "data": {"image": "b.png"}, "annotations": {"not": "a list"}},
        {"id": 6, "data": {"image": "c.png"}, "completions": [annotation(5, box)]},  # old
        {"id": 7, "data": {"image": "d.png"}, "annotations": [{"id": 6, "result": []}]},
    ]
    # a JSON_MIN export beside it is read too (test_annotations_tables.py); the JSON's
    # fields win, read after it
    json_min = [{"image": "/data/upload/1/a.png", "id": 1, "annotator": 1, "annotation_id": 1}]
    put(
        INCOMING,
        {
            "min.json": json.dumps(json_min),
            "a.png": make_image(size=(40, 20)),
            "b.png": make_image(size=(40, 20), seed=1),
            "c.png": make_image(size=(40, 20), seed=4),
            "d.png": make_image(size=(40, 20), seed=5),
            "x/cat.png": make_image(seed=2),
            "y/cat.png": make_image(seed=3),
            "tasks.json": json.dumps(tasks),
        },
    )
    store = ingest_and_pack()
    a, b = store.metadata("a.png"), store.metadata("b.png")
    assert [o["category"] for o in a["objects"]] == ["a"]  # the ground truth, not the latest
    assert a["objects"][0]["bbox"] == [0, 0, 20, 10]  # no original size: the image's own
    assert [o["category"] for o in b["objects"]] == ["b"]  # the latest
    c, d = store.metadata("c.png"), store.metadata("d.png")
    assert [o["category"] for o in c["objects"]] == ["a"]
    assert "result" not in c["label_studio"]["completions"][0]
    assert d["objects"] == []  # labelled: nothing in it
    assert sorted(report("ingest")["unused_metadata"]) == [
        "tasks.json: task #3 of the list: not a Label Studio task (TypeError: no data "
        "object, or no list of annotations)",
        "tasks.json: task 4: image=cat.png (could be any of x/cat.png, y/cat.png; put the "
        "JSON beside its images)",
        "tasks.json: task 5: not a Label Studio task (TypeError: no data object, or no list "
        "of annotations)",
    ]
