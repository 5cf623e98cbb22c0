"""Annotations in the formats datasets ship in, read into metadata fields per image key.

The same reader serves both places annotations live: `data/incoming/`, where they arrive
with their images, and `data/annotations/`, tracked by git, where they are kept and
corrected. An annotation file at `FOLDER/file` speaks of the images under `FOLDER/`
(paths inside it are relative to FOLDER), in either place, so a dataset's files can be
moved from one to the other as they are.

Formats, recognised by name and content:

- tables: `*.csv`, `*.tsv` (any separator of `,` `;` tab, a UTF-8 BOM, header names in any
  case) and `*.jsonl`, one row per image, naming it in a column `file_name` (Hugging Face
  imagefolder), `path`, `file`, `filename`, `image`, `image_path` or `key`;
- sidecars: `NAME.json` or `NAME.EXT.json` beside the image, one JSON object;
- COCO: a `.json` object with `images`, `annotations` and `categories`: boxes and category
  names per image;
- YOLO: `labels/**.txt` beside `images/**` (`class cx cy w h` per line, normalized), class
  names from the nearest `data.yaml` (`names`) above them;
- Pascal VOC: `.xml` files with an `<annotation>` root (`<filename>`, `<object>`s).

Boxes from COCO, YOLO and VOC all become `objects: [{"bbox": [x, y, width, height],
"category": NAME}, ...]` in pixels, COCO's convention. A table cell is typed by one rule
(`typed`). Within a place, outer folders are read before inner ones and, in a folder,
tables, then COCO, VOC and YOLO, then sidecars: a later source wins field by field.
A file that does not parse is an AnnotationError naming it (losing labels is worse than
stopping), except a sidecar, whose one image is rejected with the reason instead.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ShelfError

PATH_COLUMNS = ("file_name", "path", "file", "filename", "image", "image_path", "key")
# Fields the project gives a meaning to (stats, splits, the dataset's classes): a column
# named so in any case (Excel's "Label") is that field.
KNOWN_FIELDS = ("label", "split", "text")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


class AnnotationError(ShelfError):
    """An annotation file that cannot be read; the message names it (and the line)."""


# ------------------------------------------------------------------ the images spoken of


class KeyIndex:
    """The image keys annotations may speak of, looked up the ways the formats name
    images: by exact path, by folder and stem (sidecars, YOLO), by a path's tail
    (COCO's file_name)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = set(keys)
        self._stems: dict[str, list[str]] | None = None
        self._names: dict[str, list[str]] | None = None

    def by_stem(self, folder: str, stem: str) -> list[str]:
        """The keys in `folder` whose name is `stem` plus a suffix (or `stem` itself)."""
        stems = self._stems
        if stems is None:  # built on first use: only sidecars and YOLO need it
            stems = self._stems = defaultdict(list)
            for key in self.keys:  # "folder/stem" -> keys; the order within is not used
                dot = key.rfind(".")
                stems[key[:dot] if dot > key.rfind("/") else key].append(key)
        if "/" in stem:
            return []  # a stem is a name's, never a path's
        return stems.get(f"{folder}/{stem}" if folder else stem, [])

    def by_tail(self, root: str, tail: str) -> list[str]:
        """Keys under `root` (a folder, "" for all) that end in the path `tail`."""
        names = self._names
        if names is None:  # built on first use: only COCO needs it
            grouped: dict[str, list[str]] = defaultdict(list)
            for key in sorted(self.keys):
                grouped[key.rpartition("/")[2]].append(key)
            names = self._names = grouped
        prefix = f"{root}/" if root else ""
        return [
            k
            for k in names.get(tail.rpartition("/")[2], [])
            if k.startswith(prefix) and (k == prefix + tail or k.endswith("/" + tail))
        ]


# ------------------------------------------------------------------ typed values

_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][+-]?[0-9]+)?")


def typed(text: str) -> Any:
    """A table cell as a value: surrounding spaces dropped; `true`/`false` (any case) a
    boolean; a whole number without leading zeros (`-3`, `42`, not `007`) an integer; a
    decimal (`0.25`, `1e-3`) a float; a cell starting with `[` or `{` that is valid JSON
    that value; anything else text."""
    value = text.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    if value[:1] in ("[", "{"):
        try:
            return strict_json(value)
        except ValueError:
            pass
    return value


def strict_json(text: str | bytes) -> Any:
    """JSON as the store can hold it: no NaN or Infinity; numbers that overflow, nesting
    too deep for Python and lone surrogates are ValueErrors, like any other bad JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    _check_json_value(value)
    return value


def _check_json_value(value: Any, depth: int = 0) -> None:
    if depth > 100:
        raise ValueError("nested more than 100 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number too large to store")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string with a lone surrogate (not valid Unicode)") from None
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_json_value(name, depth + 1)
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


# ------------------------------------------------------------------ what a place holds


class IgnoreRules:
    """Ignore patterns: one without `/` matches any file or folder name on the path; one
    with `/` the whole path from the top of the place. Compiled once."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = [p for p in patterns if "/" not in p.strip("/")]
        paths = [p.strip("/") for p in patterns if "/" in p.strip("/")]
        self._name = re.compile("|".join(fnmatch.translate(p) for p in names)) if names else None
        self._path = re.compile("|".join(fnmatch.translate(p) for p in paths)) if paths else None

    @property
    def has_paths(self) -> bool:
        return self._path is not None

    def name(self, name: str) -> bool:
        """Whether a file or folder of this name is ignored wherever it is."""
        return self._name is not None and self._name.match(name) is not None

    def path(self, rel: str) -> bool:
        return self._path is not None and self._path.match(rel) is not None

    def __call__(self, rel: str) -> bool:
        return self.path(rel) or any(self.name(part) for part in rel.split("/"))


def is_ignored(rel: str, patterns: Iterable[str]) -> bool:
    """Whether `rel` matches one of the ignore `patterns` (see IgnoreRules)."""
    return IgnoreRules(patterns)(rel)


def annotation_kind(rel: str) -> str | None:
    """What an annotation file is, by its name and place: "table", "json" (a sidecar or
    COCO, decided by content), "yolo", "yaml" (YOLO's class names), "voc"; None for a
    file that is not an annotation file (an image, or something to reject)."""
    dot = rel.rfind(".")
    kind = _KINDS.get(rel[dot:].lower()) if dot > rel.rfind("/") else None
    if kind == "yolo" and "labels" not in rel.split("/")[:-1]:
        return None  # a .txt elsewhere: ingest decides from its content
    return kind


_KINDS = {
    ".csv": "table",
    ".tsv": "table",
    ".jsonl": "table",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".xml": "voc",
    ".txt": "yolo",
}
ANNOTATION_SUFFIXES = frozenset(_KINDS)  # a name without one of these is not annotations


Deferred = Callable[[int, int], Any]  # a value that needs the image's width and height


@dataclass
class Annotations:
    """What the annotation files of one place say, per image key."""

    fields: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    sized: dict[str, dict[str, Deferred]] = field(default_factory=lambda: defaultdict(dict))
    broken: dict[str, str] = field(default_factory=dict)  # key -> why its sidecar failed
    unused: list[str] = field(default_factory=list)  # rows and files that matched no image
    files: list[str] = field(default_factory=list)  # every annotation file read
    # file -> the keys it set something for (which records a change to it can touch)
    keys_by_file: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _reading: str = ""  # the file being read
    root: Path = Path(".")  # the place the files are in (read_place)

    def __contains__(self, key: str) -> bool:
        return key in self.fields or key in self.sized

    def keys(self) -> set[str]:
        return set(self.fields) | set(self.sized)

    def for_image(self, key: str, width: int, height: int) -> dict[str, Any]:
        """The fields for one image, values that need its size computed."""
        fields, sized = self.fields.get(key), self.sized.get(key)
        values = dict(fields) if fields else {}
        if sized:
            for name, compute in sized.items():
                values[name] = compute(width, height)
        return values

    def _set(self, key: str, values: dict[str, Any]) -> None:
        self.keys_by_file[self._reading].add(key)
        self.fields[key].update(values)
        for name in values:
            self.sized.get(key, {}).pop(name, None)

    def _set_sized(self, key: str, name: str, compute: Deferred) -> None:
        self.keys_by_file[self._reading].add(key)
        self.fields.get(key, {}).pop(name, None)
        self.sized[key][name] = compute


Reader = Callable[[str], bytes]  # relative path -> the file's bytes


def own_files(files: Iterable[str], keys: KeyIndex, images: Collection[str]) -> set[str]:
    """Those of the annotation `files` that speak of one image only, one of `images`: a
    YOLO label file or a sidecar. (Tables, COCO and VOC files may speak of any image.)"""
    own = set()
    for rel in files:
        kind = annotation_kind(rel)
        if kind == "yolo":
            image = _yolo_image(rel, keys)
        elif kind == "json":
            image = _sidecar_image(rel, keys)
        else:
            continue
        if image is not None and image in images:
            own.add(rel)
    return own


def read_annotations(
    files: Iterable[str],
    read: Reader,
    keys: KeyIndex,
    max_bytes: int = 1 << 20,
    unread: Collection[str] = (),
) -> Annotations:
    """Read the annotation files `files` (paths relative to their place) of a place whose
    images are `keys`. `read(rel)` gives a file's bytes; `max_bytes` bounds a sidecar
    (a whole dataset's table may be larger). Files in `unread` (own_files of images
    already stored as they are, with every annotation file unchanged since: ingest
    knows) are listed as used and not read: what they say is in the store already."""
    result = Annotations()
    files = list(files)
    kinds = {f: annotation_kind(f) for f in files}
    yaml_files = [f for f in files if kinds[f] == "yaml"]
    order = {"table": 0, "json": 1, "voc": 2, "yolo": 3}
    readable = [f for f in files if kinds[f] in order]
    sidecars: list[str] = []
    names_cache: dict[str, dict[int, str]] = {}
    named: set[tuple[str, ...]] = set()  # label folders whose class names were looked up
    for rel in sorted(readable, key=lambda f: (f.count("/"), order[kinds[f] or ""], f)):
        kind = kinds[rel]
        folder = rel.rpartition("/")[0]
        if rel in unread:
            result.files.append(rel)
            if kind == "yolo":  # its class names are still in use
                parts = rel.split("/")
                above = tuple(parts[: _labels_at(parts)])
                if above not in named:
                    named.add(above)
                    _yolo_names(list(above), yaml_files, read, names_cache)
            continue
        if kind == "json" and _sidecar_image(rel, keys) is not None:
            sidecars.append(rel)  # applied last: the image's own file wins
            continue
        result.files.append(rel)
        result._reading = rel
        data = _bounded(read, rel, None)
        if kind == "table":
            for number, path, values in _table_rows(rel, data):
                key = _join(folder, path)
                if key in keys.keys:
                    result._set(key, values)
                else:
                    result.unused.append(f"{rel}:{number}: {path} (no such image)")
        elif kind == "json":
            _read_json(rel, data, keys, result)
        elif kind == "voc":
            _read_voc(rel, data, keys, result)
        elif kind == "yolo":
            _read_yolo(rel, data, keys, result, yaml_files, read, names_cache)
    for rel in yaml_files:
        if names_cache.get(rel):
            result.files.append(rel)
        else:
            result.unused.append(f"{rel}: no YOLO labels use its class names")
    # NAME.json before NAME.EXT.json: the more specific sidecar wins.
    for rel in sorted(sidecars, key=lambda f: (f.count("/"), "." in f[:-5].rpartition("/")[2], f)):
        image = _sidecar_image(rel, keys)
        assert image is not None
        result.files.append(rel)
        result._reading = rel
        name = rel.rpartition("/")[2]
        try:
            data = _bounded(read, rel, max_bytes)
            obj = strict_json(data.decode("utf-8"))
        except AnnotationError as exc:
            result.broken[image] = str(exc).split(": ", 1)[1]
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            result.broken[image] = f"invalid metadata JSON in {name}: {exc}"
            continue
        if not isinstance(obj, dict):
            result.broken[image] = (
                f"metadata in {name} is a JSON {type(obj).__name__}, not an object"
            )
            continue
        result._set(image, obj)
    return result


def _bounded(read: Reader, rel: str, limit: int | None) -> bytes:
    try:
        data = read(rel)
    except OSError as exc:
        raise AnnotationError(f"{rel}: cannot read: {exc.strerror or exc}") from None
    if limit is not None and len(data) > limit:
        raise AnnotationError(
            f"{rel}: metadata file {rel.rpartition('/')[2]} is over "
            f"{limit:,} bytes (ingest.max_metadata_bytes)"
        )
    return data


def _join(folder: str, path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return f"{folder}/{path}" if folder else path


def _sidecar_image(rel: str, keys: KeyIndex) -> str | None:
    """The image a `NAME.EXT.json` or `NAME.json` belongs to, if there is one."""
    base = rel[: -len(".json")]
    if base in keys.keys:
        return base
    folder, _, stem = base.rpartition("/")
    found = keys.by_stem(folder, stem)
    return found[0] if len(found) == 1 else None


# ------------------------------------------------------------------ tables


def _text(rel: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{rel}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None


def _table_rows(rel: str, data: bytes) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, image path, fields) for each row of a CSV, TSV or JSONL file."""
    text = _text(rel, data)
    if rel.lower().endswith(".jsonl"):
        yield from _jsonl_rows(rel, text)
        return
    header = text.split("\n", 1)[0]
    delimiter = (
        "\t"
        if rel.lower().endswith(".tsv")
        else max((",", ";", "\t"), key=lambda sep: (header.count(sep), sep == ","))
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = [name.strip() for name in next(reader, [])]
        lowered = [name.lower() for name in columns]
        columns = [
            low if low in KNOWN_FIELDS else name for name, low in zip(columns, lowered, strict=True)
        ]
        path_column = next((c for c in PATH_COLUMNS if c in lowered), None)
        if path_column is None:
            raise AnnotationError(
                f"{rel}: no column names the image (one of {', '.join(PATH_COLUMNS)}); its "
                f"columns are {', '.join(repr(c) for c in columns[:8]) or 'none'}"
            )
        at = lowered.index(path_column)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(columns):
                raise AnnotationError(
                    f"{rel}:{reader.line_num}: {len(row)} cells, the header "
                    f"names {len(columns)} columns"
                )
            path = row[at].strip() if at < len(row) else ""
            if not path:
                raise AnnotationError(
                    f"{rel}:{reader.line_num}: no image in the {columns[at]!r} column"
                )
            values = {
                columns[i]: typed(cell)
                for i, cell in enumerate(row)
                if i != at and columns[i] and cell.strip()
            }
            yield reader.line_num, path, values
    except csv.Error as exc:
        raise AnnotationError(f"{rel}:{reader.line_num}: not valid CSV: {exc}") from None


def _jsonl_rows(rel: str, text: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = strict_json(line)
        except ValueError as exc:
            raise AnnotationError(f"{rel}:{number}: invalid JSON: {exc}") from None
        column = next((c for c in PATH_COLUMNS if isinstance(obj, dict) and c in obj), None)
        if column is None or not isinstance(obj[column], str) or not obj[column].strip():
            raise AnnotationError(
                f"{rel}:{number}: not a JSON object with a path field (one "
                f"of {', '.join(PATH_COLUMNS)})"
            )
        path = obj.pop(column).strip()
        yield number, path, obj


# ------------------------------------------------------------------ COCO


def _read_json(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    try:
        obj = strict_json(_text(rel, data))
    except ValueError as exc:
        raise AnnotationError(f"{rel}: invalid JSON: {exc}") from None
    if not (
        isinstance(obj, dict)
        and isinstance(obj.get("images"), list)
        and isinstance(obj.get("annotations"), list)
    ):
        result.unused.append(
            f"{rel}: not COCO (no images and annotations) and no image of that name"
        )
        return
    try:
        names = {c["id"]: str(c["name"]) for c in obj.get("categories") or []}
        images = {image["id"]: str(image["file_name"]) for image in obj["images"]}
        objects: dict[Any, list[dict[str, Any]]] = {image_id: [] for image_id in images}
        for item in obj["annotations"]:
            bbox = item.get("bbox")
            if bbox is None:
                continue  # a caption or keypoints-only annotation: nothing of ours
            if not (
                isinstance(bbox, list)
                and len(bbox) == 4
                and all(isinstance(v, int | float) for v in bbox)
            ):
                raise AnnotationError(
                    f"{rel}: annotation {item.get('id')}: bbox is not [x, y, width, height]"
                )
            entry: dict[str, Any] = {
                "bbox": bbox,
                "category": names.get(item.get("category_id"), str(item.get("category_id"))),
            }
            if item.get("iscrowd"):
                entry["iscrowd"] = 1
            objects.setdefault(item["image_id"], []).append(entry)
    except (KeyError, TypeError) as exc:
        raise AnnotationError(f"{rel}: not valid COCO ({type(exc).__name__}: {exc})") from None
    folder = rel.rpartition("/")[0]
    root = folder.rpartition("/")[0] if folder.rpartition("/")[2] == "annotations" else folder
    for image_id, file_name in images.items():
        key = _coco_image(folder, root, rel, file_name, keys)
        if key is None:
            result.unused.append(f"{rel}: {file_name} (no such image)")
            continue
        result._set(key, {"objects": objects.get(image_id, [])})


def _coco_image(folder: str, root: str, rel: str, file_name: str, keys: KeyIndex) -> str | None:
    direct = _join(folder, file_name)
    if direct in keys.keys:
        return direct
    found = keys.by_tail(root, file_name.replace("\\", "/").lstrip("./"))
    if len(found) > 1:
        # instances_train2017.json names files of train2017/
        stem = rel.rpartition("/")[2].rsplit(".", 1)[0]
        split = stem.split("_", 1)[1] if "_" in stem else ""
        narrowed = [k for k in found if f"/{split}/" in f"/{k}"] if split else []
        if len(narrowed) == 1:
            return narrowed[0]
        raise AnnotationError(
            f"{rel}: {file_name} could be any of {', '.join(found[:3])}; "
            "put the JSON beside its images"
        )
    return found[0] if found else None


# ------------------------------------------------------------------ Pascal VOC


def _read_voc(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise AnnotationError(f"{rel}: not valid XML: {exc}") from None
    if root.tag != "annotation":
        result.unused.append(f"{rel}: XML, but not Pascal VOC (no <annotation>)")
        return
    file_name = (root.findtext("filename") or "").strip()
    folder = rel.rpartition("/")[0]
    parent, _, here = folder.rpartition("/")
    stem = rel.rpartition("/")[2][: -len(".xml")]
    candidates = []
    if file_name:
        if here == "Annotations":
            candidates.append(_join(parent, f"JPEGImages/{file_name}"))
        candidates.append(_join(folder, file_name))
    key = next((c for c in candidates if c in keys.keys), None)
    if key is None:
        found = keys.by_stem(
            _join(parent, "JPEGImages") if here == "Annotations" else folder,
            file_name.rsplit(".", 1)[0] if file_name else stem,
        )
        key = found[0] if len(found) == 1 else None
    if key is None:
        result.unused.append(f"{rel}: {file_name or stem} (no such image)")
        return
    objects = []
    for item in root.iter("object"):
        box = item.find("bndbox")
        try:
            if box is None:
                raise ValueError("no <bndbox>")
            xmin, ymin, xmax, ymax = (
                float(box.findtext(t) or "") for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise AnnotationError(f"{rel}: an <object> without a numeric <bndbox>") from None
        entry: dict[str, Any] = {
            "bbox": [_number(xmin), _number(ymin), _number(xmax - xmin), _number(ymax - ymin)],
            "category": (item.findtext("name") or "").strip(),
        }
        if (item.findtext("difficult") or "0").strip() == "1":
            entry["difficult"] = 1
        objects.append(entry)
    result._set(key, {"objects": objects})


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------------ YOLO


def _read_yolo(
    rel: str,
    data: bytes,
    keys: KeyIndex,
    result: Annotations,
    yaml_files: list[str],
    read: Reader,
    names_cache: dict[str, dict[int, str]],
) -> None:
    parts = rel.split("/")
    image_folder, stem = _yolo_image_place(parts)
    found = keys.by_stem(image_folder, stem)
    if len(found) != 1:
        result.unused.append(f"{rel}: no image {image_folder}/{stem}.* beside it")
        return
    image = found[0]
    boxes = []
    for number, line in enumerate(_text(rel, data).splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split()
        try:
            values = [float(cell) for cell in cells]
        except ValueError:
            values = []
        if (
            len(values) != 5
            or not values[0].is_integer()
            or not all(math.isfinite(v) for v in values)
        ):
            raise AnnotationError(
                f"{rel}:{number}: not a YOLO box (class cx cy w h): {line.strip()[:60]!r}"
            )
        boxes.append((int(values[0]), values[1:]))
    names = _yolo_names(parts[: _labels_at(parts)], yaml_files, read, names_cache)

    def objects(width: int, height: int) -> list[dict[str, Any]]:
        out = []
        for cls, (cx, cy, w, h) in boxes:
            out.append(
                {
                    "bbox": [
                        _round((cx - w / 2) * width),
                        _round((cy - h / 2) * height),
                        _round(w * width),
                        _round(h * height),
                    ],
                    "category": names.get(cls, str(cls)),
                }
            )
        return out

    result._set_sized(image, "objects", objects)


def _labels_at(parts: list[str]) -> int:
    """Where the last `labels` folder is in a YOLO label file's path."""
    return len(parts) - 2 - parts[-2::-1].index("labels")


def _yolo_image_place(parts: list[str]) -> tuple[str, str]:
    """The folder and stem of the image a YOLO label file (its path's `parts`) speaks
    of: the last `labels` folder becomes `images`, the name loses `.txt`."""
    at = _labels_at(parts)
    return "/".join([*parts[:at], "images", *parts[at + 1 : -1]]), parts[-1][: -len(".txt")]


def _yolo_image(rel: str, keys: KeyIndex) -> str | None:
    """The image a YOLO label file speaks of, with any suffix; None if not exactly one."""
    found = keys.by_stem(*_yolo_image_place(rel.split("/")))
    return found[0] if len(found) == 1 else None


def _round(value: float) -> int | float:
    value = round(value, 3)
    return int(value) if value.is_integer() else value


def _yolo_names(
    above: list[str], yaml_files: list[str], read: Reader, cache: dict[str, dict[int, str]]
) -> dict[int, str]:
    """Class names from the nearest YAML file with `names`, from the labels folder's
    parent up to the top of the place."""
    for depth in range(len(above), -1, -1):
        folder = "/".join(above[:depth])
        here = sorted(f for f in yaml_files if f.rpartition("/")[0] == folder)
        for rel in here:
            if rel not in cache:
                cache[rel] = _names_in(rel, read)
            if cache[rel]:
                return cache[rel]
    return {}


def _names_in(rel: str, read: Reader) -> dict[int, str]:
    import yaml

    try:
        document = yaml.safe_load(_text(rel, _bounded(read, rel, 16 << 20)))
    except yaml.YAMLError as exc:
        raise AnnotationError(f"{rel}: not valid YAML: {str(exc).splitlines()[0]}") from None
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, list):
        return {i: str(name) for i, name in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(i): str(name) for i, name in names.items()}
        except (TypeError, ValueError):
            raise AnnotationError(f"{rel}: names must map class numbers to names") from None
    return {}


# ------------------------------------------------------------------ folder rules


def folder_fields(key: str, label_from_folder: bool, split_from_folder: bool) -> dict[str, Any]:
    """Fields a key's folders give: `label`, the image's folder (torchvision
    ImageFolder), and `split`, the nearest folder named train, val, validation, test
    (Hugging Face imagefolder; validation and valid are `val`, training `train`, testing
    `test`). A split folder is never a label."""
    folders = PurePosixPath(key).parts[:-1]
    values: dict[str, Any] = {}
    if split_from_folder:
        split = next(
            (SPLIT_FOLDERS[f.lower()] for f in reversed(folders) if f.lower() in SPLIT_FOLDERS),
            None,
        )
        if split is not None:
            values["split"] = split
    if label_from_folder and folders:
        parent = folders[-1]
        if not (split_from_folder and parent.lower() in SPLIT_FOLDERS):
            values["label"] = parent
    return values


def read_place(
    root: os.PathLike[str] | str,
    files: Iterable[str],
    keys: KeyIndex,
    max_bytes: int = 1 << 20,
    unread: Collection[str] = (),
) -> Annotations:
    """Read annotation files that lie under the folder `root` (but `unread`: see
    read_annotations)."""

    def read(rel: str) -> bytes:
        with open(os.path.join(root, rel), "rb") as fh:
            return fh.read()

    result = read_annotations(files, read, keys, max_bytes, unread)
    result.root = Path(root)
    return result
