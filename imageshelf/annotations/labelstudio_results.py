"""What Label Studio's exports share, its JSON export (labelstudio.py) and its CSV, TSV
and JSON_MIN exports (labelstudio_min.py): the image a task's data value names
(`image_keys`), and a region's result as label-studio-sdk's converter gives it in pixels
(`objects_of`, `shape_of`), or why its numbers cannot be (`unusable`)."""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from .base import KeyIndex, rounded

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio names an upload "1a2b3c4d-cat.jpg"
GEOMETRY = ("x", "y", "width", "height", "rotation", "points", "radiusX", "radiusY", "closed")
NUMBER_LIMIT = 1e9  # a region's numbers (percent, degrees, pixels) stay under this


def image_keys(value: str, folder: str, keys: KeyIndex) -> list[str]:
    """The keys of the images a task's data value may name: those under `folder` that
    the longest end of its path names (one, unless the name is ambiguous)."""
    if value.startswith("data:") or len(value) > 4096:
        return []  # an inline image, or text
    parts = urllib.parse.urlsplit(value)
    local = urllib.parse.parse_qs(parts.query).get("d") if parts.query else None
    path = local[0] if local else urllib.parse.unquote(parts.path)  # local-files/?d=
    names = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not names:
        return []
    for last in dict.fromkeys((names[-1], UPLOAD_PREFIX.sub("", names[-1]))):
        found = keys.by_tail(folder, last)
        if found:
            break
    else:
        return []
    prefix = f"{folder}/" if folder else ""
    for start in range(len(names) - 1):  # the longest end of the path that names any
        tail = "/".join([*names[start:-1], last])
        named = [k for k in found if k == prefix + tail or k.endswith("/" + tail)]
        if named:
            return named
    return found


Region = dict[str, Any]


def first_label(value: dict[str, Any]) -> Any:
    labels = next((v for k, v in value.items() if k.endswith("labels") and v), None)
    return labels[0] if isinstance(labels, list) else None


def pretty(items: list[Any]) -> Any:
    """A from_name's results as Label Studio's JSON_MIN export gives them: a lone choice
    or text as itself (`"cat"`), a value with one field as that field, else the value."""
    values = []
    for item in items:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            values.append(item)
            continue
        own = {k: v for k, v in value.items() if k not in GEOMETRY}
        single = next(iter(own.values())) if len(own) == 1 else own
        values.append(single[0] if isinstance(single, list) and len(single) == 1 else single)
    return values[0] if len(values) == 1 else values


def objects_of(regions: list[Region]) -> Callable[[int, int], list[dict[str, Any]]]:
    def compute(width: int, height: int) -> list[dict[str, Any]]:
        return [_object(region, width, height) for region in regions]

    return compute


def _object(region: Region, width: int, height: int) -> dict[str, Any]:
    value = region["value"]
    obj = dict(region)
    label = first_label(value)
    if label is not None:
        obj.setdefault("category", label)
    w = _dimension(region.get("original_width"), width)
    h = _dimension(region.get("original_height"), height)
    shape = shape_of(value, region.get("type") or kind_of(value))
    if shape is not None and w is not None and h is not None:
        obj.update(shape(value, w, h))
    return obj


def _dimension(value: Any, image: int) -> float | None:
    """The image size a region's percentages are of: its own `original_width` (or
    height), the image's where it has none; None where it is not a usable number."""
    if value is None or value == 0:
        return image
    return _number(value)


def unusable(region: Region) -> str | None:
    """Why a region's numbers cannot give pixels (a number that is not one, or past
    NUMBER_LIMIT), or None."""
    value = region["value"]
    named = [(name, region.get(name)) for name in ("original_width", "original_height")]
    named += [(name, value.get(name)) for name in GEOMETRY if name not in ("points", "closed")]
    for name, number in named:
        if number is not None and _number(number) is None:
            return f"its {name} is not a finite number under {NUMBER_LIMIT:.0e} ({_short(number)})"
    points = value.get("points")
    if isinstance(points, list) and points and _points(points) is None:
        return f"its points are not pairs of finite numbers under {NUMBER_LIMIT:.0e}"
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return text[:40]


Shape = Callable[[dict[str, Any], float, float], dict[str, Any]]


def shape_of(value: dict[str, Any], kind: Any) -> Shape | None:
    """How to give a region's value in pixels; None for a value that is no region (or
    whose numbers are not numbers: it is kept as it is, with no pixels)."""
    if "points" in value:
        return _polygon if _points(value["points"]) else None
    if _numbers(value, "x", "y", "radiusX", "radiusY"):
        return _ellipse
    if _numbers(value, "x", "y", "width", "height"):
        return _rectangle
    if str(kind).startswith("keypoint") and _numbers(value, "x", "y"):
        return _keypoint
    if isinstance(value.get("rle"), list) or value.get("format") == "rle":
        return _brush
    return None


def kind_of(value: dict[str, Any]) -> str | None:
    """A region's type where its result does not say it (JSON_MIN and CSV exports drop
    it): its labels' key (`keypointlabels`), else `keypoint` for a lone point."""
    labels = next((k for k in value if k.endswith("labels")), None)
    if labels is not None:
        return labels
    lone = "x" in value and "y" in value
    return "keypoint" if lone and not {"height", "radiusX", "points"} & set(value) else None


def _numbers(value: dict[str, Any], *names: str) -> bool:
    return all(_number(value.get(name)) is not None for name in names)


def _points(points: Any) -> list[tuple[float, float]] | None:
    if not isinstance(points, list) or not points:
        return None
    pairs = []
    for point in points:
        if not isinstance(point, list) or len(point) < 2:
            return None
        x, y = _number(point[0]), _number(point[1])
        if x is None or y is None:
            return None
        pairs.append((x, y))
    return pairs


def _rectangle(value: dict[str, Any], w: float, h: float) -> dict[str, Any]:
    """Label Studio keeps a rectangle's top-left corner before rotation, and the angle
    clockwise about it in degrees; the bbox is the rotated rectangle's extent (the
    converter's `rotated_rectangle` turns it in percent units, which is the same on a
    square image and skewed on others)."""
    x, y = float(value["x"]) * w / 100, float(value["y"]) * h / 100
    bw, bh = float(value["width"]) * w / 100, float(value["height"]) * h / 100
    angle = math.radians(_number(value.get("rotation")) or 0.0)
    cos, sin = math.cos(angle), math.sin(angle)
    corners = [(0.0, 0.0), (bw, 0.0), (bw, bh), (0.0, bh)]
    xs = [x + dx * cos - dy * sin for dx, dy in corners]
    ys = [y + dx * sin + dy * cos for dx, dy in corners]
    out: dict[str, Any] = {"bbox": _box(min(xs), min(ys), max(xs), max(ys))}
    if angle:  # its corners too, as YOLO's oriented boxes have them
        out["segmentation"] = [[rounded(c) for xy in zip(xs, ys, strict=True) for c in xy]]
    return out


def _polygon(value: dict[str, Any], w: float, h: float) -> dict[str, Any]:
    points = [(x * w / 100, y * h / 100) for x, y in _points(value["points"]) or ()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    flat = [rounded(c) for point in points for c in point]
    return {"segmentation": [flat], "bbox": _box(min(xs), min(ys), max(xs), max(ys))}


def _ellipse(value: dict[str, Any], w: float, h: float) -> dict[str, Any]:
    cx, cy = float(value["x"]) * w / 100, float(value["y"]) * h / 100
    rx, ry = float(value["radiusX"]) * w / 100, float(value["radiusY"]) * h / 100
    angle = math.radians(_number(value.get("rotation")) or 0.0)
    ex = math.hypot(rx * math.cos(angle), ry * math.sin(angle))
    ey = math.hypot(rx * math.sin(angle), ry * math.cos(angle))
    return {"bbox": _box(cx - ex, cy - ey, cx + ex, cy + ey)}


def _keypoint(value: dict[str, Any], w: float, h: float) -> dict[str, Any]:
    return {
        "keypoints": [rounded(float(value["x"]) * w / 100), rounded(float(value["y"]) * h / 100), 2]
    }


def _brush(_value: dict[str, Any], _w: float, _h: float) -> dict[str, Any]:
    return {}  # Label Studio's own RLE, kept in `value` as it is


def _box(x0: float, y0: float, x1: float, y1: float) -> list[int | float]:
    return [rounded(x0), rounded(y0), rounded(x1 - x0), rounded(y1 - y0)]


def _number(value: Any) -> float | None:
    """A coordinate or size: a finite number, and not so large that pixels overflow.
    Compared before any conversion: float() of a 400-digit integer raises."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not -NUMBER_LIMIT < value < NUMBER_LIMIT:  # False for NaN too
        return None
    return float(value)
