"""YOLO as ultralytics reads it (its dataset docs for detect, segment, OBB and pose, and
`verify_image_label`), and as the labelling tools export it: CVAT's "YOLO 1.1", Label
Studio's "YOLO", Roboflow's "YOLOv8". ultralytics itself needs torchvision, which does
not install beside this project's CPU torch: the expected values follow its documented
rule (`ultralytics_rule` below), written from its docs, not from our code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ingest_and_pack, make_image, put, report, stage

INCOMING = Path("data/incoming")
W, H = 64, 48


def strict() -> None:
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("strict: false", "strict: true"))


def r(value: float) -> int | float:
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def ultralytics_rule(line: str, names: dict[int, str], kpt: tuple[int, int] | None = None) -> dict:
    """One label line in pixels of a WxH image, as ultralytics' docs define the formats:
    detect `cls xc yc w h`; segment `cls x1 y1 ... xn yn` whose box is its extent
    (segments2boxes); OBB `cls x1 y1 x2 y2 x3 y3 x4 y4` (a four-point segment); pose
    `cls xc yc w h` + kpt_shape[0] points of kpt_shape[1] values."""
    values = [float(v) for v in line.split()]
    cls, rest = int(values[0]), values[1:]
    out = {"category_id": cls, "category": names.get(cls, str(cls))}
    if kpt is None and len(rest) > 4:
        xs, ys = [x * W for x in rest[0::2]], [y * H for y in rest[1::2]]
        out["bbox"] = [r(min(xs)), r(min(ys)), r(max(xs) - min(xs)), r(max(ys) - min(ys))]
        out["segmentation"] = [[r(c) for xy in zip(xs, ys, strict=True) for c in xy]]
        return out
    xc, yc, w, h = rest[:4]
    out["bbox"] = [r((xc - w / 2) * W), r((yc - h / 2) * H), r(w * W), r(h * H)]
    if kpt is not None:
        points, visible = [], 0
        for i in range(4, len(rest), kpt[1]):
            x, y = rest[i], rest[i + 1]
            v = rest[i + 2] if kpt[1] == 3 else (0 if x < 0 or y < 0 else 2)
            points += [r(x * W), r(y * H), r(v)]
            visible += v > 0
        out["keypoints"], out["num_keypoints"] = points, visible
    return out


COCO8_YAML = """# Ultralytics COCO8 dataset (docs.ultralytics.com/datasets/detect/coco8/)
path: coco8
train: images/train
val: images/val
test:
names:
  0: person
  1: bicycle
  2: car
"""


def test_ultralytics_detect_layout_gives_boxes_names_and_splits_and_ignores_its_cache(workspace):
    strict()
    labels = {
        "labels/train/000000000009.txt": "0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n",
        "labels/val/000000000036.txt": "2 0.4 0.6 0.2 0.1\n",
    }
    put(
        INCOMING / "coco8",
        {
            "data.yaml": COCO8_YAML,
            "images/train/000000000009.jpg": make_image("JPEG", (W, H), seed=1),
            "images/val/000000000036.jpg": make_image("JPEG", (W, H), seed=2),
            "images/val/000000000042.jpg": make_image("JPEG", (W, H), seed=3),  # background
            "labels/train.cache": b"\x93NUMPY\x01\x00 ultralytics' pickled label cache",
            **labels,
        },
    )
    store = ingest_and_pack()
    names = {0: "person", 1: "bicycle", 2: "car"}
    for rel, text in labels.items():
        key = "coco8/" + rel.replace("labels/", "images/").replace(".txt", ".jpg")
        assert store.metadata(key)["objects"] == [
            ultralytics_rule(ln, names) for ln in text.splitlines()
        ]
    assert store.metadata("coco8/images/val/000000000042.jpg") == {"split": "val"}
    assert store.record("coco8/images/train/000000000009.jpg").split == "train"
    assert report("ingest")["ignored"] == ["coco8/labels/train.cache"]


def test_segment_obb_and_pose_lines_read_as_ultralytics_reads_them(workspace):
    segment = "0 0.1 0.1 0.9 0.2 0.5 0.8 0.2 0.6\n"
    obb = "1 0.1 0.2 0.5 0.1 0.6 0.6 0.2 0.7\n"
    pose3 = "0 0.5 0.5 0.4 0.6 0.3 0.3 2 0.7 0.3 1 0 0 0\n"
    pose2 = "0 0.5 0.5 0.4 0.6 0.3 0.3 -1 -1\n"
    put(
        INCOMING,
        {
            "seg/data.yaml": "names: [person, car]\n",
            "seg/images/a.png": make_image(size=(W, H), seed=1),
            "seg/labels/a.txt": segment + obb,
            "pose/data.yaml": "kpt_shape: [3, 3]\nnames: {0: person}\n",
            "pose/images/b.png": make_image(size=(W, H), seed=2),
            "pose/labels/b.txt": pose3,
            "pose2/data.yaml": "kpt_shape: [2, 2]\nnames: [person]\n",
            "pose2/images/c.png": make_image(size=(W, H), seed=3),
            "pose2/labels/c.txt": pose2,
        },
    )
    store = ingest_and_pack()
    names = {0: "person", 1: "car"}
    assert store.metadata("seg/images/a.png")["objects"] == [
        ultralytics_rule(segment, names),
        ultralytics_rule(obb, names),
    ]
    assert store.metadata("pose/images/b.png")["objects"] == [
        ultralytics_rule(pose3, names, (3, 3))
    ]
    c = store.metadata("pose2/images/c.png")["objects"]
    assert c == [ultralytics_rule(pose2, names, (2, 2))]
    assert c[0]["keypoints"][2::3] == [2, 0] and c[0]["num_keypoints"] == 1


def test_cvat_yolo_1_1_export_labels_beside_images_with_obj_names(workspace):
    strict()
    # CVAT's "YOLO 1.1" export, as its docs lay it out
    put(
        INCOMING / "task_1",
        {
            "obj.names": "cat\ndog\n",
            "obj.data": "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n"
            "backup = backup/\n",
            "train.txt": "data/obj_train_data/frame_000000.jpg\n"
            "data/obj_train_data/frame_000001.jpg\n",
            "obj_train_data/frame_000000.jpg": make_image("JPEG", (W, H), seed=1),
            "obj_train_data/frame_000000.txt": "1 0.5 0.5 0.5 0.5\n",
            "obj_train_data/frame_000001.jpg": make_image("JPEG", (W, H), seed=2),
            "obj_train_data/frame_000001.txt": "",
        },
    )
    store = ingest_and_pack()
    assert store.metadata("task_1/obj_train_data/frame_000000.jpg") == {
        "objects": [ultralytics_rule("1 0.5 0.5 0.5 0.5", {0: "cat", 1: "dog"})],
        "split": "train",
    }
    assert store.metadata("task_1/obj_train_data/frame_000001.jpg") == {
        "objects": [],
        "split": "train",
    }
    ingest = report("ingest")
    assert ingest["rejected"] == 0 and ingest["unused_metadata"] == []
    assert {"task_1/obj.names", "task_1/obj.data", "task_1/train.txt"} <= set(
        ingest["annotation_files"]
    )


def test_label_studio_yolo_export_names_classes_from_classes_txt(workspace):
    strict()
    notes = {
        "categories": [{"id": 0, "name": "Airplane"}, {"id": 1, "name": "Car"}],
        "info": {"year": 2024, "version": "1.0", "contributor": "Label Studio"},
    }
    put(
        INCOMING / "project-1",
        {
            "classes.txt": "Airplane\nCar\n",
            "notes.json": json.dumps(notes),
            "images/5f1b-plane.jpg": make_image("JPEG", (W, H), seed=1),
            "labels/5f1b-plane.txt": "0 0.5 0.5 0.25 0.25\n1 0.1 0.1 0.1 0.1\n",
        },
    )
    store = ingest_and_pack()
    assert [
        o["category"] for o in store.metadata("project-1/images/5f1b-plane.jpg")["objects"]
    ] == [
        "Airplane",
        "Car",
    ]
    assert report("ingest")["unused_metadata"] == [
        "project-1/notes.json: no YOLO labels use its class names"
    ]


def test_roboflow_yolov8_export_with_split_folders_and_parent_paths(workspace):
    strict()
    put(
        INCOMING / "bccd",
        {
            "data.yaml": "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
            "nc: 2\nnames: ['Platelets', 'RBC']\n",
            "README.roboflow.txt": "Exported via roboflow.com\n",
            "train/images/a.jpg": make_image("JPEG", (W, H), seed=1),
            "train/labels/a.txt": "1 0.5 0.5 0.5 0.5\n",
            "valid/images/b.jpg": make_image("JPEG", (W, H), seed=2),
            "valid/labels/b.txt": "0 0.5 0.5 0.5 0.5\n",
        },
    )
    store = ingest_and_pack()
    assert {r.key: (r.split, r.metadata["objects"][0]["category"]) for r in store.records()} == {
        "bccd/train/images/a.jpg": ("train", "RBC"),
        "bccd/valid/images/b.jpg": ("val", "Platelets"),
    }


@pytest.mark.parametrize(
    "line, says",
    [
        ("0 0.5 0.5", "not a YOLO row"),
        ("0 0.5 0.5 0.1 0.1 0.2", "not a YOLO row"),
        ("-1 0.5 0.5 0.1 0.1", "is not a class number"),
        ("1e20 0.5 0.5 0.1 0.1", "is not a class number"),
        ("cat 0.5 0.5 0.1 0.1", "not a YOLO row"),
    ],
)
def test_a_label_file_that_is_not_yolo_rejects_its_image_only(workspace, line, says):
    put(
        INCOMING,
        {
            "data.yaml": "names: [a, b]\n",
            "images/bad.png": make_image(seed=1),
            "labels/bad.txt": f"0 0.5 0.5 0.2 0.2\n{line}\n",
            "images/good.png": make_image(seed=2),
            "labels/good.txt": "1 0.5 0.5 0.2 0.2\n",
        },
    )
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    rejects = report("ingest")["rejects"]
    assert [(r["path"], r["code"]) for r in rejects] == [("images/bad.png", "bad_metadata")]
    assert "labels/bad.txt:2:" in rejects[0]["reason"] and says in rejects[0]["reason"]
    assert [r.key for r in ingest_and_pack().records()] == ["images/good.png"]


def test_class_numbers_without_a_name_and_coordinates_out_of_range_are_reported(workspace):
    put(
        INCOMING,
        {
            "data.yaml": "names: [a, b]\n",
            "images/x.png": make_image(size=(W, H), seed=1),
            "labels/x.txt": "7 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n",
        },
    )
    store = ingest_and_pack()
    assert [o["category"] for o in store.metadata("images/x.png")["objects"]] == ["7", "a"]
    notes = report("ingest")["annotation_notes"]
    assert any("class 7 has no name in data.yaml (2 names)" in n for n in notes)
    assert any("coordinates outside 0..1" in n for n in notes)


def test_text_beside_an_image_that_is_not_yolo_is_its_text(workspace):
    # OCR ground truth (tesseract's NAME.gt.txt) and captions (NAME.txt) beside images
    put(
        INCOMING,
        {
            "lines/0001.png": make_image(seed=1),
            "lines/0001.gt.txt": "The quick brown fox\n",
            "captions/cat.jpg": make_image("JPEG", seed=2),
            "captions/cat.txt": "a cat on a mat, photograph\r\n",
        },
    )
    store = ingest_and_pack()
    assert store.metadata("lines/0001.png") == {"text": "The quick brown fox"}
    assert store.metadata("captions/cat.jpg") == {"text": "a cat on a mat, photograph"}
