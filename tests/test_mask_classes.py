"""Class names for masks: each class-id mask gives its image a field `mask_classes`
({id as text, or "#rrggbb": name}) for the values its pixels hold, named by the
dataset's own table (ADE20K's objectInfo150, CamVid's class_dict.csv), a built-in one
(Pascal VOC, Cityscapes) or `annotations.mask_classes` (annotations/classes.py).

No reference loader that installs here names mask classes (torchvision's
`VOCSegmentation` and `Cityscapes` return the PNG as it is): each expected value below
restates the dataset's documented table, and says where it is written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from imageshelf.annotations import KeyIndex, read_annotations
from imageshelf.store import ImageStore

from conftest import command_line, commit, make_image, put, report, sh, stage

INCOMING = Path("data/incoming")


def mask(values: list, mode: str = "L", size: tuple[int, int] = (32, 24)) -> bytes:
    """A PNG whose pixels take exactly `values` (ids, or RGB colours), in stripes."""
    image = Image.new(mode, size)
    if mode == "P":
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] * 85 + [224, 224, 192])
    for x in range(size[0]):
        for y in range(size[1]):
            image.putpixel((x, y), values[x * len(values) // size[0]])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def noise(size: tuple[int, int] = (48, 32)) -> bytes:
    """An RGB PNG of random colours: more than 1,024 of them, no class map."""
    return make_image("PNG", size, seed=7)


def voc(root: str = "VOC2012", classes: tuple[list, ...] = ([0, 15, 255], [0, 8])) -> dict:
    """torchvision's VOCSegmentation layout: JPEGImages/ID.jpg, SegmentationClass/ID.png
    (palette class ids), SegmentationObject/ID.png (instance ids)."""
    files: dict[str, bytes | str] = {}
    for i, ids in enumerate(classes):
        name = f"2007_{i:06d}"
        files[f"{root}/JPEGImages/{name}.jpg"] = make_image("JPEG", seed=i)
        files[f"{root}/SegmentationClass/{name}.png"] = mask(ids, "P")
        files[f"{root}/SegmentationObject/{name}.png"] = mask([0, 1, 2, 255], "P")
    return files


# The VOC devkit's classes (VOCinit.m: VOCopts.classes, after 0 background; 255 void).
VOC_EXPECTED = {
    "VOC2012/JPEGImages/2007_000000.jpg": {"0": "background", "15": "person", "255": "void"},
    "VOC2012/JPEGImages/2007_000001.jpg": {"0": "background", "8": "cat"},
}

CITY = "cityscapes/{kind}/{split}/aachen/aachen_00000{i}_000019_{what}.png"


def cityscapes() -> dict:
    """torchvision's Cityscapes layout: leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png,
    gtFine/SPLIT/CITY/NAME_gtFine_{labelIds,labelTrainIds,instanceIds,color}.png."""
    files: dict[str, bytes | str] = {}
    for i, (ids, train) in enumerate((([0, 7, 26], [13, 0, 255]), ([23, 24], [10, 11]))):
        split = ("train", "val")[i]

        def at(kind: str, what: str, i: int = i, split: str = split) -> str:
            return CITY.format(kind=kind, split=split, i=i, what=what)

        files[at("leftImg8bit", "leftImg8bit")] = make_image("PNG", seed=10 + i)
        files[at("gtFine", "gtFine_labelIds")] = mask(ids)
        files[at("gtFine", "gtFine_labelTrainIds")] = mask(train)
        files[at("gtFine", "gtFine_instanceIds")] = mask([7, 26001], "I;16")
        files[at("gtFine", "gtFine_color")] = mask([(128, 64, 128, 255)], "RGBA")
    return files


# cityscapesScripts' helpers/labels.py: name per labelId, and per trainId (255: the
# first label it maps there, 'unlabeled').
CITY_EXPECTED = {
    "cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png": {
        "mask_classes": {"0": "unlabeled", "7": "road", "26": "car"},
        "train_ids_classes": {"0": "road", "13": "car", "255": "unlabeled"},
    },
    "cityscapes/leftImg8bit/val/aachen/aachen_000001_000019_leftImg8bit.png": {
        "mask_classes": {"23": "sky", "24": "person"},
        "train_ids_classes": {"10": "sky", "11": "person"},
    },
}

# The first rows of CSAILVision/sceneparsing's objectInfo150.csv, as it ships them.
OBJECT_INFO = (
    "Idx,Ratio,Train,Val,Name\n"
    "1,0.1576,11664,1172,wall\n"
    "2,0.1072,6046,612,building;edifice\n"
    "3,0.0878,8265,796,sky\n"
    "13,0.016,5075,526,person;individual;someone;somebody;mortal;soul\n"
)


def ade(root: str = "ADEChallengeData2016", info: bool = True) -> dict:
    """ADEChallengeData2016 as its README lays it out: images/{training,validation}/,
    annotations/ (grey PNGs of ids, 0 "other objects"), objectInfo150 and
    sceneCategories.txt at the top."""
    files: dict[str, bytes | str] = {
        f"{root}/images/training/ADE_train_00000001.jpg": make_image("JPEG", seed=20),
        f"{root}/annotations/training/ADE_train_00000001.png": mask([0, 1, 3]),
        f"{root}/images/validation/ADE_val_00000001.jpg": make_image("JPEG", seed=21),
        f"{root}/annotations/validation/ADE_val_00000001.png": mask([2, 13, 99]),
        f"{root}/sceneCategories.txt": (
            "ADE_train_00000001 airport_terminal\nADE_val_00000001 street\n"
            "ADE_train_00000002 bathroom\n"
        ),
    }
    if info:
        files[f"{root}/objectInfo150.csv"] = OBJECT_INFO
    return files


# objectInfo150's Name per Idx, 0 "other" (the devkit's README); 99 is not in the rows
# above: present, unnamed.
ADE_EXPECTED = {
    "ADEChallengeData2016/images/training/ADE_train_00000001.jpg": {
        "mask_classes": {"0": "other", "1": "wall", "3": "sky"},
        "scene": "airport_terminal",
    },
    "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg": {
        "mask_classes": {
            "2": "building;edifice",
            "13": "person;individual;someone;somebody;mortal;soul",
            "99": None,
        },
        "scene": "street",
    },
}

# The first rows of the Kaggle CamVid's class_dict.csv (name, r, g, b).
CLASS_DICT = (
    "name,r,g,b\nAnimal,64,128,64\nArchway,192,0,128\nBicyclist,0,128,192\n"
    "Car,64,0,128\nSky,128,128,128\nVoid,0,0,0\n"
)


def camvid(root: str = "CamVid") -> dict:
    """Kaggle's CamVid: SPLIT/NAME.png, SPLIT_labels/NAME_L.png (RGB, a colour per
    class), class_dict.csv at the top."""
    return {
        f"{root}/train/0001TP_006690.png": make_image("PNG", seed=30),
        f"{root}/train_labels/0001TP_006690_L.png": mask([(128, 128, 128), (64, 0, 128)], "RGB"),
        f"{root}/val/0016E5_07959.png": make_image("PNG", seed=31),
        f"{root}/val_labels/0016E5_07959_L.png": mask([(0, 0, 0), (0, 128, 192)], "RGB"),
        f"{root}/class_dict.csv": CLASS_DICT,
    }


CAMVID_EXPECTED = {
    "CamVid/train/0001TP_006690.png": {"#400080": "Car", "#808080": "Sky"},
    "CamVid/val/0016E5_07959.png": {"#000000": "Void", "#0080c0": "Bicyclist"},
}


def ingested(files: dict) -> dict:
    """Ingest `files` dropped into data/incoming/; the staged records by key."""
    put(INCOMING, files)
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    lines = Path("data/staged.jsonl").read_text().splitlines()[1:]
    return {row["key"]: row for row in map(json.loads, lines)}


def set_mask_classes(names: list[str]) -> None:
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("mask_classes: []", f"mask_classes: {names}"))


# ------------------------------------------------------------------ each layout


def test_voc_masks_name_their_classes_by_the_devkits_21(workspace):
    staged = ingested(voc())
    for key, expected in VOC_EXPECTED.items():
        assert staged[key]["meta"] == {"mask_classes": expected}  # instances: no names
    assert report("ingest")["annotation_notes"] == []


def test_cityscapes_masks_name_label_ids_and_train_ids_by_labels_py(workspace):
    staged = ingested(cityscapes())
    assert {key: row["meta"] for key, row in staged.items()} == CITY_EXPECTED


def test_ade20k_reads_object_info_and_scene_categories_as_what_they_are(workspace):
    """Before: objectInfo150.csv stopped the ingest ("no column names the image")."""
    staged = ingested(ade())
    assert {key: row["meta"] for key, row in staged.items()} == ADE_EXPECTED
    ingest = report("ingest")
    assert set(ingest["annotation_files"]) == {
        "ADEChallengeData2016/objectInfo150.csv",
        "ADEChallengeData2016/sceneCategories.txt",
    }
    assert ingest["unused_metadata"] == [
        "ADEChallengeData2016/sceneCategories.txt: 1 scene(s) of no image under "
        "ADEChallengeData2016/images/ (first: ADE_train_00000002)"
    ]


def test_ade20k_devkits_tab_separated_object_info_txt(workspace):
    """The devkit's objectInfo150.txt (CSAILVision/sceneparsing): the same table, tabs,
    names with commas."""
    files = ade(info=False)
    files["ADEChallengeData2016/objectInfo150.txt"] = (
        "Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n"
        "2\t0.1072\t6046\t612\tbuilding, edifice\n3\t0.0878\t8265\t796\tsky\n"
        "13\t0.0160\t5075\t526\tperson, individual, someone, somebody, mortal, soul\n"
    )
    staged = ingested(files)
    key = "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg"
    assert staged[key]["meta"]["mask_classes"]["2"] == "building, edifice"


def test_camvid_rgb_masks_name_their_colours_by_class_dict(workspace):
    staged = ingested(camvid())
    assert {key: row["meta"] for key, row in staged.items()} == {
        key: {"mask_classes": value} for key, value in CAMVID_EXPECTED.items()
    }
    assert report("ingest")["annotation_files"] == ["CamVid/class_dict.csv"]


def test_cvat_voc_masks_name_their_colours_by_labelmap(workspace):
    """CVAT's "Segmentation mask 1.1" export (Datumaro's VOC): labelmap.txt at the top,
    `name:r,g,b:parts:actions`, masks painted in those colours."""
    files = {
        "cvat/JPEGImages/frame_000001.jpg": make_image("JPEG", seed=40),
        "cvat/SegmentationClass/frame_000001.png": mask([(0, 0, 0), (250, 50, 83)], "RGB"),
        "cvat/labelmap.txt": "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        "car:250,50,83::\nperson:51,221,255::\n",
    }
    staged = ingested(files)
    assert staged["cvat/JPEGImages/frame_000001.jpg"]["meta"] == {
        "mask_classes": {"#000000": "background", "#fa3253": "car"}
    }


def test_a_dataset_without_names_is_noted_once_and_the_param_names_it(workspace):
    """No table: no field, and one note for the dataset folder. annotations.mask_classes
    names it; set after a first run, the next run gives the field (no file changed),
    from what the first run learned of each mask (ingest's cache, in .dvc/)."""
    Path(".dvc").mkdir()
    put(INCOMING, ade(root="ade", info=False))
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    store = ImageStore("data/images.lmdb")
    assert ["mask_classes" in store.metadata(key) for key in store] == [False, False]
    store.close()
    assert report("ingest")["annotation_notes"] == [
        "ade: 2 ADE20K mask(s) whose ids have no class names (no objectInfo150.csv there): "
        "list them in annotations.mask_classes in params.yaml"
    ]
    assert "nothing new since the last run" in stage("ingest").output  # the note is stable
    set_mask_classes(["other", "wall", "building", "sky"])
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    assert report("ingest")["annotation_notes"] == []
    store = ImageStore("data/images.lmdb")
    assert store.metadata("ade/images/training/ADE_train_00000001.jpg")["mask_classes"] == {
        "0": "other",
        "1": "wall",
        "3": "sky",
    }
    assert store.metadata("ade/images/validation/ADE_val_00000001.jpg")["mask_classes"] == {
        "2": "building",
        "13": None,
        "99": None,
    }


def test_a_voc_style_dataset_of_its_own_classes_is_named_by_the_param(workspace):
    """A VOC layout whose classes are not VOC's (labelme2voc's, a lab's own): the param
    names its ids over the built-in 21, and the report says so."""
    set_mask_classes(["background", "crack", "rust"])
    staged = ingested(voc(root="defects", classes=([0, 1, 2], [0, 2, 255])))
    assert [row["meta"] for row in staged.values()] == [
        {"mask_classes": {"0": "background", "1": "crack", "2": "rust"}},
        {"mask_classes": {"0": "background", "2": "rust", "255": None}},
    ]
    assert report("ingest")["annotation_notes"] == [
        "defects: Pascal VOC masks named by annotations.mask_classes, not Pascal VOC's 21 "
        "classes (built in)"
    ]


def test_masks_that_hold_no_class_map_are_noted_and_still_stored(workspace):
    """A mask of noise (over 1,024 colours) and ids against a table of colours (SegNet's
    grey CamVid beside Kaggle's class_dict.csv): no field, a note each; both stored."""
    files = camvid()
    files["CamVid/train_labels/0001TP_006690_L.png"] = noise()
    files["CamVid/testannot/0001TP_008550.png"] = mask([0, 3])
    files["CamVid/test/0001TP_008550.png"] = make_image("PNG", seed=32)
    staged = ingested(files)
    assert staged["CamVid/train/0001TP_006690.png"]["meta"] == {}
    assert staged["CamVid/test/0001TP_008550.png"]["meta"] == {}
    assert staged["CamVid/val/0016E5_07959.png"]["meta"]["mask_classes"]
    assert report("ingest")["annotation_notes"] == [
        "the mask of CamVid/test/0001TP_008550.png: it holds ids, "
        "CamVid/class_dict.csv names colours; mask_classes not set",
        "the mask of CamVid/train/0001TP_006690.png: over 1,024 distinct values: no class "
        "map; mask_classes not set",
    ]
    assert all("mask" in row["paired"] for row in staged.values())


def test_a_mask_seen_as_an_image_first_is_described_when_its_image_comes(workspace):
    """annotations/training/ without images/training/ is no ADE20K layout: its PNG is an
    image. Once the image is there it is a mask, and decoded then (not before)."""
    files = ade()
    image = "ADEChallengeData2016/images/training/ADE_train_00000001.jpg"
    first = {rel: data for rel, data in files.items() if "/images/" not in rel}
    staged = ingested(first)
    assert "ADEChallengeData2016/annotations/training/ADE_train_00000001.png" in staged
    staged = ingested({image: files[image]})
    assert staged[image]["meta"]["mask_classes"] == {"0": "other", "1": "wall", "3": "sky"}


def test_a_table_that_is_not_what_its_name_says_is_unused_not_fatal():
    files = {
        "a/class_dict.csv": b"name,red,green\nsky,1,2\n",
        "b/objectInfo150.csv": b"Idx,Name\nwall,1\n",
        "c/labelmap.txt": b"car:300,0,0::\n",
    }
    result = read_annotations(files, lambda rel, _limit: files[rel], KeyIndex([]))
    assert result.class_tables == {}
    assert result.unused == [
        "a/class_dict.csv: not the class table its name says (no name, r, g, b columns: "
        "name, red, green)",
        "b/objectInfo150.csv: not the class table its name says (row 2 is not an id and a name)",
        "c/labelmap.txt: not the class table its name says (line 1: not a colour of three "
        "values 0 to 255)",
    ]


def test_the_param_must_be_a_list_of_names(workspace):
    Path("params.yaml").write_text(
        Path("params.yaml").read_text().replace("mask_classes: []", "mask_classes: person")
    )
    result = stage("ingest")
    assert result.exit_code != 0
    assert "annotations.mask_classes must be a list of class names (got 'person')" in result.output


# ------------------------------------------------------------------ a real project


def test_every_layout_through_dvc_repro_and_a_mask_of_other_classes_in_diff(repo):
    """VOC, Cityscapes, ADE20K and CamVid side by side, one `dvc repro`: every image's
    stored fields as the tables above say. One VOC mask redrawn with other classes:
    `imageshelf diff` lists that image relabeled by its mask and its mask_classes."""
    put(repo / INCOMING, {**voc(), **cityscapes(), **ade(), **camvid()})
    sh(repo, "dvc", "repro")
    commit(repo, "four segmentation datasets")
    expected = {key: {"mask_classes": value} for key, value in VOC_EXPECTED.items()}
    expected |= {key: {"mask_classes": value} for key, value in CAMVID_EXPECTED.items()}
    expected |= CITY_EXPECTED | ADE_EXPECTED
    with ImageStore(repo / "data/images.lmdb") as store:
        assert {key: store.metadata(key) for key in store} == expected
    ingest = json.loads((repo / "reports/ingest.json").read_text())
    assert (ingest["annotation_notes"], ingest["rejected"]) == ([], 0)

    changed = "VOC2012/SegmentationClass/2007_000001.png"
    put(repo / INCOMING, {changed: mask([0, 12, 255], "P")})  # a dog, not a cat
    sh(repo, "dvc", "repro")
    commit(repo, "one mask redrawn")
    diff = json.loads(sh(repo, *command_line("diff", "HEAD~1", "HEAD", "--json")).stdout)
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 0, "relabeled": 1}
    (entry,) = diff["relabeled"]
    assert entry["key"] == "VOC2012/JPEGImages/2007_000001.jpg"
    assert sorted(entry["fields"]) == ["mask_classes", "paired.mask"]
    assert entry["fields"]["mask_classes"] == [
        {"0": "background", "8": "cat"},
        {"0": "background", "12": "dog", "255": "void"},
    ]
