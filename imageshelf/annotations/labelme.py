"""LabelMe: the JSON labelme saves for each image, as labelme's own loader reads it
(`labelme/_label_file.py`: `read_label_file`, `_load_shape_json_obj`).

A file holds `shapes` (each a `label`, `points`, `shape_type`, `group_id`, `flags`,
`description`, and for a mask shape a `mask`), `imagePath`, `imageData` (the image,
base64, or null), `imageHeight`, `imageWidth`, `flags` and `version`. Its image is the
file `imagePath` names, relative to the JSON (`NAME.json` beside `NAME.jpg` is the usual
case). Each shape becomes an entry of `objects`: its `label` as `category`, its
`shape_type`, the rest of its fields but those at labelme's defaults (a null
`group_id` or `mask`, an empty `description` or `flags`), and from its points:

- `rectangle`: `bbox` (the extent of its two corners, as globox reads it);
- `polygon`, `oriented_rectangle`: `segmentation` (COCO's flat list) and `bbox`;
- `circle`: `points` (the centre, then a point on the circle) and `bbox`;
- `line`, `linestrip`: `points` and `bbox` (their extent); `point`, `points`: `points`;
- `mask`: `bbox` (the box labelme pastes the mask into) and `mask` as labelme wrote it
  (a base64 PNG of that box's pixels).

The image's `flags` (labelme's image-level classification) are a field of their own;
`version`, `imagePath`, `imageHeight`, `imageWidth` and any other field are kept in
`labelme`. `imageData` is never metadata: when the image file is there it is a copy of
it and is left out (the report says so); when it is not, it is the image, stored under
the JSON's name with the suffix of `imagePath`, its bytes read from the JSON on demand
(embedded.py: `embedded_key`, `embedded_image`, for ingest, pack and validate alike).
"""

from __future__ import annotations

import base64
import binascii
import math
import posixpath
from typing import Any

from .base import Annotations, KeyIndex, folder_of, join, name_of, number, rounded
from .embedded import embedded_key, image_path

SHAPE_TYPES = (
    "polygon",
    "rectangle",
    "oriented_rectangle",
    "point",
    "line",
    "circle",
    "linestrip",
    "points",
    "mask",
)
POINT_COUNTS = {
    "point": 1,
    "rectangle": 2,
    "line": 2,
    "circle": 2,
    "mask": 2,
    "oriented_rectangle": 4,
}
DEFAULTS = ("group_id", "description", "flags", "mask")  # left out when null or empty
IMAGE_FIELDS = ("shapes", "imageData", "flags")  # the rest of a file goes to `labelme`


def labelme_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields a LabelMe file gives its image; ValueError, naming the shape, for what
    labelme's loader refuses too."""
    shapes = obj["shapes"]
    values: dict[str, Any] = {"objects": [_shape(n, shape) for n, shape in enumerate(shapes)]}
    flags = _flags(obj.get("flags"), "flags")
    if flags:
        values["flags"] = flags
    values["labelme"] = {k: v for k, v in obj.items() if k not in IMAGE_FIELDS}
    return values


def _flags(flags: Any, where: str) -> dict[str, bool]:
    if flags is None:
        return {}
    if not isinstance(flags, dict) or not all(isinstance(v, bool) for v in flags.values()):
        raise ValueError(f"{where} must map names to true or false")
    return flags


def _shape(number_: int, shape: Any) -> dict[str, Any]:
    where = f"shapes[{number_}]"
    if not isinstance(shape, dict):
        raise ValueError(f"{where} is not an object")
    label, kind = shape.get("label"), shape.get("shape_type", "polygon")
    if not isinstance(label, str):
        raise ValueError(f"{where}: label must be text")
    if kind not in SHAPE_TYPES:
        raise ValueError(f"{where}: shape_type {kind!r} is not one labelme knows")
    points = _points(where, shape.get("points"), kind)
    _check_fields(where, kind, shape)
    out: dict[str, Any] = {"category": label, "shape_type": kind}
    out.update(_geometry(where, kind, points, shape.get("mask")))
    for name, value in shape.items():
        if name in ("label", "points", "shape_type"):
            continue
        if name not in DEFAULTS or value not in (None, "", {}):
            out[name] = value
    return out


def _check_fields(where: str, kind: str, shape: dict[str, Any]) -> None:
    """A shape's other fields, as labelme's loader checks them."""
    _flags(shape.get("flags"), f"{where}: flags")
    group_id, description = shape.get("group_id"), shape.get("description")
    if group_id is not None and (isinstance(group_id, bool) or not isinstance(group_id, int)):
        raise ValueError(f"{where}: group_id must be a whole number")
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{where}: description must be text")
    mask = shape.get("mask")
    if kind == "mask" and not isinstance(mask, str):
        raise ValueError(f"{where}: a mask shape without its mask (a base64 PNG)")
    if kind != "mask" and mask is not None:
        raise ValueError(f"{where}: a mask on a {kind}, which labelme does not open")


def _points(where: str, points: Any, kind: str) -> list[tuple[float, float]]:
    if not isinstance(points, list) or not points:
        raise ValueError(f"{where}: points must be a list of [x, y]")
    pairs = []
    for point in points:
        if not (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
            and all(math.isfinite(c) for c in point)
        ):
            raise ValueError(f"{where}: points must be a list of [x, y], each a finite number")
        pairs.append((point[0], point[1]))
    wanted = POINT_COUNTS.get(kind)
    if wanted is not None and len(pairs) != wanted:
        raise ValueError(f"{where}: a {kind} has {wanted} point(s), not {len(pairs)}")
    return pairs


def _geometry(
    where: str, kind: str, points: list[tuple[float, float]], mask: Any
) -> dict[str, Any]:
    """The COCO fields a shape's points give (see the module's docstring)."""
    flat = [number(float(c)) for point in points for c in point]
    if kind == "circle":
        (cx, cy), (px, py) = points
        r = math.hypot(cx - px, cy - py)
        box = [rounded(cx - r), rounded(cy - r), rounded(2 * r), rounded(2 * r)]
        return {"bbox": box, "points": [list(p) for p in points]}
    if kind == "mask":
        return {"bbox": _mask_box(where, points, mask)}
    out: dict[str, Any] = {}
    if kind not in ("point", "points"):
        xs, ys = flat[0::2], flat[1::2]
        x, y = min(xs), min(ys)
        out["bbox"] = [x, y, number(float(max(xs) - x)), number(float(max(ys) - y))]
    if kind in ("polygon", "oriented_rectangle"):
        out["segmentation"] = [flat]
    elif kind != "rectangle":
        out["points"] = [list(p) for p in points]
    return out


def _mask_box(where: str, points: list[tuple[float, float]], mask: str) -> list[int]:
    """Where labelme's shapes_to_label pastes a mask: at its first point, rounded; as
    large as the box its points span when they are whole numbers, else as the PNG."""
    (x1, y1), (x2, y2) = points
    left, top = round(x1), round(y1)
    if all(float(c).is_integer() for point in points for c in point):
        return [left, top, round(x2) - left + 1, round(y2) - top + 1]
    size = _png_size(mask)
    if size is None:
        raise ValueError(f"{where}: mask is not a base64 PNG")
    return [left, top, *size]


def _png_size(encoded: str) -> tuple[int, int] | None:
    """A base64 PNG's width and height, from its header (no pixel decoded)."""
    try:
        head = base64.b64decode(encoded[:44])
    except (binascii.Error, ValueError):
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# ------------------------------------------------------------------ which image


def read_labelme(
    rel: str, obj: dict[str, Any], keys: KeyIndex, result: Annotations, copies: list[str]
) -> None:
    """A LabelMe file that is no image's sidecar by name: its image is the one
    `imagePath` names (relative to the JSON, or by name under the folder above), else,
    if it embeds one, the image in `imageData` (`embedded_key`). A file that embeds a
    copy of an image that is there is listed in `copies` (note_copies)."""
    path = image_path(obj)
    key = _named_image(rel, path, keys)
    if key is None:
        if not (isinstance(obj.get("imageData"), str) and obj["imageData"]):
            result.unused.append(
                f"{rel}: LabelMe, but its image {path or '(no imagePath)'} is not there and "
                "it embeds none (imageData is null): put the image beside it"
            )
            return
        key = embedded_key(rel, path)
        if key is None:
            result.unused.append(f"{rel}: LabelMe whose imagePath {path} names no image file")
            return
        result.embedded[key] = rel
    elif obj.get("imageData"):
        copies.append(rel)
    apply_labelme(rel, obj, key, result)


def apply_labelme(rel: str, obj: dict[str, Any], key: str, result: Annotations) -> None:
    """Set a LabelMe file's fields on its image, or reject the image, with labelme's
    reason, if labelme would not open the file."""
    try:
        values = labelme_fields(obj)
    except ValueError as exc:
        result.broken[key] = f"{name_of(rel)}: not a LabelMe file labelme opens: {exc}"
        return
    result.set(key, values)


def _named_image(rel: str, path: str, keys: KeyIndex) -> str | None:
    """The image `imagePath` names: relative to the JSON, else the only image of its
    name under the folder above the JSON's (labelme run with `--output` elsewhere, an
    absolute path from another machine)."""
    if not path:
        return None
    folder = folder_of(rel)
    key = posixpath.normpath(join(folder, path))
    if key in keys.keys:
        return key
    found = keys.by_tail(folder_of(folder), name_of(path))
    return found[0] if len(found) == 1 else None
