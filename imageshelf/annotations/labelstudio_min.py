"""Label Studio's JSON_MIN and CSV exports, as label-studio-sdk's converter writes them
(`Converter.convert_to_json_min`, `converter/exports/csv2.py`): an item (a CSV row) per
task and annotation, holding the task's data (`image`: `/data/upload/1/3f2a1b9c-cat.jpg`,
...), `id` (the task's), one key per control tag (its results: a lone choice or text as
itself, regions as the list of their values with `original_width` and `original_height`;
in a CSV, every value that is not text as JSON text), and the annotation's `annotator`,
`annotation_id`, `created_at`, `updated_at`, `lead_time` (and `agreement`, `history`).

The image is the value that names an image here, found as the JSON export's is
(labelstudio_results.image_keys: an upload's name with or without the prefix Label Studio adds,
local files, cloud storage, a plain path). Per image:

- `objects`: each region (a value with x and y and a size, points, radii, a lone
  keypoint, a brush's RLE), as the JSON export's reader gives it: `from_name`, `value` (in
  percent, as exported), `original_width`, `original_height`, `category` (its first label),
  and `bbox`, `segmentation` or `keypoints` in pixels. The results of one region (its box
  and its label, in two tags) repeat its geometry, the only thing that ties them in this
  export: results with the same geometry are one object, a later tag's value under its
  name (`"ocr_label": "Text"`), as the JSON export's shared id makes them.
- every other key under its name, as exported: `"choice": "indoor"`, a data field
  (`"note": "blurry"`), a per-region transcription (this export no longer says which
  region it belongs to).
- `label_studio`: the task's `id`, the data key that names the image, and the
  annotation's fields above (those the export leaves empty are left out).

An image named by several items (a task's several annotations, or several tasks) gets
the latest (by `updated_at`, then `created_at`); the others are reported, not kept (the
JSON export keeps every annotation). An item that names no image here, or two, is
reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import Annotations, KeyIndex, folder_of
from .labelstudio_results import (
    GEOMETRY,
    first_label,
    image_keys,
    kind_of,
    objects_of,
    pretty,
    shape_of,
    unusable,
)
from .values import strict_json

# What the converter writes for every annotation (and a task without one), beside the
# task's data and the results.
ANNOTATION_KEYS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")
META = ("id", *ANNOTATION_KEYS, "agreement", "history")
SIZE = ("original_width", "original_height")
Item = dict[str, Any]


def is_label_studio_table(columns: list[str]) -> bool:
    """A CSV or TSV Label Studio exported: the converter always writes these columns."""
    return set(ANNOTATION_KEYS) <= set(columns)


def read_label_studio_items(
    rel: str, items: Iterable[tuple[str, Any]], keys: KeyIndex, result: Annotations
) -> None:
    """Read the items of a JSON_MIN export or the rows of a CSV one, each with where it
    is (`rel:LINE`, `rel: item N`)."""
    latest: dict[str, tuple[tuple[str, str], str, Item, str]] = {}
    others: list[str] = []
    for where, item in items:
        if not isinstance(item, dict):
            result.unused.append(f"{where}: a JSON {type(item).__name__}, not an item")
            continue
        item = {name: _decoded(value) for name, value in item.items()}
        found = _image(where, item, folder_of(rel), keys, result)
        if found is None:
            continue
        key, name = found
        when = (str(item.get("updated_at") or ""), str(item.get("created_at") or ""))
        if key in latest:
            kept = latest[key]
            others.append(key)
            if when < kept[0]:
                continue
        latest[key] = (when, where, item, name)
    for key, (_when, where, item, name) in latest.items():
        _apply(key, item, name, where, result)
    if others:
        result.note(
            f"{rel}: {len(others)} item(s) name an image another item names (several "
            "annotations of a task, or several tasks); the latest (updated_at) is kept, "
            f"the others are not (first: {others[0]}); the JSON export keeps every one"
        )


def _decoded(value: Any) -> Any:
    """A CSV cell the converter wrote as JSON text (a list of regions, several choices,
    a task's nested data): its value. Text that is not JSON stays text."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return strict_json(value)
        except ValueError:
            return value
    return value


def _image(
    where: str, item: Item, folder: str, keys: KeyIndex, result: Annotations
) -> tuple[str, str] | None:
    """The image an item names, and the key that names it."""
    found: dict[str, str] = {}
    for name, value in item.items():
        if name not in META and isinstance(value, str) and value:
            for key in image_keys(value, folder, keys):
                found.setdefault(key, name)
    if len(found) == 1:
        return next(iter(found.items()))
    refs = ", ".join(
        f"{k}={v}" for k, v in item.items() if k not in META and isinstance(v, str) and v
    )
    label = item.get("id")
    task = f"task {str(label)[:40]}" if isinstance(label, int | str) else "an item"
    why = (
        f"could be any of {', '.join(sorted(found)[:3])}; put the export beside its images"
        if found
        else "names no image here"
    )
    result.unused.append(f"{where}: {task}: {refs[:200] or 'no data'} ({why})")
    return None


def _apply(key: str, item: Item, image: str, where: str, result: Annotations) -> None:
    meta = {name: item[name] for name in META if item.get(name) not in (None, "")}
    fields: dict[str, Any] = {"label_studio": {**meta, image: item[image]}}
    regions: dict[str, dict[str, Any]] = {}  # by geometry
    for name, value in item.items():
        if name in META or name == image or value in (None, ""):
            continue
        values = _region_values(value)
        if values is None:
            fields[name] = value
            continue
        for region in values:
            _join(name, region, regions)
    if item.get("annotation_id") is not None or regions:
        fields["objects"] = []
    result.set(key, fields)
    for region in regions.values():
        why = unusable(region)
        if why:
            result.note(f"{where}: a region of {region['from_name']}: {why}; kept without pixels")
    if regions:
        result.set_sized(key, "objects", objects_of(list(regions.values())))


def _region_values(value: Any) -> list[dict[str, Any]] | None:
    """A tag's value as regions (each a dict whose shape gives pixels, or a brush's),
    or None where it is something else (a choice, a text, a number)."""
    values = value if isinstance(value, list) else [value]
    if values and all(isinstance(v, dict) and _is_region(v) for v in values):
        return values
    return None


def _is_region(value: dict[str, Any]) -> bool:
    """A region's value: one whose shape gives pixels, or that has a region's geometry
    whose numbers do not (kept, and reported, as the JSON export's reader does)."""
    return shape_of(value, kind_of(value)) is not None or (
        "points" in value or ("x" in value and "y" in value)
    )


def _join(name: str, value: dict[str, Any], regions: dict[str, dict[str, Any]]) -> None:
    """Add a region's result: a new object, or, where an earlier result has its
    geometry, that object's value for this tag."""
    own = {k: v for k, v in value.items() if k not in SIZE}
    geometry = {k: own[k] for k in GEOMETRY if k in own}
    at = repr(sorted((k, repr(v)) for k, v in [*geometry.items(), *_size(value).items()]))
    region = regions.get(at)
    if region is None:
        regions[at] = {"from_name": name, "value": own, **_size(value)}
        return
    region.setdefault(name, pretty([{"value": own}]))
    label = first_label(own)
    if label is not None:
        region.setdefault("category", label)


def _size(value: dict[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in SIZE if k in value}
