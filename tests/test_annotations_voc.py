"""Pascal VOC and torchvision's ImageFolder as torchvision reads them, and CVAT's XML.

torchvision itself does not import beside this project's CPU torch (its wheel needs
PyPI's CUDA build), so its two readers are restated here from its source, as the
reference: `parse_voc_xml` (VOCDetection's target) and `find_classes` + `make_dataset`
(ImageFolder's samples)."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from xml.etree import ElementTree

from imageshelf.annotations import typed

from conftest import ingest_and_pack, make_image, put, report

INCOMING = Path("data/incoming")
TORCHVISION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def parse_voc_xml(node: ElementTree.Element) -> dict:
    """torchvision.datasets.VOCDetection.parse_voc_xml."""
    voc_dict: dict = {}
    children = list(node)
    if children:
        def_dic: dict = collections.defaultdict(list)
        for dc in map(parse_voc_xml, children):
            for ind, v in dc.items():
                def_dic[ind].append(v)
        if node.tag == "annotation":
            def_dic["object"] = [def_dic["object"]]
        voc_dict = {node.tag: {ind: v[0] if len(v) == 1 else v for ind, v in def_dic.items()}}
    if node.text:
        text = node.text.strip()
        if not children:
            voc_dict[node.tag] = text
    return voc_dict


def torchvision_image_folder(root: Path) -> dict[str, str]:
    """torchvision.datasets.ImageFolder's samples: relative path -> class."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    out = {}
    for cls in classes:
        for here, _dirs, files in sorted(os.walk(root / cls, followlinks=True)):
            for name in sorted(files):
                if name.lower().endswith(TORCHVISION_EXTENSIONS):
                    out[os.path.relpath(os.path.join(here, name), root)] = cls
    return out


VOC_XML = """<annotation>
	<folder>VOC2012</folder>
	<filename>2007_000027.jpg</filename>
	<source><database>The VOC2007 Database</database><annotation>PASCAL VOC2007</annotation>
		<image>flickr</image></source>
	<size><width>48</width><height>40</height><depth>3</depth></size>
	<segmented>0</segmented>
	<object>
		<name>person</name><pose>Frontal</pose><truncated>1</truncated><occluded>0</occluded>
		<difficult>0</difficult>
		<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>30</xmax><ymax>35</ymax></bndbox>
		<part><name>head</name><bndbox><xmin>12</xmin><ymin>6</ymin><xmax>20</xmax><ymax>14</ymax></bndbox></part>
		<part><name>hand</name><bndbox><xmin>25</xmin><ymin>20</ymin><xmax>28</xmax><ymax>24</ymax></bndbox></part>
		<actions><jumping>0</jumping><phoning>1</phoning></actions>
	</object>
	<object>
		<name>dog</name><pose>Unspecified</pose><truncated>0</truncated><difficult>1</difficult>
		<bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>9</xmax><ymax>11</ymax></bndbox>
	</object>
</annotation>
"""


def box(b: dict) -> list:
    xmin, ymin, xmax, ymax = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    return [
        typed(str(v)) if float(v).is_integer() else v
        for v in (xmin, ymin, xmax - xmin, ymax - ymin)
    ]


def expected_object(obj: dict) -> dict:
    """torchvision's dict of one <object>, in the store's shape: name as category,
    bndbox as a COCO bbox, parts the same way, every other tag's text typed."""
    out = {}
    for tag, value in obj.items():
        if tag == "name":
            out["category"] = value
        elif tag == "bndbox":
            out["bbox"] = [int(v) if float(v).is_integer() else v for v in box(value)]
        elif tag == "part":
            parts = value if isinstance(value, list) else [value]
            out["parts"] = [expected_object(p) for p in parts]
        elif isinstance(value, dict):
            out[tag] = {k: typed(v) for k, v in value.items()}
        else:
            out[tag] = typed(value)
    return out


def test_pascal_voc_keeps_every_tag_torchvision_parses(workspace):
    put(
        INCOMING / "VOC2012",
        {
            "JPEGImages/2007_000027.jpg": make_image("JPEG", (48, 40), seed=1),
            "JPEGImages/2007_000032.jpg": make_image("JPEG", (48, 40), seed=2),
            "Annotations/2007_000027.xml": VOC_XML,
            "ImageSets/Main/train.txt": "2007_000027\n",
            "ImageSets/Main/val.txt": "2007_000032\n",
            "ImageSets/Main/trainval.txt": "2007_000027\n2007_000032\n",
            "ImageSets/Main/person_train.txt": "2007_000027  1\n",
        },
    )
    store = ingest_and_pack()
    target = parse_voc_xml(ElementTree.fromstring(VOC_XML))["annotation"]
    meta = store.metadata("VOC2012/JPEGImages/2007_000027.jpg")
    assert meta["objects"] == [expected_object(o) for o in target["object"]]
    assert meta["objects"][0]["parts"][0] == {"category": "head", "bbox": [12, 6, 8, 8]}
    assert meta["objects"][1]["bbox"] == [1.5, 2, 7.5, 9]
    rest = {k: v for k, v in target.items() if k not in ("object", "filename")}
    assert meta["voc"] == {
        k: {kk: typed(vv) for kk, vv in v.items()} if isinstance(v, dict) else typed(v)
        for k, v in rest.items()
    }
    assert store.record("VOC2012/JPEGImages/2007_000027.jpg").split == "train"
    assert store.record("VOC2012/JPEGImages/2007_000032.jpg").split == "val"
    ingest = report("ingest")
    assert ingest["rejected"] == 0 and ingest["unused_metadata"] == []
    assert any("trainval.txt: the union of train and val" in n for n in ingest["annotation_notes"])
    assert any("person_train.txt: a per-class list" in n for n in ingest["annotation_notes"])


def test_depth_1_takes_the_top_folder_as_torchvision_pointed_at_data_incoming(workspace):
    """Class folders copied straight into data/incoming/ (not in a dataset folder):
    `true` takes each for a dataset folder (tests/test_annotations_folders.py); a depth
    of 1 counts from data/incoming/ itself, as ImageFolder("data/incoming") does."""
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("label_from_folder: auto", "label_from_folder: 1"))
    files = {
        "cat/1.png": make_image(seed=1),
        "cat/kittens/b.jpg": make_image("JPEG", seed=2),
        "dog/3.png": make_image(seed=3),
        "dog/old/deep/4.png": make_image(seed=4),
        "cat/anim.gif": make_image("GIF", seed=5),  # torchvision skips GIF; we keep it
    }
    put(INCOMING, files)
    store = ingest_and_pack()
    reference = torchvision_image_folder(INCOMING)
    assert {k: store.metadata(k)["label"] for k in reference} == reference
    assert store.metadata("cat/anim.gif")["label"] == "cat"


def test_a_folder_depth_takes_the_class_below_a_dataset_folder(workspace):
    params = Path("params.yaml")
    text = params.read_text().replace("label_from_folder: auto", "label_from_folder: 2")
    params.write_text(text.replace("split_from_folder: false", "split_from_folder: true"))
    put(
        INCOMING / "pets",
        {
            "cat/1.png": make_image(seed=1),
            "dog/kittens/2.png": make_image(seed=2),
            "loose.png": make_image(seed=3),
        },
    )
    put(INCOMING, {"flowers/train/rose/3.png": make_image(seed=4)})
    store = ingest_and_pack()
    got = {r.key: (r.metadata.get("label"), r.split) for r in store.records()}
    assert got["pets/cat/1.png"][0] == "cat"
    assert got["pets/dog/kittens/2.png"][0] == "dog"
    assert got["pets/loose.png"][0] is None
    # under a split folder the depth counts from it: rose is the first folder, not the 2nd
    assert got["flowers/train/rose/3.png"] == (None, "train")


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><id>7</id><name>street</name></task></meta>
  <image id="0" name="frame_000000.png" width="32" height="24">
    <box label="car" occluded="0" source="manual" xtl="1.00" ytl="2.00" xbr="11.50"
         ybr="12.00" z_order="0">
      <attribute name="color">red</attribute>
    </box>
    <polygon label="road" occluded="1" source="manual"
             points="0.00,20.00;31.00,20.00;31.00,23.00" z_order="0">
    </polygon>
  </image>
</annotations>
"""


def test_cvat_for_images_xml_gives_boxes_polygons_and_attributes(workspace):
    put(
        INCOMING / "street",
        {"annotations.xml": CVAT_XML, "images/frame_000000.png": make_image(seed=1)},
    )
    store = ingest_and_pack()
    assert store.metadata("street/images/frame_000000.png")["objects"] == [
        {
            "category": "car",
            "type": "box",
            "bbox": [1, 2, 10.5, 10],
            "occluded": 0,
            "source": "manual",
            "z_order": 0,
            "attributes": {"color": "red"},
        },
        {
            "category": "road",
            "type": "polygon",
            "bbox": [0, 20, 31, 3],
            "segmentation": [[0, 20, 31, 20, 31, 23]],
            "occluded": 1,
            "source": "manual",
            "z_order": 0,
        },
    ]
    assert any("<meta> describes the task" in n for n in report("ingest")["annotation_notes"])
