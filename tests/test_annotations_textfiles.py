"""The datasets whose annotations are text files, each read as its reference reads it:
KITTI, DOTA, WIDER FACE, CelebA, ICDAR 2015, PaddleOCR and MOTChallenge; and a text file
no reader places, reported alone with what it looks like.

None of the references installs here (torchvision's dataset classes need the CUDA
build of torchvision; DOTA_devkit, PaddleOCR and the MOTChallenge devkit are scripts,
not packages): each expected value comes from the reference's rule, restated below as
plain code from where it is written (named in each `*_rule` function), never from
imageshelf's readers. Each layout is the one its tool documents, with lines taken from
the datasets' own files. The last test drops every layout into one project and runs a
real `dvc repro`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imageshelf.store import ImageStore

from conftest import ingest_and_pack, make_image, put, report, sh, stage

INCOMING = Path("data/incoming")
SIZE = (64, 48)


def image(seed: int, fmt: str = "PNG") -> bytes:
    return make_image(fmt, SIZE, seed=seed)


def r(value: float) -> int | float:
    """A pixel value as the store keeps one: 3 decimals, whole as an int."""
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def plain(value: float) -> int | float:
    """A number as written in a file: whole as an int."""
    return int(value) if float(value).is_integer() else value


def box(left: float, top: float, right: float, bottom: float) -> list[int | float]:
    """A corner box as COCO's [x, y, width, height]."""
    return [r(left), r(top), r(right - left), r(bottom - top)]


# ------------------------------------------------------------------ KITTI

KITTI_000000 = (
    "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n"
)
KITTI_000001 = (
    "Truck 0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56\n"
    "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57\n"
    "Cyclist 0.00 3 -1.65 676.60 163.95 688.98 193.93 1.86 0.60 2.02 4.59 1.32 45.84 -1.55\n"
    "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
)
KITTI_CALIB = (
    "P2: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 "
    "1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03\n"
    "R0_rect: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 "
    "-4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01\n"
)


def kitti_rule(line: str) -> dict[str, Any]:
    """torchvision's `Kitti._parse_target` (torchvision/datasets/kitti.py), after the
    devkit's readme: type, truncated, occluded, alpha, bbox (left, top, right, bottom),
    dimensions (h, w, l), location (x, y, z), rotation_y; the box made COCO's."""
    cells = line.split(" ")
    target = {
        "type": cells[0],
        "truncated": float(cells[1]),
        "occluded": int(cells[2]),
        "alpha": float(cells[3]),
        "bbox": [float(x) for x in cells[4:8]],
        "dimensions": [float(x) for x in cells[8:11]],
        "location": [float(x) for x in cells[11:14]],
        "rotation_y": float(cells[14]),
    }
    return {
        "category": target.pop("type"),
        **target,
        "bbox": box(*target["bbox"]),
    }


def kitti_layout(root: Path) -> dict[str, dict[str, Any]]:
    """The KITTI object benchmark as the devkit (and torchvision's `Kitti`) lays it out,
    with the 3D tools' ImageSets/ split lists; the expected fields per image."""
    put(
        root,
        {
            "training/image_2/000000.png": image(1),
            "training/image_2/000001.png": image(2),
            "training/label_2/000000.txt": KITTI_000000,
            "training/label_2/000001.txt": KITTI_000001,
            "training/calib/000000.txt": KITTI_CALIB,
            "testing/image_2/000000.png": image(3),
            "ImageSets/train.txt": "000000\n",
            "ImageSets/val.txt": "000001\n",
        },
    )
    calib = {
        line.split(":")[0]: [float(v) for v in line.split(":")[1].split()]
        for line in KITTI_CALIB.splitlines()
    }
    return {
        "training/image_2/000000.png": {
            "objects": [kitti_rule(KITTI_000000.strip())],
            "calib": calib,
            "split": "train",
        },
        "training/image_2/000001.png": {
            "objects": [kitti_rule(line) for line in KITTI_000001.splitlines()],
            "split": "val",
        },
        "testing/image_2/000000.png": {},
    }


def test_kitti_labels_calibration_and_image_sets(workspace):
    expected = kitti_layout(INCOMING / "kitti")
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata("kitti/" + key) == fields, key
    dont_care = store.metadata("kitti/training/image_2/000001.png")["objects"][3]
    assert dont_care["category"] == "DontCare" and dont_care["location"] == [-1000] * 3
    assert report("ingest")["unused_metadata"] == []


def test_kitti_and_dota_lines_where_yolo_keeps_its_own_are_not_read_as_yolo(workspace):
    """A KITTI label beside its image and DOTA labels under `labels/` (YOLO's places) read
    as their own format; YOLO's rows beside them still read as YOLO."""
    dota_line = "1054 1028 1063 1011 1111 1040 1112 1062 ship 1"
    put(
        INCOMING,
        {
            "beside/000003.png": image(4),
            "beside/000003.txt": KITTI_000000,
            "obb/images/P0706.png": image(5),
            "obb/labels/P0706.txt": dota_line + "\n",
            "yolo/images/a.png": image(6),
            "yolo/labels/a.txt": "0 0.5 0.5 0.25 0.5\n",
        },
    )
    store = ingest_and_pack()
    assert store.metadata("beside/000003.png") == {"objects": [kitti_rule(KITTI_000000.strip())]}
    assert store.metadata("obb/images/P0706.png") == {"objects": [dota_rule(dota_line)]}
    assert store.metadata("yolo/images/a.png")["objects"] == [
        {"bbox": [24, 12, 16, 24], "category": "0", "category_id": 0}
    ]


# ------------------------------------------------------------------ DOTA

# The first lines of DOTA_devkit's own example, example/labelTxt/P0706.txt.
DOTA_P0706 = (
    "imagesource:GoogleEarth\n"
    "gsd:0.255589285596\n"
    "1054 1028 1063 1011 1111 1040 1112 1062 ship 1\n"
    "807 331 800 324 817 309 823 316 ship 0\n"
    "478 214 488 202 908 628 895 640 harbor 0\n"
)


def dota_rule(line: str) -> dict[str, Any]:
    """DOTA_devkit's `parse_dota_poly` (dota_utils.py): `name` is the 9th value,
    `difficult` the 10th ('0' without one), `poly` the first eight as four points;
    `dots4ToRec4` gives their extent. Made COCO's: the corners as a polygon, the extent
    as [x, y, width, height]."""
    cells = line.strip().split(" ")
    poly = [float(c) for c in cells[:8]]
    xs, ys = poly[0::2], poly[1::2]
    return {
        "bbox": box(min(xs), min(ys), max(xs), max(ys)),
        "category": cells[8],
        "difficult": int(cells[9]) if len(cells) >= 10 else 0,
        "segmentation": [[r(c) for c in poly]],
    }


def dota_layout(root: Path) -> dict[str, dict[str, Any]]:
    put(
        root,
        {
            "train/images/P0706.png": image(7),
            "train/labelTxt/P0706.txt": DOTA_P0706,
            "val/images/P1888.png": image(8),
            "val/labelTxt-v1.5/P1888.txt": "10 10 20 10 20 30 10 30 small-vehicle\n",
        },
    )
    return {
        "train/images/P0706.png": {
            "objects": [dota_rule(line) for line in DOTA_P0706.splitlines()[2:]],
            "dota": {"imagesource": "GoogleEarth", "gsd": 0.255589285596},
        },
        "val/images/P1888.png": {
            "objects": [dota_rule("10 10 20 10 20 30 10 30 small-vehicle")],
        },
    }


def test_dota_oriented_boxes_keep_their_corners_and_header(workspace):
    expected = dota_layout(INCOMING / "DOTA")
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata("DOTA/" + key) == fields, key
    ship = store.metadata("DOTA/train/images/P0706.png")["objects"][0]
    assert ship["segmentation"] == [[1054, 1028, 1063, 1011, 1111, 1040, 1112, 1062]]
    assert ship["bbox"] == [1054, 1011, 58, 51] and ship["difficult"] == 1


# ------------------------------------------------------------------ WIDER FACE

# Entries of wider_face_train_bbx_gt.txt (with its trailing spaces), one with no face.
WIDER_TRAIN = (
    "0--Parade/0_Parade_marchingband_1_849.jpg\n"
    "1\n"
    "449 330 122 149 0 0 0 0 0 0 \n"
    "0--Parade/0_Parade_Parade_0_452.jpg\n"
    "0\n"
    "0 0 0 0 0 0 0 0 0 0 \n"
    "0--Parade/0_Parade_marchingband_1_799.jpg\n"
    "2\n"
    "78 221 7 8 2 0 0 0 0 0 \n"
    "457 255 9 15 2 1 1 0 2 1 \n"
)
WIDER_VAL = "0--Parade/0_Parade_marchingband_1_465.jpg\n1\n345 211 4 4 2 0 0 0 0 0 \n"
WIDER_TEST_LIST = "0--Parade/0_Parade_marchingband_1_737.jpg\n"


def wider_rule(text: str) -> dict[str, list[dict[str, Any]]]:
    """The dataset's readme (wider_face_split/readme.txt): a file name, the number of
    boxes, then `x1, y1, w, h, blur, expression, illumination, invalid, occlusion, pose`
    per box; a count of 0 is followed by one line of zeros (TFDS's wider_face reads and
    discards it). Face boxes, category face."""
    lines, out, at = text.splitlines(), {}, 0
    names = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
    while at < len(lines):
        name, count = lines[at], int(lines[at + 1])
        rows = [[int(v) for v in line.split()] for line in lines[at + 2 : at + 2 + count]]
        out[name] = [
            {"bbox": row[:4], "category": "face", **dict(zip(names, row[4:], strict=True))}
            for row in rows
        ]
        at += 2 + max(count, 1)
    return out


def wider_layout(root: Path) -> dict[str, dict[str, Any]]:
    """torchvision's `WIDERFace` layout: wider_face_split/ beside WIDER_train/images/ ..."""
    files: dict[str, bytes | str] = {
        "wider_face_split/wider_face_train_bbx_gt.txt": WIDER_TRAIN,
        "wider_face_split/wider_face_val_bbx_gt.txt": WIDER_VAL,
        "wider_face_split/wider_face_test_filelist.txt": WIDER_TEST_LIST,
    }
    expected: dict[str, dict[str, Any]] = {}
    seed = 20
    for subset, split, text in (("train", "train", WIDER_TRAIN), ("val", "val", WIDER_VAL)):
        for name, faces in wider_rule(text).items():
            key = f"WIDER_{subset}/images/{name}"
            seed += 1
            files[key] = image(seed, "JPEG")
            expected[key] = {"objects": faces, "split": split}
    files[f"WIDER_test/images/{WIDER_TEST_LIST.strip()}"] = image(30, "JPEG")
    expected[f"WIDER_test/images/{WIDER_TEST_LIST.strip()}"] = {"split": "test"}
    put(root, files)
    return expected


def test_wider_face_boxes_attributes_and_splits_as_its_readme_says(workspace):
    expected = wider_layout(INCOMING / "widerface")
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata("widerface/" + key) == fields, key
        assert store.record("widerface/" + key).split == fields["split"]
    no_face = store.metadata("widerface/WIDER_train/images/0--Parade/0_Parade_Parade_0_452.jpg")
    assert no_face["objects"] == []
    assert report("ingest")["unused_metadata"] == []


# ------------------------------------------------------------------ CelebA

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips "
    "Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin "
    "Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open "
    "Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
)
ATTR_000001 = "-1  1  1 -1 -1 -1 -1 -1 -1 -1 -1  1 -1 -1 -1 -1 -1 -1  1  1 -1  1 -1 -1  1 -1 -1  1 -1 -1 -1  1  1 -1  1 -1  1 -1 -1  1"  # noqa: E501
ATTR_000002 = "-1 -1 -1  1 -1 -1 -1  1 -1 -1 -1  1 -1 -1 -1 -1 -1 -1 -1  1 -1  1 -1 -1  1 -1 -1 -1 -1 -1 -1  1 -1 -1 -1 -1 -1 -1 -1  1"  # noqa: E501
CELEBA = {
    "list_eval_partition.txt": "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n",
    "identity_CelebA.txt": "000001.jpg 2880\n000002.jpg 2937\n000003.jpg 8692\n",
    "list_attr_celeba.txt": f"2\n{ATTRIBUTES}\n000001.jpg {ATTR_000001}\n"
    f"000002.jpg {ATTR_000002}\n",
    "list_bbox_celeba.txt": "2\nimage_id x_1 y_1 width height\n"
    "000001.jpg    95  71 226 313\n000002.jpg    72  94 221 306\n",
    "list_landmarks_align_celeba.txt": "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x "
    "nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
    "000001.jpg 69  109  106  113   77  142   73  152  108  154\n"
    "000002.jpg 69  110  107  112   81  135   70  151  108  153\n",
}


def celeba_rule(name: str, files: dict[str, str]) -> dict[str, Any]:
    """torchvision's `CelebA` (torchvision/datasets/celeba.py): `_load_csv` splits each
    file on spaces (a count line and a header where there is one), `split_map` is train
    0, valid 1, test 2, attributes map from {-1, 1} to {0, 1}, identity is an int,
    landmarks ten ints; the landmarks as COCO keypoints, visible. torchvision gives the
    bbox to the aligned images too, warning (its issue #9008) that it belongs to the
    uncropped ones: not part of what an aligned image gets here."""

    def rows(file: str, header: bool) -> dict[str, list[str]]:
        lines = [line.split() for line in files[file].splitlines()]
        return {row[0]: row[1:] for row in (lines[2:] if header else lines)}

    split = int(rows("list_eval_partition.txt", False)[name][0])
    out: dict[str, Any] = {
        "split": {0: "train", 1: "val", 2: "test"}[split],
        "identity": int(rows("identity_CelebA.txt", False)[name][0]),
    }
    attr = rows("list_attr_celeba.txt", True).get(name)
    if attr is not None:
        out["attributes"] = {
            a: (int(v) + 1) // 2 for a, v in zip(ATTRIBUTES.split(), attr, strict=True)
        }
    marks = rows("list_landmarks_align_celeba.txt", True).get(name)
    if marks is not None:
        ints = [int(v) for v in marks]
        points = [v for i in range(0, 10, 2) for v in (ints[i], ints[i + 1], 2)]
        out["objects"] = [{"category": "face", "keypoints": points, "num_keypoints": 5}]
    return out


def celeba_layout(root: Path) -> dict[str, dict[str, Any]]:
    """torchvision's layout: the files and img_align_celeba/ in one folder."""
    put(
        root,
        {**CELEBA, **{f"img_align_celeba/00000{i}.jpg": image(40 + i, "JPEG") for i in (1, 2, 3)}},
    )
    return {
        f"img_align_celeba/00000{i}.jpg": celeba_rule(f"00000{i}.jpg", CELEBA) for i in (1, 2, 3)
    }


def test_celeba_attributes_identity_landmarks_and_partition(workspace):
    expected = celeba_layout(INCOMING / "celeba")
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata("celeba/" + key) == fields, key
        assert store.record("celeba/" + key).split == fields["split"]
    got = report("ingest")
    assert not any("per-class" in n for n in got["annotation_notes"])
    assert [n for n in got["annotation_notes"] if "list_bbox_celeba.txt" in n] == [
        "celeba/list_bbox_celeba.txt: 2 line(s) are for the in-the-wild images (img_celeba/), "
        "which are not here: not given to the others, which they do not fit (torchvision "
        "gives list_bbox_celeba.txt's boxes to the aligned images, warning that they do not "
        "match)"
    ]


def test_celeba_readme_layout_gives_boxes_to_the_in_the_wild_images(workspace):
    """The readme's layout: Anno/, Eval/, Img/img_celeba/ beside Img/img_align_celeba/."""
    files = {
        f"{'Eval' if name == 'list_eval_partition.txt' else 'Anno'}/{name}": text
        for name, text in CELEBA.items()
    }
    files["Anno/list_landmarks_celeba.txt"] = (
        "1\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
        "rightmouth_x rightmouth_y\n000001.jpg 165  184  244  176  196  249  194  271  266  260\n"
    )
    files["Img/img_celeba/000001.jpg"] = image(50, "JPEG")
    files["Img/img_align_celeba/000001.jpg"] = image(51, "JPEG")
    put(INCOMING / "CelebA", files)
    store = ingest_and_pack()
    wild = store.metadata("CelebA/Img/img_celeba/000001.jpg")
    aligned = store.metadata("CelebA/Img/img_align_celeba/000001.jpg")
    assert wild["objects"] == [
        {
            "category": "face",
            "bbox": [95, 71, 226, 313],
            "keypoints": [165, 184, 2, 244, 176, 2, 196, 249, 2, 194, 271, 2, 266, 260, 2],
            "num_keypoints": 5,
        }
    ]
    assert aligned == celeba_rule("000001.jpg", CELEBA)
    assert {k: v for k, v in wild.items() if k != "objects"} == {
        k: v for k, v in aligned.items() if k != "objects"
    }


# ------------------------------------------------------------------ ICDAR 2015, PaddleOCR

# The start of ICDAR 2015's ch4_training_localization_transcription_gt/gt_img_1.txt.
ICDAR_IMG_1 = (
    "\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
    "493,115,519,115,519,131,493,131,[06]\r\n"
    "374,155,409,155,409,170,374,170,###\r\n"
)
ICDAR_TEST_IMG_1 = "\ufeff38,43,920,43,920,215,38,215,Tiredness, kills\r\n"


def icdar_rule(text: str) -> list[dict[str, Any]]:
    """ICDAR 2015's task 4.1 ground truth (its readme), as PaddleOCR's `gen_det_label`
    (ppocr/utils/gen_label.py) turns it into a detection label: a BOM dropped, eight
    coordinates, then the transcription; `###` is "do not care", which PaddleOCR's
    `DetLabelEncode` ignores. As objects: the corners as a polygon, their extent, the
    transcription, category text, `ignore` for do-not-care. (gen_det_label keeps only
    the text up to a comma; ICDAR's readme keeps the rest of the line.)"""
    out = []
    for line in text.lstrip("\ufeff").splitlines():
        cells = line.split(",")
        points = [int(c) for c in cells[:8]]
        xs, ys = points[0::2], points[1::2]
        word = {
            "bbox": box(min(xs), min(ys), max(xs), max(ys)),
            "category": "text",
            "segmentation": [points],
            "transcription": ",".join(cells[8:]),
        }
        if word["transcription"] == "###":
            word["ignore"] = True
        out.append(word)
    return out


def paddle_det_line(path: str, gt: str) -> str:
    """PaddleOCR's gen_det_label: one line of a detection label file from a gt_ file."""
    regions = []
    for line in gt.lstrip("\ufeff").splitlines():
        cells = line.split(",")
        points = [[int(cells[i]), int(cells[i + 1])] for i in range(0, 8, 2)]
        regions.append({"transcription": ",".join(cells[8:]), "points": points})
    return f"{path}\t{json.dumps(regions, ensure_ascii=False)}\n"


def ocr_layout(root: Path) -> dict[str, dict[str, Any]]:
    """ICDAR 2015 as downloaded (training and test folders side by side, both with an
    img_1), PaddleOCR's detection label of the same image, and its recognition layout
    (train_data/rec/rec_gt_train.txt, from its docs)."""
    put(
        root,
        {
            "icdar2015/ch4_training_images/img_1.jpg": image(60, "JPEG"),
            "icdar2015/ch4_training_localization_transcription_gt/gt_img_1.txt": ICDAR_IMG_1,
            "icdar2015/ch4_test_images/img_1.jpg": image(61, "JPEG"),
            "icdar2015/Challenge4_Test_Task1_GT/gt_img_1.txt": ICDAR_TEST_IMG_1,
            "paddle_det/imgs/img_1.jpg": image(62, "JPEG"),
            "paddle_det/train_label.txt": paddle_det_line("imgs/img_1.jpg", ICDAR_IMG_1),
            "train_data/rec/rec_gt_train.txt": "train_data/rec/train/word_001.jpg\t简单可依赖\n"
            "train_data/rec/train/word_002.jpg\t用科技让复杂的世界更简单\n",
            "train_data/rec/train/word_001.jpg": image(63, "JPEG"),
            "train_data/rec/train/word_002.jpg": image(64, "JPEG"),
        },
    )
    return {
        "icdar2015/ch4_training_images/img_1.jpg": {"objects": icdar_rule(ICDAR_IMG_1)},
        "icdar2015/ch4_test_images/img_1.jpg": {"objects": icdar_rule(ICDAR_TEST_IMG_1)},
        "paddle_det/imgs/img_1.jpg": {"objects": icdar_rule(ICDAR_IMG_1), "split": "train"},
        "train_data/rec/train/word_001.jpg": {"text": "简单可依赖", "split": "train"},
        "train_data/rec/train/word_002.jpg": {"text": "用科技让复杂的世界更简单", "split": "train"},
    }


def test_icdar_2015_words_and_paddleocr_labels_give_the_same_objects(workspace):
    expected = ocr_layout(INCOMING)
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata(key) == fields, key
    dont_care = store.metadata("icdar2015/ch4_training_images/img_1.jpg")["objects"][2]
    assert dont_care["transcription"] == "###" and dont_care["ignore"] is True
    got = report("ingest")
    assert got["unused_metadata"] == [] and got["rejected"] == 0


# ------------------------------------------------------------------ MOTChallenge

MOT_SEQINFO = (
    "[Sequence]\nname=MOT17-02-FRCNN\nimDir=img1\nframeRate=30\nseqLength=3\n"
    "imWidth=1920\nimHeight=1080\nimExt=.jpg\n"
)
# The first lines of MOT17-02's gt/gt.txt (track 1, an occluder flagged 0) and more.
MOT_GT = (
    "1,1,912,484,97,109,0,7,1\n"
    "2,1,912,484,97,109,0,7,1\n"
    "1,2,1338,418,167,379,1,1,1\n"
    "2,2,1342,417,168,380,1,1,0.97216\n"
)
MOT_DET = (
    "1,-1,1359.1,413.27,120.26,362.77,2.3092,-1,-1,-1\n"
    "3,-1,571.03,402.13,104.56,315.68,1.5821,-1,-1,-1\n"
)
MOT_CLASSES = {1: "Pedestrian", 7: "Static person"}  # MOTChallenge's table (MOT16 paper)


def mot_rule(gt: str, det: str, frames: int) -> dict[int, dict[str, Any]]:
    """The MOTChallenge format (motchallenge.net/instructions, MOT16 paper, section
    3.3): `frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility` in
    ground truth; `frame, -1, bb_left, bb_top, bb_width, bb_height, conf, -1, -1, -1`
    for detections (the -1s unset). Frame N is img1/00000N.jpg."""
    out: dict[int, dict[str, Any]] = {
        n: {"frame": n, "objects": [], "detections": []} for n in range(1, frames + 1)
    }
    for line in gt.splitlines():
        v = [float(c) for c in line.split(",")]
        out[int(v[0])]["objects"].append(
            {
                "bbox": [plain(c) for c in v[2:6]],
                "track_id": int(v[1]),
                "conf": plain(v[6]),
                "class": int(v[7]),
                "category": MOT_CLASSES[int(v[7])],
                "visibility": plain(v[8]),
            }
        )
    for line in det.splitlines():
        v = [float(c) for c in line.split(",")]
        out[int(v[0])]["detections"].append({"bbox": [plain(c) for c in v[2:6]], "conf": v[6]})
    return out


def mot_layout(root: Path) -> dict[str, dict[str, Any]]:
    seq = "MOT17/train/MOT17-02-FRCNN"
    files: dict[str, bytes | str] = {
        f"{seq}/seqinfo.ini": MOT_SEQINFO,
        f"{seq}/gt/gt.txt": MOT_GT,
        f"{seq}/det/det.txt": MOT_DET,
    }
    info = {
        "name": "MOT17-02-FRCNN",
        "imDir": "img1",
        "frameRate": 30,
        "seqLength": 3,
        "imWidth": 1920,
        "imHeight": 1080,
        "imExt": ".jpg",
    }
    expected = {}
    for frame, fields in mot_rule(MOT_GT, MOT_DET, 3).items():
        key = f"{seq}/img1/{frame:06d}.jpg"
        files[key] = image(70 + frame, "JPEG")
        expected[key] = {**fields, "seqinfo": info}
    put(root, files)
    return expected


def test_mot_frames_get_their_tracks_detections_and_sequence(workspace):
    expected = mot_layout(INCOMING)
    store = ingest_and_pack()
    for key, fields in expected.items():
        assert store.metadata(key) == fields, key
    notes = report("ingest")["annotation_notes"]
    assert notes == [
        "MOT17/train/MOT17-02-FRCNN/det/det.txt: 8 value(s) of -1 (no track, no world "
        "coordinates): not stored"
    ]


def test_cvat_mot_export_names_classes_from_its_labels_file(workspace):
    """CVAT's "MOT 1.1" export: img1/ (here gt/ beside it) with gt/labels.txt, a class
    name a line, class i being line i (CVAT's docs)."""
    put(
        INCOMING / "task",
        {
            "img1/000001.jpg": image(80, "JPEG"),
            "gt/gt.txt": "1,1,10,12,20,22,1,2,1.0\n",
            "gt/labels.txt": "cat\ndog\n",
        },
    )
    store = ingest_and_pack()
    assert store.metadata("task/img1/000001.jpg") == {
        "frame": 1,
        "objects": [
            {
                "bbox": [10, 12, 20, 22],
                "track_id": 1,
                "conf": 1,
                "class": 2,
                "category": "dog",
                "visibility": 1,
            }
        ],
    }
    assert report("ingest")["annotation_files"] == ["task/gt/gt.txt", "task/gt/labels.txt"]


def test_a_changed_label_file_relabels_its_image_on_the_next_run(workspace):
    """An image's own file (KITTI's label) and a dataset's file (WIDER FACE's bbx_gt),
    each changed after a first run: the next run stores the new fields."""
    kitti_layout(INCOMING / "kitti")
    wider_layout(INCOMING / "widerface")
    ingest_and_pack()
    car = "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57"
    (INCOMING / "kitti/training/label_2/000000.txt").write_text(car + "\n")
    bbx = INCOMING / "widerface/wider_face_split/wider_face_val_bbx_gt.txt"
    bbx.write_text(WIDER_VAL.replace("345 211 4 4", "345 211 8 8"))
    store = ingest_and_pack()
    assert store.metadata("kitti/training/image_2/000000.png")["objects"] == [kitti_rule(car)]
    face = store.metadata("widerface/WIDER_val/images/0--Parade/0_Parade_marchingband_1_465.jpg")
    assert face["objects"][0]["bbox"] == [345, 211, 8, 8]


# ------------------------------------------------------------------ the layouts' variants


def read_variants(root: Path, files: dict[str, bytes | str]) -> Any:
    """The annotation reader over real files (as ingest and pack call it)."""
    from imageshelf.annotations import KeyIndex, annotation_kind, read_place

    put(root, files)
    images = [rel for rel in files if annotation_kind(rel) is None]
    return read_place(root, [rel for rel in files if rel not in images], KeyIndex(images))


def test_the_layouts_variants_each_documented_rule(tmp_path):
    """docs/ANNOTATIONS.md's other rules: DOTA's labelTxt-v1.0/labelTxt/, ICDAR's gt_ file
    beside its image, a KITTI results file's score, WIDER FACE's shape under another
    name (no split), MOT15's ten columns, PPOCRLabel's fields and `*`, its fileState.txt,
    a gt/gt.txt that is not MOT's, an INI file that is not seqinfo.ini, and ICDAR 2013's
    gt_NAME.txt (boxes, not 2015's corners), reported with its image kept."""
    found = read_variants(
        tmp_path,
        {
            "dota/images/P1.png": b"",
            "dota/labelTxt-v1.0/labelTxt/P1.txt": "1 2 3 2 3 4 1 4 plane 0\n",
            "icdar/img_7.jpg": b"",
            "icdar/gt_img_7.txt": "1,2,3,2,3,4,1,4,word\n",
            "results/image_2/000000.png": b"",
            "results/label_2/000000.txt": KITTI_000000.strip() + " 0.93\n",
            "faces/a/1.jpg": b"",
            "faces/boxes.txt": "a/1.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n",
            "mot15/img1/000001.jpg": b"",
            "mot15/gt/gt.txt": "1,3,10,20,30,40,1,-1,-1,-1\n",
            "ppocr/zh/1.jpg": b"",
            "ppocr/zh/Label.txt": 'zh/1.jpg\t[{"transcription": "*", "points": [[0, 0], [4, 0], '
            '[4, 2], [0, 2]], "difficult": false, "key_cls": "None"}]\n',
            "ppocr/zh/fileState.txt": "/home/me/zh/1.jpg\t1\n",
            "other/gt/gt.txt": "a ground truth in words\n",
            "other/config.ini": "[x]\ny=1\n",
            "icdar13/images/100.jpg": b"",
            "icdar13/gt/gt_100.txt": '38, 43, 920, 215, "Tiredness"\n',
        },
    )

    def fields(key: str) -> dict[str, Any]:
        return found.for_image(key, 64, 48)

    assert fields("dota/images/P1.png")["objects"] == [dota_rule("1 2 3 2 3 4 1 4 plane 0")]
    assert fields("icdar/img_7.jpg")["objects"] == icdar_rule("1,2,3,2,3,4,1,4,word")
    assert fields("results/image_2/000000.png")["objects"] == [
        {**kitti_rule(KITTI_000000.strip()), "score": 0.93}
    ]
    assert fields("faces/a/1.jpg") == {
        "objects": wider_rule("a/1.jpg\n1\n1 2 3 4 0 0 0 0 0 0")["a/1.jpg"]
    }
    assert fields("mot15/img1/000001.jpg") == {
        "frame": 1,
        "objects": [{"bbox": [10, 20, 30, 40], "track_id": 3, "conf": 1}],
    }
    word = fields("ppocr/zh/1.jpg")["objects"][0]
    assert (word["transcription"], word["ignore"], word["difficult"], word["key_cls"]) == (
        "*",
        True,
        False,
        "None",
    )
    assert found.notes == [
        "mot15/gt/gt.txt: 3 value(s) of -1 (no track, no world coordinates): not stored",
        "ppocr/zh/fileState.txt: PPOCRLabel's record of which images were checked: not stored",
    ]
    assert fields("icdar13/images/100.jpg") == {}
    assert sorted(found.unused) == [
        "icdar13/gt/gt_100.txt: 1 line(s) of text; named as ICDAR 2015's gt_NAME.txt are, but "
        "not its lines (x1,y1,x2,y2,x3,y3,x4,y4,transcription)",
        "other/config.ini: an INI file, and only MOT's seqinfo.ini is read",
        "other/gt/gt.txt: 1 line(s) of text; not read: not an image's labels or text (no "
        "image of its name), nor a file a reader knows by its name or lines",
    ]


# ------------------------------------------------------------------ lines that do not parse


def test_a_bad_line_in_an_images_own_label_file_rejects_that_image_naming_the_line(workspace):
    """KITTI's and ICDAR's files are one image's own: a line that is not the format's
    rejects that image alone, with the line; DOTA's short lines are skipped, as
    DOTA_devkit skips them, and said."""
    put(
        INCOMING,
        {
            "kitti/training/image_2/000000.png": image(1),
            "kitti/training/label_2/000000.txt": "Car 0.00 0 1.85 387.63\n",
            "kitti/training/image_2/000001.png": image(2),
            "kitti/training/label_2/000001.txt": KITTI_000000,
            "icdar/imgs/img_1.jpg": image(3, "JPEG"),
            "icdar/gt/gt_img_1.txt": "1,2,3,2,3,4,1,4,ok\n377,117,463,oops\n",
            "dota/images/P1.png": image(4),
            "dota/labelTxt/P1.txt": "imagesource:GoogleEarth\nno object\n1 2 3 2 3 4 1 4 plane\n",
        },
    )
    store = ingest_and_pack()
    got = report("ingest")
    assert {r["path"]: (r["code"], r["reason"]) for r in got["rejects"]} == {
        "kitti/training/image_2/000000.png": (
            "bad_metadata",
            "kitti/training/label_2/000000.txt:1: not a KITTI object (type, then 14 numbers: "
            "truncated occluded alpha left top right bottom height width length x y z "
            "rotation_y): 'Car 0.00 0 1.85 387.63'",
        ),
        "icdar/imgs/img_1.jpg": (
            "bad_metadata",
            "icdar/gt/gt_img_1.txt:2: not an ICDAR 2015 word "
            "(x1,y1,x2,y2,x3,y3,x4,y4,transcription): '377,117,463,oops'",
        ),
    }
    assert sorted(store) == ["dota/images/P1.png", "kitti/training/image_2/000001.png"]
    assert store.metadata("dota/images/P1.png")["objects"] == [dota_rule("1 2 3 2 3 4 1 4 plane")]
    assert got["annotation_notes"] == [
        "dota/labelTxt/P1.txt: line(s) 2 hold fewer than 9 values: skipped, as DOTA_devkit "
        "skips them"
    ]


@pytest.mark.parametrize(
    "name, text, says",
    [
        (
            "wider_face_split/wider_face_train_bbx_gt.txt",
            "0--Parade/a.jpg\n2\n449 330 122 149 0 0 0 0 0 0\n",
            "wider_face_train_bbx_gt.txt:1: '0--Parade/a.jpg' has 2 face(s), and the file "
            "ends after 1",
        ),
        (
            "wider_face_split/wider_face_val_bbx_gt.txt",
            "0--Parade/a.jpg\n1\n449 330 122 149 0 0\n",
            "wider_face_val_bbx_gt.txt:3: not a WIDER FACE face",
        ),
        ("Label.txt", 'a.png\t[{"points": [[1, 2]]}]\n', "Label.txt:1: a region without"),
        ("Label.txt", "a.png\t[{]\n", "Label.txt:1: not PaddleOCR's regions (invalid JSON"),
        ("list_attr_celeba.txt", "1\nSmiling Young\na.png 1 0\n", "list_attr_celeba.txt:3"),
        ("seq/gt/gt.txt", "1,1,2,3,4,5,1,1,1\n2,1,x\n", "gt.txt:2: not a MOTChallenge line"),
        ("seq/seqinfo.ini", "name=x\n", "seqinfo.ini: not a valid INI file: File contains no"),
        ("seq/seqinfo.ini", "[Other]\nname=x\n", "seqinfo.ini: no [Sequence] section"),
    ],
)
def test_a_dataset_file_with_a_bad_line_fails_the_stage_in_one_line(workspace, name, text, says):
    """A file that speaks of many images and does not parse stops the stage, naming
    itself and the line: losing a dataset's labels quietly is worse."""
    put(INCOMING, {"a.png": image(1), "seq/img1/000001.png": image(2), name: text})
    result = stage("ingest")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], lines


# ------------------------------------------------------------------ never mislead


def test_a_text_file_no_reader_places_is_reported_alone_with_what_it_looks_like(workspace):
    """Boxes without their name lines, a list of names that are not here, a list whose
    name says no split, a KITTI label whose image is missing, and prose: each reported
    with its shape; nothing is called a split list, and the images are stored."""
    put(
        INCOMING,
        {
            "faces/a.jpg": image(90, "JPEG"),
            "faces/boxes.txt": "449 330 122 149 0 0 0 0 0 0\n361 98 263 339 0 0 0 0 0 0\n",
            "faces/train.txt": "0--Parade/x.jpg\n0--Parade/y.jpg\n",
            "faces/all.txt": "a.jpg\nb.jpg\n",
            "kitti/training/image_2/000000.png": image(91),
            "kitti/training/label_2/000000.txt": KITTI_000000,
            "kitti/training/label_2/000009.txt": KITTI_000000,
            "notes.txt": "Collected in 2019.\nAsk Ana before sharing.\n",
        },
    )
    store = ingest_and_pack()
    assert len(store) == 2
    assert sorted(report("ingest")["unused_metadata"]) == [
        "faces/all.txt: a list of images (1 of its 2 line(s) name one here), but its name "
        "says no split: name it train.txt, val.txt or test.txt for the split it stands for",
        "faces/boxes.txt: lines of 10 numbers, like WIDER FACE boxes without name lines; not "
        "read: not an image's labels or text (no image of its name), nor a file a reader "
        "knows by its name or lines",
        "faces/train.txt: named like a list of train images, but none of its 2 line(s) names "
        "an image here: one word or path a line, like a list of images (first: "
        "0--Parade/x.jpg)",
        "kitti/training/label_2/000009.txt: lines of a type and 14 numbers, like KITTI's "
        "label_2; in KITTI's layout, but no image kitti/training/image_2/000009.*",
        "notes.txt: 2 line(s) of text; not read: not an image's labels or text (no image of "
        "its name), nor a file a reader knows by its name or lines",
    ]


def test_the_reported_wrong_reasons_are_gone(workspace):
    """Issue 38: WIDER FACE's bbx_gt and PaddleOCR's rec_gt_train.txt were read as split
    lists ("listed images not found"), CelebA's partition as a per-class list."""
    wider_layout(INCOMING / "widerface")
    celeba_layout(INCOMING / "celeba")
    ocr_layout(INCOMING / "ocr")
    ingest_and_pack()
    got = report("ingest")
    said = got["unused_metadata"] + got["annotation_notes"]
    assert not any("listed image(s) not found" in s or "per-class" in s for s in said), said


# ------------------------------------------------------------------ a real project


def test_every_text_format_side_by_side_through_dvc_repro(repo):
    """Every layout above in one project's data/incoming/, one `dvc repro` with strict
    ingest: nothing rejected, and every image's stored fields as its reference gives."""
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("strict: false", "strict: true"))
    incoming = repo / "data" / "incoming"
    expected: dict[str, dict[str, Any]] = {}
    for name, layout in (
        ("kitti", kitti_layout),
        ("DOTA", dota_layout),
        ("widerface", wider_layout),
        ("celeba", celeba_layout),
        ("ocr", ocr_layout),
        ("mot", mot_layout),
    ):
        expected.update({f"{name}/{k}": v for k, v in layout(incoming / name).items()})
    sh(repo, "dvc", "repro")
    with ImageStore(repo / "data" / "images.lmdb") as store:
        got = {record.key: (record.split, record.metadata) for record in store.records()}
    assert sorted(got) == sorted(expected)
    for key, fields in expected.items():
        split, metadata = got[key]
        assert metadata == fields, key
        if "split" in fields:
            assert split == fields["split"], key
    ingest = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingest["rejected"] == 0
