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
and the export says so. ultralytics finds an image's labels by its name without the
extension, so two images that share it in one folder are refused (renaming one would
change its key, and ingest would read it back under another); a key the one-a-line
lists cannot hold is left out of them, with a note.

Both: every object's geometry is checked first (objects.py, imageshelf.records.geometry); one
that fails is left out, and a note names its key, its place and why.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..store import Record
from .objects import Shaped, left_out, scale, shaped_objects
from .targets import ExportError
from .text import json_bytes, line_problem, shown, yaml_quoted

COCO_FIELDS = ("objects", "captions", "coco_image", "panoptic", "coco_categories")
# ultralytics counts classes up to the largest number in data.yaml's names: past this,
# the names are numbered from 0 again rather than written as a million fillers.
MAX_CLASS_NUMBER = 100_000

Kept = dict[str, list[Shaped]]  # key -> its objects whose geometry holds


def _json(value: Any) -> bytes:
    return json_bytes(value) + b"\n"


def rest_of(records: Sequence[Record], taken: Iterable[str]) -> bytes | None:
    """metadata.jsonl of the fields the detection files do not carry (None if none)."""
    skip = set(taken)
    lines = []
    for record in records:
        rest = {k: v for k, v in record.metadata.items() if k not in skip}
        if rest:
            lines.append(_json({**rest, "file_name": record.key}))
    return b"".join(lines) or None


def kept_objects(records: Sequence[Record], notes: list[str]) -> Kept:
    return {record.key: shaped_objects(record, notes) for record in records}


def category_ids(kept: Kept) -> dict[str, int]:
    """Each category name's number: the `category_id` its objects carry (the first one
    met, by key), else a number after the largest."""
    ids: dict[str, int] = {}
    unnumbered: set[str] = set()
    for objects in kept.values():
        for shaped in objects:
            name = str(shaped.fields.get("category", ""))
            number = shaped.fields.get("category_id")
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


def _category_fields(records: Sequence[Record]) -> dict[int, dict[str, Any]]:
    """The categories' other fields (supercategory, keypoint names, skeleton) the COCO
    reader kept with the images (`coco_categories`), by category id."""
    fields: dict[int, dict[str, Any]] = {}
    for record in records:
        kept = record.metadata.get("coco_categories")
        if not isinstance(kept, dict):
            continue
        for number, values in kept.items():
            if isinstance(values, dict) and number.isdigit() and len(number) < 10:
                fields.setdefault(int(number), {}).update(values)
    return fields


def coco_files(records: Sequence[Record]) -> tuple[dict[str, bytes], list[str]]:
    """The files of a COCO export (path -> bytes) and notes on what it could not carry."""
    notes: list[str] = []
    kept = kept_objects(records, notes)
    categories = category_ids(kept)
    image_ids = _numbered([_coco_image(r).get("id") for r in records])
    images, objects, captions = [], [], []
    for record, image_id in zip(records, image_ids, strict=True):
        images.append(
            {
                **_coco_image(record),
                "id": image_id,
                "file_name": record.key,
                "width": record.info.width,
                "height": record.info.height,
            }
        )
        for shaped in kept[record.key]:
            obj = shaped.fields
            ann = {k: v for k, v in obj.items() if k != "category"}
            ann["category_id"] = categories[str(obj.get("category", ""))]
            ann["image_id"] = image_id
            if shaped.geometry.bbox is not None:  # checked: numbers, so a number
                ann.setdefault("area", obj["bbox"][2] * obj["bbox"][3])
            ann.setdefault("iscrowd", 0)
            objects.append(ann)
        given = record.metadata.get("captions")
        for caption in given if isinstance(given, list) else []:
            if isinstance(caption, dict):
                captions.append({**caption, "image_id": image_id})
    _number_ids(objects)
    _number_ids(captions)
    extra = _category_fields(records)
    names = [
        {**extra.get(number, {}), "id": number, "name": name}
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
    notes += [
        f"{shown(r.key)}: its panoptic segments are not exported"
        for r in records
        if "panoptic" in r.metadata
    ]
    return files, notes


def _coco_image(record: Record) -> dict[str, Any]:
    entry = record.metadata.get("coco_image")
    return entry if isinstance(entry, dict) else {}


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


def yolo_files(
    records: Sequence[Record], case_insensitive: bool = False
) -> tuple[dict[str, bytes], list[str]]:
    """The files of a YOLO export (path -> bytes) and notes on what it could not carry.
    Refused (ExportError) if two images would share one label file: ultralytics pairs
    `images/x.jpg` with `labels/x.txt` by the stem alone, so `x.png` beside it would be
    read with the same boxes; which image's boxes are right is not ours to choose."""
    claimed = _label_paths(records, case_insensitive)
    notes: list[str] = []
    kept = kept_objects(records, notes)
    categories = _class_numbers(category_ids(kept), notes)
    files: dict[str, bytes] = {}
    kpt: set[int] = set()
    for record in records:
        if "objects" not in record.metadata:
            continue
        objects = kept[record.key]
        size = scale(record, objects, notes)
        lines = [] if size is None else _yolo_lines(record, objects, size, categories, kpt, notes)
        files[yolo_label_path(record.key)] = "".join(line + "\n" for line in lines).encode()
    if len(kpt) > 1:
        raise ExportError(f"objects have keypoints of {len(kpt)} lengths; YOLO needs one kpt_shape")
    yaml_lines = _split_lists(records, files, notes)
    for name in ("train.txt", "val.txt", "test.txt"):
        key = claimed.get(name)
        if name in files and key is not None:
            raise ExportError(
                f"{key!r} would take its YOLO labels from {name}, the export's list of "
                "images: rename it, leave it out (KEYS or --where), or use --as coco"
            )
    if kpt:
        yaml_lines.append(f"kpt_shape: [{kpt.pop()}, 3]")
    names = {number: name for name, number in categories.items()}
    yaml_lines.append("names:")
    yaml_lines += [
        f"  {n}: {yaml_quoted(names.get(n, str(n)))}" for n in range(max(names, default=-1) + 1)
    ]
    files["data.yaml"] = ("\n".join(yaml_lines) + "\n").encode("utf-8")
    rest = rest_of(records, ("objects", "split"))
    if rest is not None:
        files["metadata.jsonl"] = rest
    return files, notes


def labels_outside(out_dir: Path, records: Sequence[Record]) -> list[str]:
    """A note if ultralytics would look for some labels outside the export: it makes
    the last `images` folder of an image's absolute path `labels`, so with --out inside
    an `images` folder, a key under no `images` folder of its own has its labels looked
    for in a sibling of that folder, not beside the image where they are written."""
    if "images" not in Path(os.path.realpath(out_dir)).parts:
        return []
    loose = [r.key for r in records if "images" not in r.key.split("/")[:-1]]
    if not loose:
        return []
    return [
        f"{len(loose)} image(s) ({shown(loose[0])}, ...) lie under no images/ folder of their "
        f"own while {out_dir} is inside one: ultralytics would look for their labels outside "
        "the export; export to a folder outside any images/ folder"
    ]


def _label_paths(records: Sequence[Record], case_insensitive: bool) -> dict[str, str]:
    """Each label path (folded, on a disk that folds case) and the key that claims it.
    Every image claims its own, with objects or without: an image without one is read
    as having no objects, unless another image's file is there."""
    claimed: dict[str, str] = {}
    for record in records:
        path = yolo_label_path(record.key)
        name = unicodedata.normalize("NFC", path).casefold() if case_insensitive else path
        other = claimed.setdefault(name, record.key)
        if other != record.key:
            raise ExportError(
                f"{other!r} and {record.key!r} would share the YOLO label file "
                f"{path!r} (ultralytics pairs labels with images by name, without the "
                "extension): rename one, leave one out (KEYS or --where), or use --as coco"
            )
    return claimed


def _class_numbers(categories: dict[str, int], notes: list[str]) -> dict[str, int]:
    """The class numbers data.yaml lists, every one up to the largest (ultralytics
    takes that many classes): the store's, unless they run past MAX_CLASS_NUMBER."""
    largest = max(categories.values(), default=-1)
    if largest < MAX_CLASS_NUMBER:
        return categories
    notes.append(
        f"class numbers are numbered from 0 again: the largest, {largest}, would make "
        f"data.yaml list {largest + 1:,} names"
    )
    ordered = sorted(categories, key=lambda name: categories[name])
    return {name: number for number, name in enumerate(ordered)}


def _split_lists(records: Sequence[Record], files: dict[str, bytes], notes: list[str]) -> list[str]:
    """train.txt, val.txt and test.txt (one `./KEY` a line) into `files`; data.yaml's
    lines naming them. A key that cannot be one line of such a list is left out of it,
    with a note: the image and its labels are still written."""
    splits: dict[str, list[str]] = {}
    for record in records:
        problem = line_problem(record.key)
        if problem is None and "./" in record.key:  # ultralytics replaces each "./" in a line
            problem = "holds './', which ultralytics replaces with the list's folder"
        if problem is not None:
            notes.append(f"{shown(record.key)}: in no YOLO split list: its key {problem}")
            continue
        splits.setdefault(record.effective_split or "train", []).append(f"./{record.key}\n")
    yaml_lines = []
    for split in ("train", "val", "test"):
        if split in splits:
            files[f"{split}.txt"] = "".join(splits[split]).encode("utf-8")
            yaml_lines.append(f"{split}: {split}.txt")
    others = sorted(set(splits) - {"train", "val", "test"})
    if others:
        notes.append(f"images of the splits {', '.join(map(shown, others))} are in no YOLO list")
    return yaml_lines


def _yolo_lines(
    record: Record,
    objects: list[Shaped],
    size: tuple[int, int],
    categories: dict[str, int],
    kpt: set[int],
    notes: list[str],
) -> list[str]:
    lines = []
    for shaped in objects:
        line = _yolo_line(
            record, shaped, size, categories[str(shaped.fields.get("category", ""))], kpt, notes
        )
        if line is not None:
            lines.append(line)
    return lines


def _yolo_line(
    record: Record,
    shaped: Shaped,
    size: tuple[int, int],
    number: int,
    kpt: set[int],
    notes: list[str],
) -> str | None:
    """One object's line: a pose, a segment or a box; None (noted) if it has none."""
    width, height = size
    geometry = shaped.geometry
    box = geometry.bbox
    if geometry.keypoints:
        if box is None:
            left_out(notes, record, shaped.number, "a YOLO pose line needs its bbox")
            return None
        kpt.add(len(geometry.keypoints))
        points = [v for x, y, vis in geometry.keypoints for v in (x / width, y / height, vis)]
        return _cells(number, [*_center_box(box, size), *points])
    if geometry.polygons:
        if len(geometry.polygons) > 1:
            notes.append(
                f"{shown(record.key)}: an object of {len(geometry.polygons)} polygons: "
                "the first is written"
            )
        polygon = geometry.polygons[0]
        return _cells(
            number, [v / (width if i % 2 == 0 else height) for i, v in enumerate(polygon)]
        )
    if box is None:
        left_out(notes, record, shaped.number, "it has no bbox, polygon or keypoints for YOLO")
        return None
    if geometry.mask:
        notes.append(f"{shown(record.key)}: an RLE mask has no YOLO form: its box is written")
    return _cells(number, _center_box(box, size))


def _center_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> list[float]:
    (x, y, w, h), (width, height) = box, size
    return [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]


def _cells(number: int, values: list[float]) -> str:
    return " ".join([str(number), *(repr(float(v)) for v in values)])
