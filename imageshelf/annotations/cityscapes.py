"""Cityscapes' polygon files: `gtFine/SPLIT/CITY/NAME_gtFine_polygons.json` (and
`gtCoarse/..._gtCoarse_polygons.json`), as torchvision's `Cityscapes` gives them for
`target_type="polygon"` (the JSON as it is) and cityscapesscripts' `Annotation` reads
them: `imgHeight`, `imgWidth`, `objects` of `label` and `polygon` (a list of [x, y]).

The image is `leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png` (paired.py pairs its label
PNGs the same way). Each object becomes one of `objects`: `category` (its label),
`segmentation` (the polygon, flattened as COCO's), `bbox` (its extent, in pixels),
and every other field it has (`id`, `deleted`, `verified`, `date`, `user`, ...);
`cityscapes`: the file's other fields (`imgHeight`, `imgWidth`).
"""

from __future__ import annotations

import re
from typing import Any

from .base import Annotations, KeyIndex

_NAME = re.compile(
    r"^(?P<root>(?:.*/)?)(?P<kind>gtFine|gtCoarse)/(?P<rest>(?:[^/]+/)*)"
    r"(?P<name>[^/]+)_(?P=kind)_polygons\.json$"
)


def is_cityscapes_polygons(rel: str, obj: Any) -> bool:
    return (
        _NAME.match(rel) is not None
        and isinstance(obj, dict)
        and isinstance(obj.get("objects"), list)
    )


def image_of(rel: str) -> str:
    """The key of the image a polygon file speaks of."""
    match = _NAME.match(rel)
    assert match is not None
    return f"{match['root']}leftImg8bit/{match['rest']}{match['name']}_leftImg8bit.png"


def read_cityscapes(rel: str, obj: dict[str, Any], keys: KeyIndex, result: Annotations) -> None:
    image = image_of(rel)
    if image not in keys.keys:
        result.unused.append(f"{rel}: {image} (the image it speaks of: no such image)")
        return
    objects = []
    for number, given in enumerate(obj["objects"]):
        shaped = _object(given)
        if shaped is None:
            result.note(f"{rel}: object {number} is no label with a polygon; not stored")
            continue
        objects.append(shaped)
    rest = {k: v for k, v in obj.items() if k != "objects"}
    values: dict[str, Any] = {"objects": objects}
    if rest:
        values["cityscapes"] = rest
    result.set(image, values)


def _object(given: Any) -> dict[str, Any] | None:
    """One object as COCO's: its label the category, its polygon flattened, its extent."""
    if not isinstance(given, dict) or not isinstance(given.get("label"), str):
        return None
    points = given.get("polygon")
    if not (
        isinstance(points, list)
        and points
        and all(isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in points)
    ):
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    shaped = {k: v for k, v in given.items() if k not in ("label", "polygon")}
    shaped["category"] = given["label"]
    shaped["segmentation"] = [[v for p in points for v in p]]
    shaped["bbox"] = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    return shaped


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -(2**31) < value < 2**31
        and value == value  # not NaN
    )
