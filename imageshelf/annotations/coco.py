"""COCO: instances, person keypoints, captions and panoptic files, as pycocotools (and
torchvision's CocoDetection, which returns its annotations) reads them.

The COCO files of one folder are read together (`annotations/instances_val2017.json`
beside `person_keypoints_val2017.json` and `captions_val2017.json`). Per image:

- `objects`: each instance or keypoints annotation with every field it has but
  `image_id` (`id`, `bbox` as [x, y, width, height] in pixels, `category_id`, `area`,
  `iscrowd`, `segmentation` as polygons or RLE, `keypoints`, `num_keypoints`, ...), plus
  `category`, its category's name. Annotations with one id in two files (the instances
  and keypoints files list the same persons) are one object, their fields combined.
- `captions`: each caption annotation, `{"caption": ..., "id": ...}`.
- `panoptic`: the image's panoptic annotation (`file_name` of its PNG of segment ids,
  `segments_info`, each segment with its `category` name). The PNG itself, in the
  folder named as the file (`annotations/panoptic_val2017/` beside
  `panoptic_val2017.json`, as panopticapi finds it), is the image's paired image
  `panoptic` (paired.py): stored with it, never an image of its own.
- `coco_image`: the image's entry but `file_name` (`id`, `width`, `height`, `license`,
  `coco_url`, ...).
- `coco_categories`: for the categories its objects name that have fields besides `id`
  and `name` (`supercategory`, person keypoints' `keypoints` names and `skeleton`), those
  fields, by category id as text: what `--as coco` writes back into `categories`.

A file's other top-level fields (`info`, `licenses`) describe the dataset, not an
image: the report's notes say they were not stored. Annotations of an image id the file does not
list, and image ids given to two files, are reported too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, name_of

IMAGE_FIELDS = ("images", "annotations", "categories")
KINDS = {"object": "objects", "caption": "captions"}


def is_coco(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("images"), list)
        and isinstance(obj.get("annotations"), list)
    )


@dataclass
class _Image:
    """What the COCO files of a folder say about one image."""

    sources: set[str] = field(default_factory=set)
    entry: dict[str, Any] = field(default_factory=dict)
    objects: dict[Any, dict[str, Any]] = field(default_factory=dict)  # by annotation id
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> extra fields
    captions: dict[Any, dict[str, Any]] = field(default_factory=dict)
    panoptic: dict[str, Any] | None = None
    kinds: set[str] = field(default_factory=set)  # the fields its files give

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"coco_image": self.entry}
        if "objects" in self.kinds:
            out["objects"] = list(self.objects.values())
        if "captions" in self.kinds:
            out["captions"] = list(self.captions.values())
        if self.panoptic is not None:
            out["panoptic"] = self.panoptic
        if self.categories:
            out["coco_categories"] = dict(sorted(self.categories.items()))
        return out


def read_coco(
    docs: Iterable[tuple[str, dict[str, Any]]], keys: KeyIndex, result: Annotations
) -> None:
    """Read the COCO documents of one folder together, then set each image's fields."""
    images: dict[str, _Image] = defaultdict(_Image)
    for rel, obj in docs:
        try:
            _read_one(rel, obj, keys, images, result)
        except (KeyError, TypeError, AttributeError) as exc:
            raise AnnotationError(f"{rel}: not valid COCO ({type(exc).__name__}: {exc})") from None
    for key in sorted(images):
        image = images[key]
        result.set(key, image.fields(), sources=sorted(image.sources))


def _read_one(
    rel: str, obj: dict[str, Any], keys: KeyIndex, images: dict[str, _Image], result: Annotations
) -> None:
    names, extra = _categories(obj)
    dataset = sorted(k for k in obj if k not in IMAGE_FIELDS)
    if dataset:
        result.note(f"{rel}: {', '.join(dataset)}: the dataset's, not an image's; not stored")
    listed, by_id = _images(rel, obj["images"], keys, images, result)
    kinds = {_kind(ann) for ann in obj["annotations"]} or {"object"}
    for targets in by_id.values():
        for key in targets:
            images[key].kinds.update(KINDS[k] for k in kinds if k in KINDS)
    orphans = []
    for number, ann in enumerate(obj["annotations"]):
        image_id = ann["image_id"]
        if image_id not in listed:
            orphans.append(ann.get("id", f"#{number}"))
            continue
        for key in by_id.get(image_id, ()):
            _add(rel, number, ann, names, images[key], result)
            _keep_category(ann, extra, images[key])
            if _kind(ann) == "panoptic":
                _pair_panoptic(rel, ann, key, keys, result)
    if orphans:
        result.unused.append(
            f"{rel}: {len(orphans)} annotation(s) of an image id the file does not list "
            f"(first: annotation {orphans[0]})"
        )


def _categories(obj: dict[str, Any]) -> tuple[dict[Any, str], dict[Any, dict[str, Any]]]:
    """Each category id's name, and its other fields where it has any."""
    names, extra = {}, {}
    for category in obj.get("categories") or []:
        names[category["id"]] = str(category["name"])
        fields = {k: v for k, v in category.items() if k not in ("id", "name")}
        if fields:
            extra[category["id"]] = fields
    return names, extra


def _keep_category(ann: dict[str, Any], extra: dict[Any, dict[str, Any]], image: _Image) -> None:
    """The other fields of the category an object names, kept with its image."""
    fields = extra.get(ann.get("category_id")) if isinstance(ann, dict) else None
    if fields is not None:
        image.categories.setdefault(str(ann["category_id"]), {}).update(fields)


def _images(
    rel: str, entries: list[Any], keys: KeyIndex, images: dict[str, _Image], result: Annotations
) -> tuple[set[Any], dict[Any, list[str]]]:
    """The image ids the file lists, and the keys each names."""
    folder = folder_of(rel)
    root = folder_of(folder) if name_of(folder) == "annotations" else folder
    listed: set[Any] = set()
    by_id: dict[Any, list[str]] = defaultdict(list)
    for entry in entries:
        image_id, file_name = entry["id"], entry["file_name"]
        if not isinstance(file_name, str):
            raise TypeError(f"file_name {file_name!r} is not text")
        listed.add(image_id)
        key = _image_key(folder, root, rel, file_name, keys)
        if key is None:
            result.unused.append(f"{rel}: {file_name} (no such image)")
            continue
        by_id[image_id].append(key)
        image = images[key]
        image.sources.add(rel)
        image.entry.update((k, v) for k, v in entry.items() if k != "file_name")
    for image_id, named in by_id.items():
        if len(named) > 1:
            result.note(
                f"{rel}: image id {image_id} names {len(named)} files ({', '.join(named[:3])}): "
                "each gets its annotations"
            )
    return listed, by_id


def _kind(ann: Any) -> str:
    if not isinstance(ann, dict):
        raise TypeError("an annotation is not an object")
    if "caption" in ann:
        return "caption"
    if "segments_info" in ann:
        return "panoptic"
    return "object"


def _add(
    rel: str,
    number: int,
    ann: dict[str, Any],
    names: dict[Any, str],
    image: _Image,
    result: Annotations,
) -> None:
    kind = _kind(ann)
    value = {k: v for k, v in ann.items() if k != "image_id"}
    if kind == "caption":
        image.captions[ann.get("id", (rel, number))] = value
    elif kind == "panoptic":
        value["segments_info"] = [_named(seg, names) for seg in ann["segments_info"]]
        image.panoptic = value
    else:
        _check_bbox(rel, ann)
        merged = image.objects.setdefault(ann.get("id", (rel, number)), {})
        merged.update(_named(value, names))


def _pair_panoptic(
    rel: str, ann: dict[str, Any], key: str, keys: KeyIndex, result: Annotations
) -> None:
    """The panoptic PNG of an image: in the folder named as the JSON file, by its
    annotation's file_name (panopticapi's rule)."""
    file_name = ann.get("file_name")
    if not isinstance(file_name, str):
        return
    png = join(rel.rsplit(".", 1)[0], file_name)
    if png in keys.keys:
        result.reading = rel
        result.pair(key, "panoptic", png)
    else:
        result.unused.append(f"{rel}: {png} (the panoptic PNG of {key}: no such image)")


def _named(value: dict[str, Any], names: dict[Any, str]) -> dict[str, Any]:
    if "category_id" in value:
        category_id = value["category_id"]
        return {**value, "category": names.get(category_id, str(category_id))}
    return dict(value)


def _check_bbox(rel: str, ann: dict[str, Any]) -> None:
    bbox = ann.get("bbox")
    if bbox is None:
        return
    if not (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    ):
        raise AnnotationError(
            f"{rel}: annotation {ann.get('id')}: bbox is not [x, y, width, height]"
        )


def _image_key(folder: str, root: str, rel: str, file_name: str, keys: KeyIndex) -> str | None:
    """The key of the image a COCO file_name names: beside the file, or anywhere under
    the dataset's folder (the one holding `annotations/`) by the end of its path."""
    direct = join(folder, file_name)
    if direct in keys.keys:
        return direct
    found = keys.by_tail(root, file_name.replace("\\", "/").lstrip("./"))
    if len(found) > 1:
        # instances_train2017.json (and person_keypoints_train2017.json) name files of
        # train2017/
        stem = name_of(rel).rsplit(".", 1)[0]
        split = stem.rsplit("_", 1)[1] if "_" in stem else ""
        narrowed = [k for k in found if f"/{split}/" in f"/{k}"] if split else []
        if len(narrowed) == 1:
            return narrowed[0]
        raise AnnotationError(
            f"{rel}: {file_name} could be any of {', '.join(found[:3])}; "
            "put the JSON beside its images"
        )
    return found[0] if found else None
