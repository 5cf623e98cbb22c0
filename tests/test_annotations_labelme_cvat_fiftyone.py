"""LabelMe, CVAT for video and FiftyOne's image detection and classification datasets, as
their own tools read them.

The references, run on the fixtures these tests build (the values they gave are written
below as expected values): labelme 6.3.1's own loader (`labelme._label_file.
read_label_file`, imported with PyQt5 stubbed out: it needs Qt only to import) and
globox 2.9.0 (`AnnotationSet.from_labelme(folder, include_poly=True)`) for LabelMe; the
point counts labelme's current source refuses on load (`_validate_shape_semantics`)
restated; fiftyone 1.22.1's `fiftyone.utils.cvat.load_cvat_video_annotations` and
`CVATTrack.to_labels` for CVAT for video, and its `FiftyOneImageDetectionDatasetImporter`
and `FiftyOneImageClassificationDatasetImporter` for its own layouts, all driven without
a database. CVAT's naming of a video's frames (`images/frame_000000.PNG`) is its
documented export layout (docs.cvat.ai, "CVAT for video export") and its exporter's rule
(`dump_media_files`: `frame_{:06d}` + `.PNG`)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

from PIL import Image

from imageshelf.annotations import KeyIndex, read_place
from imageshelf.store import ImageStore

from conftest import ingest_and_pack, make_image, put, report, sh, stage, stored

INCOMING = Path("data/incoming")


def noise(fmt: str, size: tuple[int, int], seed: int, **save: Any) -> bytes:
    """An image of random pixels: one that compresses badly, so a large file."""
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(out, fmt, **save)
    return out.getvalue()


def labelme_json(
    shapes: list[dict], image_path: str, image: bytes | None, size: tuple, **more: Any
) -> str:
    """A LabelMe file as labelme 5 writes it (write_label_file: these keys, this order,
    then `other_data`); `more` sets `flags` or adds fields."""
    return json.dumps(
        {
            "version": "5.5.0",
            "flags": more.pop("flags", {}),
            "shapes": shapes,
            "imagePath": image_path,
            "imageData": None if image is None else base64.b64encode(image).decode(),
            "imageHeight": size[1],
            "imageWidth": size[0],
            **more,
        },
        indent=2,
    )


def shape(label: str, kind: str, points: list, **extra: Any) -> dict:
    base = {"label": label, "points": points, "group_id": None, "description": "",
            "shape_type": kind, "flags": {}, "mask": None}  # fmt: skip
    return {**base, **extra}


def mask_png() -> str:
    """labelme's img_arr_to_b64 of a 6 x 4 mask (uint8, 0 and 1)."""
    out = io.BytesIO()
    Image.frombytes("L", (6, 4), bytes([0, 1, 1, 1, 1, 0] * 4)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


BIG = noise("JPEG", (1000, 720), 1, quality=95)  # its base64 is over 1 MiB
EMBEDDED = make_image("PNG", (40, 30), seed=4)
A_SHAPES = [
    shape("car", "rectangle", [[30.5, 40], [10, 20]]),
    shape("road", "polygon", [[1, 2], [50, 2], [60, 30], [5, 28]], group_id=3),
    shape("wheel", "circle", [[100, 100], [103, 104]], description="front"),
    shape("lane", "line", [[0, 590], [799, 500]]),
    shape("eye", "point", [[7.25, 8]], flags={"visible": True}),
    shape("edge", "linestrip", [[1, 1], [5, 9], [9, 3]]),
    shape("blob", "mask", [[4, 5], [9, 8]], mask=mask_png()),
    shape("sign", "oriented_rectangle", [[10, 0], [20, 10], [10, 20], [0, 10]]),
]


def labelme_layout() -> dict[str, bytes | str]:
    """labelme's layouts: JSON beside its image (a large one embedding a copy, labelme's
    default), one without imageData, one in another folder naming its image by
    `imagePath`, and one embedding its image with no image file."""
    small = make_image("PNG", (48, 40), seed=2)
    return {
        "labelme/shots/a.jpg": BIG,
        "labelme/shots/a.json": labelme_json(A_SHAPES, "a.jpg", BIG, (1000, 720)),
        "labelme/shots/b.png": small,
        "labelme/shots/b.json": labelme_json(
            [shape("cat", "rectangle", [[1, 2], [11, 12]])],
            "b.png",
            small,
            (48, 40),
            flags={"indoor": True, "blurry": False},
            reviewer="ana",
        ),  # fmt: skip
        "labelme/img/c.jpg": make_image("JPEG", (32, 24), seed=3),
        "labelme/ann/c.json": labelme_json(
            [shape("dog", "polygon", [[2, 3], [20, 3], [12, 18]])], "..\\img\\c.jpg", None, (32, 24)
        ),
        "labelme/embedded/d.json": labelme_json(
            [shape("fish", "rectangle", [[5, 6], [25, 16]])], "d.png", EMBEDDED, (40, 30)
        ),
    }


# globox 2.9.0, AnnotationSet.from_labelme(<folder>, include_poly=True): each image's
# boxes as (label, xmin, ymin, xmax, ymax), rectangles and polygons only.
GLOBOX = {
    "shots/a.jpg": [("car", 10.0, 20.0, 30.5, 40.0), ("road", 1.0, 2.0, 60.0, 30.0)],
    "shots/b.png": [("cat", 1.0, 2.0, 11.0, 12.0)],
    "img/c.jpg": [("dog", 2.0, 3.0, 20.0, 18.0)],
    "embedded/d.png": [("fish", 5.0, 6.0, 25.0, 16.0)],
}


# labelme 6.3.1, read_label_file(<json>): (image_path, sha256 of image_data (its first 16
# digits), flags, other_data, and per shape (label, shape_type, group_id, description,
# flags, the mask's array shape)). image_data is the file imagePath names, or imageData
# decoded where it is not null.
LABELME = {
    "shots/a.jpg": ("a.jpg", "ae830a0eb6229d35", {}, {}, [
        ("car", "rectangle", None, "", {}, None), ("road", "polygon", 3, "", {}, None),
        ("wheel", "circle", None, "front", {}, None), ("lane", "line", None, "", {}, None),
        ("eye", "point", None, "", {"visible": True}, None),
        ("edge", "linestrip", None, "", {}, None), ("blob", "mask", None, "", {}, (4, 6)),
        ("sign", "oriented_rectangle", None, "", {}, None)]),
    "shots/b.png": ("b.png", "e4f74c299066196e", {"indoor": True, "blurry": False},
                    {"reviewer": "ana"}, [("cat", "rectangle", None, "", {}, None)]),
    "img/c.jpg": ("../img/c.jpg", "ce95c239ddb36117", {}, {}, [
        ("dog", "polygon", None, "", {}, None)]),
    "embedded/d.png": ("d.png", "75706e95be6e42d6", {}, {}, [
        ("fish", "rectangle", None, "", {}, None)]),
}  # fmt: skip


def as_labelme(fields: dict, image: bytes) -> tuple:
    """An image's stored fields in the shape of LABELME."""
    known = ("version", "imagePath", "imageHeight", "imageWidth")
    shapes = []
    for o in fields["objects"]:
        mask = None
        if "mask" in o:
            png = Image.open(io.BytesIO(base64.b64decode(o["mask"])))
            mask = (png.height, png.width)
        shapes.append((o["category"], o["shape_type"], o.get("group_id"),
                       o.get("description", ""), o.get("flags", {}), mask))  # fmt: skip
    return (
        fields["labelme"]["imagePath"].replace("\\", "/"),
        hashlib.sha256(image).hexdigest()[:16],
        fields.get("flags", {}),
        {k: v for k, v in fields["labelme"].items() if k not in known},
        shapes,
    )


def boxes_of(objects: list[dict]) -> list[tuple]:
    """The rectangles and polygons of `objects` as globox gives them."""
    return [
        (o["category"], o["bbox"][0], o["bbox"][1], o["bbox"][0] + o["bbox"][2],
         o["bbox"][1] + o["bbox"][3])
        for o in objects
        if o["shape_type"] in ("rectangle", "polygon")
    ]  # fmt: skip


A_OBJECTS = [  # labelme's shape types, as labelme_json wrote them; docs/ANNOTATIONS.md
    {"category": "car", "shape_type": "rectangle", "bbox": [10, 20, 20.5, 20]},
    {"category": "road", "shape_type": "polygon", "bbox": [1, 2, 59, 28],
     "segmentation": [[1, 2, 50, 2, 60, 30, 5, 28]], "group_id": 3},
    {"category": "wheel", "shape_type": "circle", "bbox": [95, 95, 10, 10],
     "points": [[100, 100], [103, 104]], "description": "front"},
    {"category": "lane", "shape_type": "line", "bbox": [0, 500, 799, 90],
     "points": [[0, 590], [799, 500]]},
    {"category": "eye", "shape_type": "point", "points": [[7.25, 8]],
     "flags": {"visible": True}},
    {"category": "edge", "shape_type": "linestrip", "bbox": [1, 1, 8, 8],
     "points": [[1, 1], [5, 9], [9, 3]]},
    {"category": "blob", "shape_type": "mask", "bbox": [4, 5, 6, 4], "mask": mask_png()},
    {"category": "sign", "shape_type": "oriented_rectangle", "bbox": [0, 0, 20, 20],
     "segmentation": [[10, 0, 20, 10, 10, 20, 0, 10]]},
]  # fmt: skip


def read(files: dict[str, bytes | str], root: Path) -> Any:
    """What the annotation files of `files`, written under `root`, say (read_place)."""
    put(root, files)
    names = [rel for rel in files if rel.endswith((".json", ".xml"))]
    images = [rel for rel in files if rel not in names]
    return read_place(root, names, KeyIndex(images))


# ------------------------------------------------------------------ LabelMe


def test_labelme_shapes_become_objects_and_imagedata_is_never_metadata(workspace):
    files = labelme_layout()
    assert len(files["labelme/shots/a.json"]) > 1 << 20  # labelme's default: the image in it
    put(INCOMING, files)
    store = ingest_and_pack()
    a = store.metadata("labelme/shots/a.jpg")
    assert a["objects"] == A_OBJECTS
    assert a["labelme"] == {"version": "5.5.0", "imagePath": "a.jpg", "imageHeight": 720,
                            "imageWidth": 1000}  # fmt: skip
    assert store.get("labelme/shots/a.jpg") == BIG
    assert all("imageData" not in json.dumps(store.metadata(key)) for key in store)
    b = store.metadata("labelme/shots/b.png")
    assert b["flags"] == {"indoor": True, "blurry": False} and b["labelme"]["reviewer"] == "ana"
    for key, boxes in GLOBOX.items():
        fields = store.metadata(f"labelme/{key}")
        assert boxes_of(fields["objects"]) == boxes, key
        assert as_labelme(fields, store.get(f"labelme/{key}")) == LABELME[key], key
    notes = report("ingest")["annotation_notes"]
    assert (
        "labelme/shots/a.json and 1 other LabelMe file(s): imageData, a copy of the image "
        "file: the image file is stored, the copy is not" in notes
    )
    assert report("ingest")["rejects"] == []


def test_a_labelme_file_whose_image_is_inside_it_stores_that_image(workspace):
    """labelme's read_label_file uses imageData when it is there: with no image file
    beside the JSON, it is the image, stored byte for byte under the JSON's name with
    imagePath's suffix."""
    put(INCOMING, {k: v for k, v in labelme_layout().items() if "embedded" in k})
    store = ingest_and_pack()
    assert list(store) == ["labelme/embedded/d.png"]
    assert store.get("labelme/embedded/d.png") == EMBEDDED
    assert store.metadata("labelme/embedded/d.png")["objects"] == [
        {"category": "fish", "shape_type": "rectangle", "bbox": [5, 6, 20, 10]}
    ]
    validated = stage("validate")  # it reads the bytes from the JSON again: the same
    assert validated.exit_code == 0 and report("validate")["sources_checked"] == 1


def test_an_embedded_image_that_is_not_one_is_refused_and_in_tracked_annotations_unused(
    workspace,
):
    """The bytes imageData decodes to are an image only if they are one (by content, as
    every file); a LabelMe file in data/annotations/ adds no image."""
    put(INCOMING, {
        "x/bad.json": labelme_json([], "bad.png", None, (8, 8), imageData="!!not base64"),
        "x/text.json": labelme_json([], "text.png", b"just words", (8, 8)),
        "x/zipped.zip": zip_of({"in/e.json": labelme_json([], "e.png", EMBEDDED, (40, 30))}),
    })  # fmt: skip
    put(Path("data/annotations"), {"y/f.json": labelme_json([], "f.png", EMBEDDED, (40, 30))})
    store = ingest_and_pack()
    assert (
        list(store) == ["x/zipped.zip/in/e.png"] and store.get("x/zipped.zip/in/e.png") == EMBEDDED
    )
    rejects = {r["path"]: r["reason"] for r in report("ingest")["rejects"]}
    assert rejects["x/bad.png"] == "cannot read: bad.json: imageData is not base64"
    assert rejects["x/text.png"].startswith("not an image")
    assert report("pack")["unused_annotations"] == [
        "y/f.json: LabelMe with its image inside, y/f.png: no such image"
    ]


def zip_of(files: dict[str, str | bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_labelme_file_labelme_would_not_open_rejects_its_image_with_why(tmp_path):
    files = {
        "e.png": make_image(seed=5),
        "e.json": labelme_json(
            [shape("x", "rectangle", [[1, 2], [3, 4], [5, 6]])], "e.png", None, (32, 24)
        ),  # fmt: skip
        "f.png": make_image(seed=6),
        "f.json": labelme_json([shape("x", "hexagon", [[1, 2]])], "f.png", None, (32, 24)),
        "gone/g.json": labelme_json([], "g.jpg", None, (8, 8)),
    }
    found = read(files, tmp_path)
    assert found.broken["e.png"] == (
        "e.json: not a LabelMe file labelme opens: shapes[0]: a rectangle has 2 point(s), not 3"
    )
    assert "shape_type 'hexagon'" in found.broken["f.png"]
    assert found.unused == [
        "gone/g.json: LabelMe, but its image g.jpg is not there and it embeds none "
        "(imageData is null): put the image beside it"
    ]


def test_a_sidecar_over_the_metadata_limit_still_rejects_its_image_labelme_s_too(tmp_path):
    """Only imageData is not counted: a LabelMe file's shapes are metadata like any
    sidecar's fields (and neither file is parsed)."""
    long = "y" * (1 << 20)
    files = {
        "h.png": make_image(seed=7),
        "h.json": json.dumps({"text": long}),
        "i.png": make_image(seed=8),
        "i.json": labelme_json(
            [shape("x", "point", [[1, 2]], description=long)], "i.png", make_image(seed=8), (32, 24)
        ),  # fmt: skip
    }
    broken = read(files, tmp_path).broken
    for key in ("h.png", "i.png"):
        assert broken[key].endswith(", over 1,048,576 (ingest.max_metadata_bytes in params.yaml)")


# ------------------------------------------------------------------ CVAT for video

CVAT_VIDEO = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id><name>street</name><size>4</size><mode>interpolation</mode>
      <overlap>5</overlap><start_frame>0</start_frame><stop_frame>3</stop_frame>
      <labels>
        <label><name>car</name><attributes><attribute><name>color</name>
          <input_type>select</input_type><values>red
blue</values></attribute></attributes></label>
        <label><name>person</name><attributes/></label>
      </labels>
      <original_size><width>64</width><height>48</height></original_size>
    </task>
    <dumped>2026-12-07 10:00:00.000000+00:00</dumped>
    <source>street.mp4</source>
  </meta>
  <track id="0" label="car" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0"
          xtl="10.00" ytl="12.00" xbr="30.00" ybr="28.50" z_order="0">
      <attribute name="color">red</attribute>
    </box>
    <box frame="1" keyframe="0" outside="0" occluded="1"
          xtl="12.00" ytl="12.00" xbr="32.00" ybr="28.50" z_order="0">
      <attribute name="color">red</attribute>
    </box>
    <box frame="2" keyframe="1" outside="1" occluded="0"
          xtl="14.00" ytl="12.00" xbr="34.00" ybr="28.50" z_order="0">
      <attribute name="color">red</attribute>
    </box>
  </track>
  <track id="1" label="person" source="auto" group_id="2">
    <polygon frame="1" keyframe="1" outside="0" occluded="0"
          points="40.00,10.00;50.00,10.00;45.00,30.00" z_order="1">
    </polygon>
    <polygon frame="2" keyframe="0" outside="0" occluded="0"
          points="41.00,10.00;51.00,10.00;46.00,30.00" z_order="1">
    </polygon>
    <polygon frame="3" keyframe="1" outside="1" occluded="0"
          points="41.00,10.00;51.00,10.00;46.00,30.00" z_order="1">
    </polygon>
  </track>
  <track id="2" label="car" source="manual">
    <box frame="9" keyframe="1" outside="0" occluded="0"
          xtl="1" ytl="1" xbr="2" ybr="2" z_order="0"/>
  </track>
</annotations>
"""


def cvat_video_layout() -> dict[str, bytes | str]:
    """CVAT's "CVAT for video 1.1" export with images: annotations.xml and
    images/frame_NNNNNN.PNG, as its exporter names a video's frames."""
    frames = {
        f"cvat_video/images/frame_{n:06d}.PNG": make_image("PNG", (64, 48), seed=20 + n)
        for n in range(4)
    }
    return {"cvat_video/annotations.xml": CVAT_VIDEO, **frames}


# fiftyone 1.22.1: load_cvat_video_annotations(annotations.xml), then each track's
# to_labels(): frame number (1-based) -> (track id, label, bounding_box relative, or a
# polygon's points relative). Outside shapes are not labels. FiftyOne rounds a box's
# corners to whole pixels (CVATVideoBox.from_box_dict: int(round(float(xtl)))): 28.5 is
# 28 there; the store keeps the file's 28.5, as datumaro's CvatExtractor does.
FIFTYONE_CVAT = {
    1: [("0", "car", [0.15625, 0.25, 0.3125, 0.3333333333333333])],
    2: [("0", "car", [0.1875, 0.25, 0.3125, 0.3333333333333333]),
        ("1", "person", [[0.625, 0.2083333], [0.78125, 0.2083333], [0.703125, 0.625]])],
    3: [("1", "person", [[0.640625, 0.2083333], [0.796875, 0.2083333], [0.71875, 0.625]])],
    10: [("2", "car", [0.015625, 0.020833333333333332, 0.015625, 0.020833333333333332])],
}  # fmt: skip


# ------------------------------------------------------------------ FiftyOne

SIZES = {"img1": (64, 48), "img2": (40, 30), "night/img3": (32, 16), "img4": (20, 20)}
FO_DETECTIONS = {
    "classes": ["cat", "dog"],
    "labels": {
        "img1": [
            {"label": 0, "bounding_box": [0.1, 0.2, 0.5, 0.25], "confidence": 0.9,
             "attributes": {"occluded": False}},
            {"label": "bird", "bounding_box": [0, 0, 1, 1], "confidence": None, "attributes": {}},
        ],
        "img2": [],
        "night/img3": [{"label": 1, "bounding_box": [0.25, 0.5, 0.125, 0.5]}],
        "img4": None,
        "ghost": [{"label": 0, "bounding_box": [0, 0, 0.5, 0.5]}],
    },
}  # fmt: skip
FO_CLASSIFICATIONS = {
    "classes": ["cat", "dog"],
    "labels": {
        "c1": 0,
        "c2": "dog",
        "c3": {"label": 1, "confidence": 0.75, "attributes": {"source": "human"}},
        "c4": ["cat", {"label": 1, "confidence": 0.5}],
        "c5": None,
    },
}


def fiftyone_layout() -> dict[str, bytes | str]:
    """fiftyone.types.FiftyOneImageDetectionDataset and ...ClassificationDataset as
    FiftyOne exports them: data/ (the images, named by UUID) and labels.json."""
    files: dict[str, bytes | str] = {
        "fiftyone_det/labels.json": json.dumps(FO_DETECTIONS),
        "fiftyone_cls/labels.json": json.dumps(FO_CLASSIFICATIONS),
    }
    for n, (uuid, size) in enumerate(SIZES.items()):
        files[f"fiftyone_det/data/{uuid}.jpg"] = make_image("JPEG", size, seed=30 + n)
    for n in range(1, 6):
        files[f"fiftyone_cls/data/c{n}.png"] = make_image("PNG", (16, 16), seed=40 + n)
    return files


# fiftyone 1.22.1, FiftyOneImageDetectionDatasetImporter(dataset_dir=fiftyone_det) (with
# "ghost", a label of no image, taken out: the importer stops on it with a KeyError):
# image -> [(label, bounding_box, confidence, other fields)], None for no label. Its
# Detection takes `attributes` as fields of its own; the store keeps them as written.
FIFTYONE_DETECTED = {
    "img1": [("cat", [0.1, 0.2, 0.5, 0.25], 0.9, {"occluded": False}),
             ("bird", [0.0, 0.0, 1.0, 1.0], None, {})],
    "img2": [],
    "img4": None,
    "night/img3": [("dog", [0.25, 0.5, 0.125, 0.5], None, {})],
}  # fmt: skip
# ...and FiftyOneImageClassificationDatasetImporter(dataset_dir=fiftyone_cls): image ->
# (label, other fields), a list for Classifications, None for no label.
FIFTYONE_CLASSIFIED = {
    "c1": ("cat", {}),
    "c2": ("dog", {}),
    "c3": ("dog", {"confidence": 0.75, "source": "human"}),
    "c4": [("cat", {}), ("dog", {"confidence": 0.5})],
    "c5": None,
}


def fiftyone_detections(objects: list[dict] | None, size: tuple[int, int]) -> Any:
    """The store's objects as FiftyOne's importer gives them: relative boxes (to 6
    places: pixels are kept to 3)."""
    if objects is None:
        return None
    scale = size * 2
    return [
        (o["category"], [round(v / s, 6) for v, s in zip(o["bbox"], scale, strict=True)],
         o.get("confidence"), o.get("attributes", {}))
        for o in objects
    ]  # fmt: skip


def fiftyone_classification(fields: dict) -> Any:
    def one(item: dict) -> tuple:
        rest = {k: v for k, v in item.items() if k not in ("label", "attributes")}
        return item["label"], {**rest, **item.get("attributes", {})}

    if "classifications" in fields:
        return [one(item) for item in fields["classifications"]]
    return one(fields) if "label" in fields else None


def assert_fiftyone(metadata: dict[str, dict]) -> None:
    """Every image of the two FiftyOne layouts holds what FiftyOne's importers give."""
    for uuid, expected in FIFTYONE_DETECTED.items():
        fields = metadata[f"fiftyone_det/data/{uuid}.jpg"]
        assert fiftyone_detections(fields.get("objects"), SIZES[uuid]) == expected, uuid
    for uuid, expected in FIFTYONE_CLASSIFIED.items():
        fields = metadata[f"fiftyone_cls/data/{uuid}.png"]
        assert fiftyone_classification(fields) == expected, uuid


def assert_cvat_video(metadata: dict[str, dict]) -> None:
    """Each frame's objects are FiftyOne's labels of frame + 1, in pixels (FiftyOne's
    rounding of a box's corners aside)."""
    for frame in range(4):
        objects = metadata[f"cvat_video/images/frame_{frame:06d}.PNG"]["objects"]
        expected = FIFTYONE_CVAT.get(frame + 1, [])
        assert [(str(o["track_id"]), o["category"]) for o in objects] == [
            (track, label) for track, label, _ in expected
        ], frame
        for obj, (_track, _label, where) in zip(objects, expected, strict=True):
            if obj["type"] == "box":
                pixels = [where[0] * 64, where[1] * 48, where[2] * 64, where[3] * 48]
                assert all(abs(a - b) <= 0.5 for a, b in zip(obj["bbox"], pixels, strict=True))
            else:
                flat = [c * (64, 48)[i % 2] for i, c in enumerate(sum(where, []))]
                assert all(
                    abs(a - b) < 1e-3 for a, b in zip(obj["segmentation"][0], flat, strict=True)
                )


FRAME_1 = [  # CVAT's attributes, typed; the track's label, id, source and group_id
    {"category": "car", "type": "box", "track_id": 0, "source": "manual", "frame": 1,
     "keyframe": 0, "outside": 0, "occluded": 1, "z_order": 0, "bbox": [12, 12, 20, 16.5],
     "attributes": {"color": "red"}},
    {"category": "person", "type": "polygon", "track_id": 1, "source": "auto", "group_id": 2,
     "frame": 1, "keyframe": 1, "outside": 0, "occluded": 0, "z_order": 1,
     "bbox": [40, 10, 10, 20], "segmentation": [[40, 10, 50, 10, 45, 30]]},
]  # fmt: skip


def test_cvat_for_video_gives_each_frame_image_its_tracks_objects(tmp_path):
    found = read(cvat_video_layout(), tmp_path)
    metadata = {key: found.for_image(key, 64, 48) for key in sorted(found.keys())}
    assert metadata["cvat_video/images/frame_000001.PNG"]["objects"] == FRAME_1
    assert metadata["cvat_video/images/frame_000003.PNG"]["objects"] == []  # outside: gone
    assert_cvat_video(metadata)
    assert found.unused == [
        "cvat_video/annotations.xml: 1 frame(s) with objects but no image frame_NNNNNN.* "
        "beside it or in images/ (first: frame 9, frame_000009.PNG)"
    ]


def test_fiftyone_detection_and_classification_read_as_its_importers_read_them(tmp_path):
    found = read(fiftyone_layout(), tmp_path)
    sizes = {f"fiftyone_det/data/{u}.jpg": s for u, s in SIZES.items()}
    metadata = {
        key: found.for_image(key, *sizes.get(key, (16, 16)))
        for key in [*sizes, *(f"fiftyone_cls/data/c{n}.png" for n in range(1, 6))]
    }
    assert_fiftyone(metadata)
    assert metadata["fiftyone_det/data/img1.jpg"]["objects"][0] == {
        "bbox": [6.4, 9.6, 32, 12], "category": "cat", "category_id": 0, "confidence": 0.9,
        "attributes": {"occluded": False},
    }  # fmt: skip
    assert found.unused == ["fiftyone_det/labels.json: 1 label(s) of no image under data/ "
                            "(first: ghost)"]  # fmt: skip


# ------------------------------------------------------------------ all of them, with DVC


def test_every_layout_side_by_side_through_dvc_repro(repo):
    """One real project: LabelMe, CVAT for video and FiftyOne's two layouts in
    data/incoming/, one `dvc repro`, every image's stored fields against the references."""
    layouts = {**labelme_layout(), **cvat_video_layout(), **fiftyone_layout()}
    put(repo / "data" / "incoming", layouts)
    sh(repo, "dvc", "repro")
    images = stored(repo)
    with ImageStore(repo / "data" / "images.lmdb") as store:
        metadata = {key: store.metadata(key) for key in store}
    assert images["labelme/embedded/d.png"] == EMBEDDED and images["labelme/shots/a.jpg"] == BIG
    assert set(images) == {k for k in layouts if not k.endswith((".json", ".xml"))} | {
        "labelme/embedded/d.png"
    }
    assert metadata["labelme/shots/a.jpg"]["objects"] == A_OBJECTS
    for key, boxes in GLOBOX.items():
        assert boxes_of(metadata[f"labelme/{key}"]["objects"]) == boxes, key
        assert as_labelme(metadata[f"labelme/{key}"], images[f"labelme/{key}"]) == LABELME[key]
    assert metadata["cvat_video/images/frame_000001.PNG"]["objects"] == FRAME_1
    assert_cvat_video(metadata)
    assert_fiftyone(metadata)
    ingest = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingest["rejects"] == []
    assert sorted(u.split(":")[0] for u in ingest["unused_metadata"]) == [
        "cvat_video/annotations.xml", "fiftyone_det/labels.json"
    ]  # fmt: skip
