"""FiftyOne's image detection and classification datasets, as FiftyOne's importers read
them (`fiftyone.utils.data.importers`: `FiftyOneImageDetectionDatasetImporter`,
`FiftyOneImageClassificationDatasetImporter`, and the sample parsers they use).

Both are a folder with `data/` (the images) and `labels.json`: `{"classes": [...] or
null, "labels": {UUID: target}}`, where UUID is an image's path under `data/` without
its suffix. A target is null (no label), or:

- detection: a list of `{"label", "bounding_box": [x, y, w, h] relative to the image,
  "confidence", "attributes"}`. Each becomes an entry of `objects`: `bbox` in pixels,
  `category` (the label, or `classes[label]` for a class number, kept as `category_id`),
  and its other fields as given (`confidence`, `attributes`, ...; null and empty ones
  left out).
- classification: a label or a class number (`label`), a `{"label", "confidence",
  "attributes"}` (`label`, and `confidence`, `attributes` as given), or a list of
  either (multi-label: `classifications`, each `{"label", ...}`).

`classes` describes the dataset, not an image: the report says it was not stored.
"""

from __future__ import annotations

from typing import Any

from .base import Annotations, KeyIndex, folder_of, join, rounded


def is_fiftyone(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("labels"), dict)
        and set(obj) <= {"classes", "labels"}
        and (obj.get("classes") is None or isinstance(obj["classes"], list))
    )


def read_fiftyone(rel: str, obj: dict[str, Any], keys: KeyIndex, result: Annotations) -> None:
    classes = obj.get("classes") or []
    labels: dict[str, Any] = obj["labels"]
    detection = any(_is_detections(target) for target in labels.values())
    data = join(folder_of(rel), "data")
    missing = []
    for uuid, target in labels.items():
        key = _image(data, uuid, keys)
        if key is None:
            missing.append(uuid)
            continue
        if target is None:
            continue  # unlabeled: FiftyOne gives the sample no label
        if detection:
            _detections(rel, key, target, classes, result)
        else:
            result.set(key, _classification(target, classes))
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} label(s) of no image under data/ (first: {missing[0]})"
        )
    if classes:
        result.note(f"{rel}: classes: the dataset's, not an image's; not stored")


def _is_detections(target: Any) -> bool:
    return isinstance(target, list) and any(
        isinstance(item, dict) and "bounding_box" in item for item in target
    )


def _image(data: str, uuid: str, keys: KeyIndex) -> str | None:
    """The image a UUID names: its path under data/ without the suffix."""
    if not isinstance(uuid, str) or uuid.startswith("/") or "\\" in uuid:
        return None
    folder, _, stem = join(data, uuid).rpartition("/")
    return keys.one_by_stem(folder, stem)


def _name(label: Any, classes: list[Any]) -> str:
    """FiftyOne's `classes[label]`, or `str(label)` where that fails."""
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(classes):
        return str(classes[label])
    return str(label)


def _detections(rel: str, key: str, target: Any, classes: list[Any], result: Annotations) -> None:
    if not isinstance(target, list) or not all(_is_detection(item) for item in target):
        result.broken[key] = (
            f"{rel}: the labels of this image are not a list of detections, each a label and "
            "a bounding_box [x, y, width, height] in 0..1"
        )
        return

    def objects(width: int, height: int) -> list[dict[str, Any]]:
        return [_object(item, classes, width, height) for item in target]

    result.set_sized(key, "objects", objects)


def _is_detection(item: Any) -> bool:
    box = item.get("bounding_box") if isinstance(item, dict) else None
    return (
        isinstance(box, list)
        and "label" in item
        and len(box) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    )


def _object(item: dict[str, Any], classes: list[Any], width: int, height: int) -> dict[str, Any]:
    x, y, w, h = item["bounding_box"]
    label = item["label"]
    out: dict[str, Any] = {
        "bbox": [rounded(x * width), rounded(y * height), rounded(w * width), rounded(h * height)],
        "category": _name(label, classes),
    }
    if isinstance(label, int) and not isinstance(label, bool):
        out["category_id"] = label
    out.update(_given(item, ("label", "bounding_box")))
    return out


def _given(item: dict[str, Any], taken: tuple[str, ...]) -> dict[str, Any]:
    """A label's other fields, as given, but null and empty ones (the exporter writes
    `confidence: null`, `attributes: {}` for labels without them)."""
    return {k: v for k, v in item.items() if k not in taken and v not in (None, {})}


def _classification(target: Any, classes: list[Any]) -> dict[str, Any]:
    if isinstance(target, list):
        return {"classifications": [_one(item, classes) for item in target]}
    return _one(target, classes)


def _one(target: Any, classes: list[Any]) -> dict[str, Any]:
    if not isinstance(target, dict):
        return {"label": _name(target, classes)}
    return {"label": _name(target.get("label"), classes), **_given(target, ("label",))}
