"""Label Studio's JSON export: a list of tasks (or one task), each with the `data` that
names its image and the `annotations` people made, as label-studio-sdk's converter
(`Converter.annotation_result_from_task`, `convert_to_coco`) reads them.

A task's image is the one value of its `data` that names an image of this place:
`/data/upload/3/1a2b3c4d-cat.jpg` (an upload: the name with or without the 8-digit
prefix Label Studio adds), `/data/local-files/?d=scans/cat.jpg`, `s3://bucket/cat.jpg`,
`https://host/cat.jpg`, or a plain path; the longest end of its path that names exactly
one image under the JSON's folder. Per image, from the annotation used (the one marked
ground truth, else the latest not cancelled):

- `objects`: each region (rectangle, polygon, ellipse, keypoint, brush), every field
  of its result as Label Studio wrote it (`id`, `type`, `from_name`, `value` in percent
  of the image, `original_width`, `score`, ...), plus `category` (its first label) and,
  in pixels as the converter computes them, `bbox` ([x, y, width, height]; a rotated
  rectangle's or an ellipse's extent), `segmentation` (a polygon's points, a rotated
  rectangle's corners; COCO's shape) or `keypoints` ([x, y, 2]). A per-region result
  (a transcription, a choice made for that region) joins its region under its
  `from_name`, its value as Label Studio's JSON_MIN export gives it
  (`"transcription": "Total 12.50"`).
- each result for the whole image under its `from_name`, likewise (`"choice": "cat"`).
- `label_studio`: the task with every other field as exported (`id`, `data`,
  `predictions`, `meta`, every annotation: the used one without its `result`, which the
  fields above hold, its id in `used_annotation`).

A task that names no image here, or two, or that is not a task, is reported with its
reason; so are results the converter would skip, images named by two tasks (the later
wins field by field), and a region whose numbers give no pixels (text, NaN, a 400-digit
integer, anything past NUMBER_LIMIT): it is kept as exported, without `bbox` and the
rest, beside the task's other regions.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .base import Annotations, KeyIndex, folder_of, rounded

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio names an upload "1a2b3c4d-cat.jpg"
REGION_TYPES = frozenset(
    f"{shape}{labels}"
    for shape in ("rectangle", "polygon", "ellipse", "keypoint", "brush")
    for labels in ("", "labels")
)
GEOMETRY = ("x", "y", "width", "height", "rotation", "points", "radiusX", "radiusY", "closed")
NUMBER_LIMIT = 1e9  # a region's numbers (percent, degrees, pixels) stay under this


def is_label_studio(obj: Any) -> bool:
    """A Label Studio export: a list of tasks, or one task (a `data` object and a list
    of annotations, completions or predictions)."""
    tasks = obj if isinstance(obj, list) else [obj]
    return bool(tasks) and _is_task(tasks[0])


def is_json_min(obj: Any) -> bool:
    """Label Studio's JSON_MIN export (read by labelstudio_min.py): a list of items,
    each a task's data and results side by side with its annotation's id and author."""
    first = obj[0] if isinstance(obj, list) and obj else None
    return isinstance(first, dict) and "annotation_id" in first and "annotator" in first


def _is_task(task: Any) -> bool:
    return (
        isinstance(task, dict)
        and isinstance(task.get("data"), dict)
        and any(
            isinstance(task.get(k), list) for k in ("annotations", "completions", "predictions")
        )
    )


def read_label_studio(rel: str, obj: Any, keys: KeyIndex, result: Annotations) -> None:
    tasks = obj if isinstance(obj, list) else [obj]
    named: set[str] = set()
    twice: list[str] = []
    for number, task in enumerate(tasks):
        task_id = task.get("id") if isinstance(task, dict) else None
        where = f"{rel}: task {task_id if task_id is not None else f'#{number + 1} of the list'}"
        try:
            key = _task_image(where, task, folder_of(rel), keys, result)
            if key is None:
                continue
            if key in named:
                twice.append(key)
            named.add(key)
            _apply(key, task, rel, where, result)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.unused.append(f"{where}: not a Label Studio task ({type(exc).__name__}: {exc})")
    if twice:
        result.note(
            f"{rel}: {len(twice)} image(s) named by more than one task; the later task's "
            f"fields win (first: {twice[0]})"
        )


def _task_image(
    where: str, task: Any, folder: str, keys: KeyIndex, result: Annotations
) -> str | None:
    if not _is_task(task):
        raise TypeError("no data object, or no list of annotations")
    found: set[str] = set()
    for value in task["data"].values():
        if isinstance(value, str) and value:
            found.update(image_keys(value, folder, keys))
    if len(found) == 1:
        return found.pop()
    refs = ", ".join(f"{k}={v}" for k, v in task["data"].items() if isinstance(v, str))
    why = (
        f"could be any of {', '.join(sorted(found)[:3])}; put the JSON beside its images"
        if found
        else "names no image here"
    )
    result.unused.append(f"{where}: {refs[:200] or 'no data'} ({why})")
    return None


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


def _apply(key: str, task: dict[str, Any], rel: str, where: str, result: Annotations) -> None:
    listed = "annotations" if "annotations" in task else "completions"  # older exports
    annotations = task.get(listed) or []
    used = _used(annotations)
    kept = dict(task)
    if used is None:
        result.set(key, {"label_studio": kept}, sources=[rel])
        return
    kept[listed] = [
        {k: v for k, v in a.items() if k != "result"} if a is used else a for a in annotations
    ]
    kept["used_annotation"] = used.get("id")
    regions, whole = _group(used.get("result", []))
    fields: dict[str, Any] = {"label_studio": kept, "objects": []}
    fields.update((name, pretty(values)) for name, values in whole.items())
    result.set(key, fields, sources=[rel])
    for region in regions:
        why = unusable(region)
        if why:
            rid = region.get("id")
            result.note(
                f"{where}: region {str(rid)[:40] if rid is not None else '(no id)'}: {why}; "
                "kept as exported, without pixels"
            )
    if regions:
        result.reading = rel
        result.set_sized(key, "objects", objects_of(regions))


def _used(annotations: list[Any]) -> dict[str, Any] | None:
    """The annotation whose results an image gets: the ground truth, else the latest
    (by its update, then creation time) that was not cancelled."""
    live = [
        a
        for a in annotations
        if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))
    ]
    truth = [a for a in live if a.get("ground_truth")]
    ordered = sorted(
        truth or live,
        key=lambda a: (str(a.get("updated_at") or ""), str(a.get("created_at") or "")),
    )
    return ordered[-1] if ordered else None


Region = dict[str, Any]


def _group(results: Any) -> tuple[list[Region], dict[str, list[Any]]]:
    """The regions of an annotation's results, each with the results that share its id
    joined to it (a label, a transcription); and the results for the whole image, by
    `from_name` (`relations` for those with no value)."""
    regions: dict[str, Region] = {}
    rest: list[tuple[str, dict[str, Any]]] = []
    whole: dict[str, list[Any]] = defaultdict(list)
    listed = results if isinstance(results, list) else [] if results is None else [results]
    for number, item in enumerate(listed):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            whole["relations"].append(item)
            continue
        rid = f"#{number}" if item.get("id") is None else str(item["id"])
        if item.get("type") in REGION_TYPES and rid not in regions:
            regions[rid] = dict(item)
        else:
            rest.append((rid, item))
    for rid, item in rest:
        name, region = str(item.get("from_name", "result")), regions.get(rid)
        if region is None and shape_of(item["value"], item.get("type")) is not None:
            regions[rid] = dict(item)
        elif region is not None and name not in region:
            region[name] = pretty([item])
            label = first_label(item["value"])
            if label is not None:
                region.setdefault("category", label)
        else:
            whole[name].append(item)
    return list(regions.values()), whole


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
