"""Images that annotate other images: a segmentation mask, an instance map, a colour
rendering. Each is found beside its image by its dataset's own layout and stored under
the image's record (FORMAT.md, "Paired images"), never as an image of its own.

- Pascal VOC (torchvision's `VOCSegmentation`): `JPEGImages/ID.jpg` with
  `SegmentationClass/ID.png` (mask), `SegmentationObject/ID.png` (instances), SBD's
  `SegmentationClassAug/ID.png` (mask).
- Cityscapes (torchvision's `Cityscapes`): `leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png`
  with `gtFine/SPLIT/CITY/NAME_gtFine_labelIds.png` (mask), `_instanceIds` (instances),
  `_color` (color), `_labelTrainIds` (train_ids); `gtCoarse/` the same, each role
  `coarse_` first.
- ADE20K scene parsing (ADEChallengeData2016): `images/SPLIT/NAME.jpg` with
  `annotations/SPLIT/NAME.png` (mask).
- CamVid (SegNet's and Kaggle's): `SPLIT/NAME.png` with `SPLIT_labels/NAME_L.png` or
  `SPLITannot/NAME.png` (mask).

A paired file is matched to its image by folder and stem, as each dataset's loader does;
one whose image is not in the same place is reported, never stored alone. Each image
paired by a layout keeps which layout and where its dataset's root is (`Layout`, in
pairs.py): the class names of its masks come from there (classes.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .base import KeyIndex
from .pairs import Layout, Pairs

# VOC: the folder holding a paired image -> its role.
_VOC_FOLDERS = {
    "SegmentationClass": "mask",
    "SegmentationObject": "instances",
    "SegmentationClassAug": "mask",
}
_CITYSCAPES = re.compile(
    r"^(?P<root>(?:.*/)?)(?P<kind>gtFine|gtCoarse)/(?P<rest>(?:[^/]+/)*)"
    r"(?P<name>[^/]+)_(?P=kind)_(?P<what>labelIds|instanceIds|color|labelTrainIds)\.png$"
)
_CITYSCAPES_ROLES = {
    "labelIds": "mask",
    "instanceIds": "instances",
    "color": "color",
    "labelTrainIds": "train_ids",
}
_ADE = re.compile(r"^(?P<root>(?:.*/)?)annotations/(?P<rest>(?:[^/]+/)*)(?P<name>[^/]+)\.png$")
_CAMVID = re.compile(
    r"^(?P<root>(?:.*/)?)(?P<split>[^/]+?)(?:_labels/(?P<name>[^/]+)_L|annot/(?P<same>[^/]+))\.png$"
)


class _Found(NamedTuple):
    """What a rule says of a paired file: its layout, its image (None: not there), its role."""

    layout: Layout
    image: str | None
    role: str


def find_pairs(keys: KeyIndex) -> Pairs:
    """The paired images among `keys` (the image files of one place), by the layouts
    above."""
    pairs = Pairs()
    for file in sorted(keys.keys):
        if not file.endswith(".png"):
            continue  # every layout above keeps its masks as PNG
        found = _match(file, keys)
        if found is None:
            continue
        layout, image, role = found
        if image is None or image == file:
            pairs.orphans[file] = f"a {layout.name} {role} whose image is not in the same place"
        else:
            pairs.add(image, role, file, layout)
    return pairs


def _match(file: str, keys: KeyIndex) -> _Found | None:
    """What a rule says of `file`, if it is a paired image by one."""
    for rule in (_voc, _cityscapes, _ade, _camvid):
        found = rule(file, keys)
        if found is not None:
            return found
    return None


def _voc(file: str, keys: KeyIndex) -> _Found | None:
    parts = file.split("/")
    if len(parts) < 2 or parts[-2] not in _VOC_FOLDERS:
        return None
    root = "/".join(parts[:-2])
    stem = parts[-1][: -len(".png")]
    image = keys.one_by_stem(f"{root}/JPEGImages" if root else "JPEGImages", stem)
    return _Found(Layout("Pascal VOC", root), image, _VOC_FOLDERS[parts[-2]])


def _cityscapes(file: str, keys: KeyIndex) -> _Found | None:
    match = _CITYSCAPES.match(file)
    if match is None:
        return None
    root, rest, name = match["root"], match["rest"], match["name"]
    image = f"{root}leftImg8bit/{rest}{name}_leftImg8bit.png"
    role = _CITYSCAPES_ROLES[match["what"]]
    if match["kind"] == "gtCoarse":
        role = f"coarse_{role}"
    layout = Layout("Cityscapes", root.rstrip("/"))
    return _Found(layout, image if image in keys.keys else None, role)


def _ade(file: str, keys: KeyIndex) -> _Found | None:
    match = _ADE.match(file)
    if match is None:
        return None
    folder = f"{match['root']}images/{match['rest']}".rstrip("/")
    if not keys.under(f"{folder}/"):
        return None  # no images/SPLIT/ beside annotations/SPLIT/: not this layout
    layout = Layout("ADE20K", match["root"].rstrip("/"))
    return _Found(layout, keys.one_by_stem(folder, match["name"]), "mask")


def _camvid(file: str, keys: KeyIndex) -> _Found | None:
    match = _CAMVID.match(file)
    if match is None:
        return None
    folder = f"{match['root']}{match['split']}"
    if not keys.under(f"{folder}/"):
        return None  # no image folder of that name beside it: not this layout
    image = keys.one_by_stem(folder, match["name"] or match["same"])
    return _Found(Layout("CamVid", match["root"].rstrip("/")), image, "mask")
