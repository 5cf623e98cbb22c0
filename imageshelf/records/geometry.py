"""Checked geometry: every box, polygon, mask, keypoint list and point set an object in a
store holds, made plain floats before anything computes with it.

A store may come from anywhere (a teammate, a remote, a crafted file), and its objects
are JSON: a coordinate can be text, `true`, a 400-digit integer (Python's JSON reader
takes it; `float()` of it, or `math.isfinite`, raises OverflowError), NaN, or a list of
a million strings. Exports (COCO, YOLO, Label Studio) and the viewer each used to read
`bbox` and friends their own way, and each tripped on another of these. They now all
call `checked(obj)`: it gives an object's geometry as finite floats within `LIMIT`, each
value of the length its kind needs, or raises GeometryError whose text is the reason,
for the caller to report against that object (an export leaves it out and says so; the
viewer does not draw it). The shapes are those the annotation readers store
(docs/ANNOTATIONS.md): COCO's `bbox`, `segmentation` (polygons or an RLE mask), `area`
and `keypoints`, CVAT's `points`, and a Label Studio region's `value` (in percent).

The standard library only: this sits low enough for the exports, the viewer and the
stages to share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Pixel coordinates within +-2^31: no image a store holds is larger (PNG and TIFF count
# pixels in 31 or 32 bits), and products of two of them (an area) stay exact in a float.
LIMIT = 2**31
# Values in one geometry value (a polygon of half a million points): beyond this an
# export's line or the viewer's page would be tens of megabytes for one object.
MAX_VALUES = 1_000_000
# A Label Studio region's numbers (percent, degrees, a keypoint's size).
REGION_NUMBERS = ("x", "y", "width", "height", "rotation", "radiusX", "radiusY")

Pairs = tuple[tuple[float, float], ...]


class GeometryError(ValueError):
    """An object's geometry that is not what its kind needs; the text is the reason."""


@dataclass(frozen=True)
class Geometry:
    """An object's geometry, checked: None (or empty) where the object has none."""

    bbox: tuple[float, float, float, float] | None = None  # x, y, width, height
    polygons: tuple[tuple[float, ...], ...] = ()  # COCO polygons: x, y, x, y, ...
    mask: bool = False  # an RLE mask (its form checked, not decoded)
    area: float | None = None
    keypoints: tuple[tuple[float, float, float], ...] | None = None  # x, y, visibility
    points: Pairs | None = None  # CVAT's points
    region: dict[str, float] | None = None  # a Label Studio value's numbers
    region_points: Pairs | None = None  # a Label Studio polygon's points, in percent


def checked(obj: dict[str, Any]) -> Geometry:
    """The geometry of one object (a dict), every value checked; GeometryError if any
    value it has is not a finite number within LIMIT of the right count."""
    bbox = box(obj["bbox"]) if obj.get("bbox") is not None else None
    polygons, mask = segmentation(obj.get("segmentation"))
    area = None
    if obj.get("area") is not None:
        area = numbers(obj["area"], "area", scalar=True)[0]
        if area < 0:
            raise GeometryError("its area is negative")
    keypoints = None
    if obj.get("keypoints") is not None:
        flat = numbers(obj["keypoints"], "keypoints")
        if len(flat) % 3:
            raise GeometryError(f"{len(flat)} values in its keypoints, not (x, y, v) triples")
        keypoints = tuple(zip(flat[::3], flat[1::3], flat[2::3], strict=True))
    points = pairs(obj["points"], "points") if obj.get("points") is not None else None
    region, region_points = _region(obj.get("value"))
    return Geometry(bbox, polygons, mask, area, keypoints, points, region, region_points)


def numbers(value: Any, what: str, scalar: bool = False) -> tuple[float, ...]:
    """`value` (a list of numbers, or one number if `scalar`) as floats, each an int or
    float (not a bool) within +-LIMIT: compared before any conversion, so a huge int
    never reaches float() and NaN and infinities fail the same comparison."""
    if scalar:
        value = [value]
    elif not isinstance(value, list):
        raise GeometryError(f"{_kind(value)} as its {what}, not a list of numbers")
    if len(value) > MAX_VALUES:
        raise GeometryError(f"{len(value):,} values in its {what}, over {MAX_VALUES:,}")
    for item in value:
        if type(item) is not int and type(item) is not float:
            raise GeometryError(f"{_kind(item)} in its {what}, where a number goes")
        if not -LIMIT <= item <= LIMIT:
            raise GeometryError(f"a number in its {what} is not finite, or beyond 2^31")
    return tuple(float(item) for item in value)


def box(value: Any) -> tuple[float, float, float, float]:
    """A COCO box: x, y, width, height; the width and height not negative."""
    values = numbers(value, "bbox")
    if len(values) != 4:
        raise GeometryError(f"{len(values)} values in its bbox, not 4 (x, y, width, height)")
    x, y, width, height = values
    if width < 0 or height < 0:
        raise GeometryError("its bbox has a negative width or height")
    return x, y, width, height


def polygon(value: Any, what: str = "polygon") -> tuple[float, ...]:
    """A flat polygon: x, y pairs, at least three points."""
    values = numbers(value, what)
    if len(values) % 2 or len(values) < 6:
        raise GeometryError(f"{len(values)} values in its {what}, not x, y of 3 points or more")
    return values


def segmentation(value: Any) -> tuple[tuple[tuple[float, ...], ...], bool]:
    """COCO's segmentation: (its polygons, False), or ((), True) for an RLE mask whose
    `size` and `counts` have the form pycocotools reads; ((), False) for none."""
    if value is None:
        return (), False
    if isinstance(value, list):
        return tuple(polygon(ring, "segmentation polygon") for ring in value), False
    if not isinstance(value, dict):
        raise GeometryError(f"{_kind(value)} as its segmentation, not polygons or an RLE mask")
    size, counts = value.get("size"), value.get("counts")
    height_width = numbers(size, "mask size")
    if (
        len(height_width) != 2
        or min(height_width) < 0
        or not all(n.is_integer() for n in height_width)
    ):
        raise GeometryError("its mask size is not [height, width] in whole pixels")
    if isinstance(counts, list):
        runs = numbers(counts, "mask counts")
        if any(run < 0 or not run.is_integer() for run in runs):
            raise GeometryError("its mask counts are not whole numbers of pixels")
    elif not isinstance(counts, str):
        raise GeometryError(f"{_kind(counts)} as its mask counts, not runs or COCO's text")
    return (), True


def pairs(value: Any, what: str) -> Pairs:
    """Points as [x, y, x, y, ...] or [[x, y], ...] (CVAT, Label Studio)."""
    if isinstance(value, list) and value and all(isinstance(p, list) for p in value):
        if len(value) > MAX_VALUES // 2:
            raise GeometryError(f"{len(value):,} points in its {what}, over {MAX_VALUES // 2:,}")
        points = [numbers(p, what) for p in value]
        if any(len(p) != 2 for p in points):
            raise GeometryError(f"a point in its {what} is not [x, y]")
        return tuple((p[0], p[1]) for p in points)
    flat = numbers(value, what)
    if len(flat) % 2:
        raise GeometryError(f"{len(flat)} values in its {what}, not x, y pairs")
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _region(value: Any) -> tuple[dict[str, float] | None, Pairs | None]:
    """A Label Studio region's numbers and points, where the object keeps its value."""
    if not isinstance(value, dict):
        return None, None
    region = {
        name: numbers(value[name], f"value's {name}", scalar=True)[0]
        for name in REGION_NUMBERS
        if value.get(name) is not None
    }
    found = value.get("points")
    return region or None, (pairs(found, "value's points") if found is not None else None)


def image_size(width: Any, height: Any) -> tuple[int, int]:
    """An image's size to scale coordinates by (YOLO's fractions, Label Studio's
    percent): whole numbers from 1 to LIMIT, so no division by zero."""
    if not all(type(n) is int and 0 < n <= LIMIT for n in (width, height)):
        raise GeometryError(f"the store gives its image {width!r:.12}x{height!r:.12} pixels")
    return width, height


def _kind(value: Any) -> str:
    """What a value is, said briefly and without printing it whole (it may be huge)."""
    if isinstance(value, str):
        return f"text {value[:20]!r}" + ("..." if len(value) > 20 else "")
    if value is None:
        return "null"
    kinds = {
        bool: "a boolean",
        dict: "an object",
        list: "a list",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), "a value")
