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
integer, anything past NUMBER_LIMIT: labelstudio_results.py): it is kept as exported,
without `bbox` and the rest, beside the task's other regions.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .base import Annotations, KeyIndex, folder_of
from .labelstudio_results import (
    Region,
    first_label,
    image_keys,
    objects_of,
    pretty,
    shape_of,
    unusable,
)

REGION_TYPES = frozenset(
    f"{shape}{labels}"
    for shape in ("rectangle", "polygon", "ellipse", "keypoint", "brush")
    for labels in ("", "labels")
)


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
