"""COCO and YOLO exports: the images under their keys, with their objects in the files
the tools that train on boxes read (pycocotools and torchvision's CocoDetection;
ultralytics), and every other field in `metadata.jsonl`, so ingest reads it all back.

COCO: `annotations/instances.json` (and `annotations/captions.json` where images have
captions), `file_name` the key. Image ids and annotation ids are the ones the store
keeps from a COCO file (`coco_image.id`, an object's `id`), else numbered after them;
an object without `area` or `iscrowd` gets its box's area and 0, as COCO's tools expect.

YOLO: a label file per image where ultralytics looks for it (its path with the last
`images` folder made `labels`, or beside it), normalized; `data.yaml` with `names` (class
numbers kept: `category_id`, else numbered after them) and `train`/`val`/`test` lists of
the images in each split (`kpt_shape` where objects have keypoints). A polygon is a
segment line, keypoints a pose line; an RLE mask has no YOLO form: its box is written
and the export says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..store import Record
from .files import ExportError

COCO_FIELDS = ("objects", "captions", "coco_image", "panoptic")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


def rest_of(records: Sequence[Record], taken: Iterable[str]) -> bytes | None:
    """metadata.jsonl of the fields the detection files do not carry (None if none)."""
    skip = set(taken)
    lines = []
    for record in records:
        rest = {k: v for k, v in record.metadata.items() if k not in skip}
        if rest:
            lines.append(_json({**rest, "file_name": record.key}))
    return b"".join(lines) or None


def _objects(record: Record) -> list[dict[str, Any]]:
    objects = record.metadata.get("objects")
    if objects is None:
        return []
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise ExportError(f"{record.key}: its objects are not a list of objects")
    return objects


def category_ids(records: Sequence[Record]) -> dict[str, int]:
    """Each category name's number: the `category_id` its objects carry (the first one
    met, by key), else a number after the largest."""
    ids: dict[str, int] = {}
    unnumbered: set[str] = set()
    for record in records:
        for obj in _objects(record):
            name = str(obj.get("category", ""))
            number = obj.get("category_id")
            if name in ids:
                continue
            if type(number) is int and 0 <= number < 1 << 31 and number not in ids.values():
                ids[name] = number
            else:
                unnumbered.add(name)
    following = max(ids.values(), default=-1) + 1
    for name in sorted(unnumbered - set(ids)):
        ids[name] = following
        following += 1
    return ids


# ------------------------------------------------------------------ COCO


def coco_files(records: Sequence[Record]) -> tuple[dict[str, bytes], list[str]]:
    """The files of a COCO export (path -> bytes) and notes on what it could not carry."""
    categories = category_ids(records)
    image_ids = _numbered([(r.metadata.get("coco_image") or {}).get("id") for r in records])
    images, objects, captions = [], [], []
    for record, image_id in zip(records, image_ids, strict=True):
        entry = record.metadata.get("coco_image")
        images.append(
            {
                **(entry if isinstance(entry, dict) else {}),
                "id": image_id,
                "file_name": record.key,
                "width": record.info.width,
                "height": record.info.height,
            }
        )
        for obj in _objects(record):
            ann = {k: v for k, v in obj.items() if k != "category"}
            ann["category_id"] = categories[str(obj.get("category", ""))]
            ann["image_id"] = image_id
            if "bbox" in ann and isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4:
                ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3])
            ann.setdefault("iscrowd", 0)
            objects.append(ann)
        for caption in record.metadata.get("captions") or []:
            if isinstance(caption, dict):
                captions.append({**caption, "image_id": image_id})
    _number_ids(objects)
    _number_ids(captions)
    names = [
        {"id": number, "name": name}
        for name, number in sorted(categories.items(), key=lambda c: c[1])
    ]
    files = {
        "annotations/instances.json": _json(
            {"images": images, "annotations": objects, "categories": names}
        )
    }
    if captions:
        files["annotations/captions.json"] = _json({"images": images, "annotations": captions})
    rest = rest_of(records, COCO_FIELDS)
    if rest is not None:
        files["metadata.jsonl"] = rest
    notes = [
        f"{r.key}: its panoptic segments are not exported"
        for r in records
        if "panoptic" in r.metadata
    ]
    return files, notes


def _numbered(given: list[Any]) -> list[int]:
    """Ids: each one given, where it is a number not given before; else the next free."""
    used = {g for g in given if type(g) is int}
    out, seen = [], set()
    following = max(used, default=0) + 1
    for number in given:
        if type(number) is int and number not in seen:
            seen.add(number)
            out.append(number)
        else:
            out.append(following)
            following += 1
    return out


def _number_ids(annotations: list[dict[str, Any]]) -> None:
    for ann, number in zip(annotations, _numbered([a.get("id") for a in annotations]), strict=True):
        ann["id"] = number


# ------------------------------------------------------------------ YOLO


def yolo_label_path(key: str) -> str:
    """Where ultralytics looks for an image's labels (img2label_paths)."""
    parts = key.split("/")
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    if "images" in parts[:-1]:
        at = len(parts) - 2 - parts[-2::-1].index("images")
        parts[at] = "labels"
    return "/".join([*parts[:-1], f"{stem}.txt"])


def yolo_files(records: Sequence[Record]) -> tuple[dict[str, bytes], list[str]]:
    categories = category_ids(records)
    notes: list[str] = []
    files: dict[str, bytes] = {}
    kpt: set[int] = set()
    for record in records:
        if "objects" not in record.metadata:
            continue
        lines = [_yolo_line(record, obj, categories, kpt, notes) for obj in _objects(record)]
        files[yolo_label_path(record.key)] = "".join(line + "\n" for line in lines).encode()
    if len(kpt) > 1:
        raise ExportError(f"objects have keypoints of {len(kpt)} lengths; YOLO needs one kpt_shape")
    splits: dict[str, list[str]] = {}
    for record in records:
        splits.setdefault(record.effective_split or "train", []).append(f"./{record.key}\n")
    yaml_lines = []
    for split in ("train", "val", "test"):
        if split in splits:
            files[f"{split}.txt"] = "".join(splits[split]).encode("utf-8")
            yaml_lines.append(f"{split}: {split}.txt")
    others = sorted(set(splits) - {"train", "val", "test"})
    if others:
        notes.append(f"images of the splits {', '.join(others)} are in no YOLO list")
    if kpt:
        yaml_lines.append(f"kpt_shape: [{kpt.pop()}, 3]")
    names = {number: name for name, number in categories.items()}
    yaml_lines.append("names:")
    yaml_lines += [
        f"  {n}: {json.dumps(names.get(n, str(n)))}" for n in range(max(names, default=-1) + 1)
    ]
    files["data.yaml"] = ("\n".join(yaml_lines) + "\n").encode("utf-8")
    rest = rest_of(records, ("objects", "split"))
    if rest is not None:
        files["metadata.jsonl"] = rest
    return files, notes


def _yolo_line(
    record: Record, obj: dict[str, Any], categories: dict[str, int], kpt: set[int], notes: list[str]
) -> str:
    width, height = record.info.width, record.info.height
    number = categories[str(obj.get("category", ""))]
    segmentation, keypoints = obj.get("segmentation"), obj.get("keypoints")
    if isinstance(keypoints, list) and keypoints and len(keypoints) % 3 == 0:
        kpt.add(len(keypoints) // 3)
        points = [
            (v / width if i % 3 == 0 else v / height if i % 3 == 1 else v)
            for i, v in enumerate(keypoints)
        ]
        return _cells(number, [*_center_box(obj, width, height), *points])
    if isinstance(segmentation, list) and segmentation and isinstance(segmentation[0], list):
        if len(segmentation) > 1:
            notes.append(
                f"{record.key}: an object of {len(segmentation)} polygons: the first is written"
            )
        polygon = segmentation[0]
        return _cells(
            number, [v / (width if i % 2 == 0 else height) for i, v in enumerate(polygon)]
        )
    if segmentation:
        notes.append(f"{record.key}: an RLE mask has no YOLO form: its box is written")
    return _cells(number, _center_box(obj, width, height))


def _center_box(obj: dict[str, Any], width: int, height: int) -> list[float]:
    bbox = obj.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise ExportError(f"an object without a bbox: {json.dumps(obj)[:80]}")
    x, y, w, h = bbox
    return [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]


def _cells(number: int, values: list[float]) -> str:
    return " ".join([str(number), *(repr(float(v)) for v in values)])
