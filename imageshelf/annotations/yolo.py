"""YOLO: label files as ultralytics reads them, with class names from every file the
labelling tools write beside them.

Where an image's labels lie is ultralytics' rule (`img2label_paths`): its path with the
last `images` folder made `labels` and the suffix `.txt`; an image under no `images`
folder has them beside it (CVAT's "YOLO 1.1" export: `obj_train_data/1.jpg`, `1.txt`).
A line holds, normalized to 0..1 by the image's width and height:

- `class cx cy w h`: a box;
- `class x1 y1 ... xn yn`, n >= 3: a polygon (a segment; an oriented box is its four
  corners): `segmentation` is the polygon, `bbox` the box around it, as COCO has them;
- `class cx cy w h` and k keypoints of d values, where data.yaml says `kpt_shape: [k, d]`:
  a pose: `keypoints` as COCO's [x, y, v, ...] (for d = 2, v is 0 where x or y is
  negative, 2 elsewhere: ultralytics' mask), and `num_keypoints`, those with v > 0.

Each object has `bbox` ([x, y, width, height] in pixels), `category_id` (the class
number) and `category` (its name). Class names come from the nearest, from the labels'
folder up, of: a YAML file with `names` (a list or a mapping: data.yaml), `*.names`
(Darknet, CVAT's obj.names), `classes.txt` (Label Studio), `notes.json`'s categories
(Label Studio), a Darknet `*.data` file's `names`. data.yaml's `train`, `val` and `test`
give the images under those folders (or in those lists) their split.
"""

from __future__ import annotations

import math
import posixpath
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..base.yamlfile import YamlRefused, load_yaml
from .base import (
    EVERYTHING,
    FILE_LIMIT,
    AnnotationError,
    Annotations,
    Below,
    Everything,
    KeyIndex,
    Reader,
    folder_of,
    join,
    name_of,
    read_bounded,
    rounded,
    text_of,
)
from .values import strict_json

YAML_SPLITS = {"train": "train", "val": "val", "test": "test"}
MAX_CLASS = 1 << 31


@dataclass
class Names:
    """Class names, and the keypoints' shape where the file gives one."""

    names: dict[int, str]
    source: str
    kpt_shape: tuple[int, int] | None = None


def is_names_file(rel: str) -> bool:
    """A file that holds class names (or data.yaml's splits): told by its name alone."""
    if rel.endswith(".txt"):  # most: a label file; classes.txt is the one exception
        return rel.endswith("classes.txt") and name_of(rel) == "classes.txt"
    name = name_of(rel).lower()
    return name.endswith((".yaml", ".yml", ".names", ".data")) or name in (
        "classes.txt",
        "notes.json",
    )


def names_reach(rel: str, read: Reader) -> list[str] | None:
    """The folders (as key prefixes) whose images a names file can give anything to,
    read now: class names reach the labels below its folder; data.yaml's splits reach
    the folders it names. None where that cannot be bounded: a file at the top (it
    reaches everything), a Darknet `.data` file or a data.yaml naming image lists
    (which may name any image), a file that cannot be read."""
    folder = folder_of(rel)
    if not folder or not is_names_file(rel) or rel.lower().endswith(".data"):
        return None
    reach = [folder + "/"]
    if not rel.lower().endswith((".yaml", ".yml")):
        return reach
    try:
        document = load_yaml(text_of(rel, read_bounded(read, rel, 16 << 20, FILE_LIMIT)))
    except (YamlRefused, AnnotationError, OSError):
        return None
    if not isinstance(document, dict):
        return reach
    base = document.get("path")
    roots = [folder]
    if isinstance(base, str) and base and not base.startswith("/"):
        roots[:0] = _inside(folder, base)[:1]
    for name in YAML_SPLITS:
        given = document.get(name)
        for path in [given] if isinstance(given, str) else given or []:
            if isinstance(path, str) and path.lower().endswith(".txt"):
                return None
            if isinstance(path, str) and path:
                targets = [t for root in roots for t in _inside(root, path)]
                if "" in targets:
                    return None
                reach += [target + "/" for target in targets]
    return reach


def reach(rel: str, read: Reader) -> Below | Everything:
    """A names file (is_names_file), as it is now: the folders it reaches
    (names_reach), or everything where that cannot be bounded."""
    prefixes = names_reach(rel, read)
    return EVERYTHING if prefixes is None else Below(tuple(prefixes))


def _labels_at(folders: list[str]) -> int | None:
    """Where the last `labels` folder is among a file's `folders`, if there is one."""
    return len(folders) - 1 - folders[::-1].index("labels") if "labels" in folders else None


@lru_cache(maxsize=4096)  # a dataset has a label file per image, in few folders
def _images_for(folder: str) -> str | None:
    """Where the images of the label files in `folder` are by ultralytics' rule: the last
    `labels` folder made `images`; None if there is no `labels` folder."""
    folders = folder.split("/")
    at = _labels_at(folders)
    return None if at is None else "/".join([*folders[:at], "images", *folders[at + 1 :]])


def label_image(rel: str, keys: KeyIndex) -> str | None:
    """The image a `.txt` speaks of as its labels: by ultralytics' rule under a `labels`
    folder, else the image beside it with the same stem (`NAME.gt.txt`, an OCR ground
    truth, is NAME's)."""
    folder, _, name = rel.rpartition("/")
    stem = name[:-4]
    images = _images_for(folder) if folder else None
    if images is not None:
        found = keys.one_by_stem(images, stem)
        if found is not None:
            return found
    found = keys.one_by_stem(folder, stem)
    if found is None and stem.endswith(".gt"):
        found = keys.one_by_stem(folder, stem[:-3])
    return found


def under_labels(rel: str) -> bool:
    return "labels" in rel.split("/")[:-1]


@dataclass
class Yolo:
    """The YOLO files of one place: where names are, which lists and folders data.yaml
    gives a split, and what has been used."""

    files: list[str]
    read: Reader
    result: Annotations
    by_folder: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cache: dict[str, Names | None] = field(default_factory=dict)  # names file -> its names
    above: dict[str, Names | None] = field(default_factory=dict)  # folder -> nearest names
    label_folders: dict[str, Names | None] = field(default_factory=dict)  # label folder -> names
    used: set[str] = field(default_factory=set)
    named: list[str] = field(default_factory=list)  # the names files (and data.yaml) of files
    lists: dict[str, str] = field(default_factory=dict)  # list file -> the split it gives
    # data.yaml's split folders: where each may be (the first that holds images), split, yaml
    folders: list[tuple[list[str], str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        named = self.named = [rel for rel in self.files if is_names_file(rel)]  # data.yaml too
        for rel in named:
            self.by_folder[folder_of(rel)].append(rel)
        for rel in named:
            if name_of(rel).lower().endswith((".yaml", ".yml", ".data")):
                self._load(rel)

    # ------------------------------------------------------------ names

    def names_above(self, folder: str) -> Names | None:
        """The nearest class names from `folder` up to the top of the place (looked up
        once per folder: a YOLO dataset has a label file per image)."""
        if folder in self.above:
            return self.above[folder]
        start, found = folder, None
        while found is None:
            for rel in sorted(self.by_folder.get(folder, ()), key=_names_rank):
                found = self._load(rel)
                if found is not None:
                    self.used.update((found.source, rel))
                    break
            if not folder:
                break
            folder = folder_of(folder)
        self.above[start] = found
        return found

    def names_for_label(self, rel: str) -> Names | None:
        """The class names a label file uses: the nearest above its labels folder (or,
        for labels beside images, above its own folder)."""
        folder = folder_of(rel)
        if folder not in self.label_folders:  # a YOLO dataset has a label file per image
            folders = folder.split("/")
            at = _labels_at(folders)
            above = folder if at is None else "/".join(folders[:at])
            self.label_folders[folder] = self.names_above(above)
        return self.label_folders[folder]

    def _load(self, rel: str) -> Names | None:
        if rel not in self.cache:
            self.cache[rel] = None  # a file that names itself is read once
            self.cache[rel] = self._parse(rel)
        return self.cache[rel]

    def _parse(self, rel: str) -> Names | None:
        name = name_of(rel).lower()
        if name.endswith((".yaml", ".yml")):
            return self._yaml(rel)
        if name.endswith(".data"):
            return self._darknet(rel)
        text = text_of(rel, read_bounded(self.read, rel, 16 << 20, FILE_LIMIT))
        if name == "notes.json":
            return _notes_names(rel, text)
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return Names(dict(enumerate(names)), rel)

    def _yaml(self, rel: str) -> Names | None:
        try:
            document = load_yaml(text_of(rel, read_bounded(self.read, rel, 16 << 20, FILE_LIMIT)))
        except YamlRefused as exc:
            raise AnnotationError(f"{rel}: not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            return None
        self._yaml_splits(rel, document)
        names = _yaml_names(rel, document.get("names"))
        if names is None:
            return None
        return Names(names, rel, _kpt_shape(rel, document.get("kpt_shape")))

    def _yaml_splits(self, rel: str, document: dict[str, Any]) -> None:
        folder = folder_of(rel)
        base = document.get("path")
        roots = [folder]
        if isinstance(base, str) and base and not base.startswith("/"):
            roots[:0] = _inside(folder, base)[:1]
        for name, split in YAML_SPLITS.items():
            given = document.get(name)
            for path in [given] if isinstance(given, str) else given or []:
                if not isinstance(path, str) or not path:
                    continue
                targets = [t for root in roots for t in _inside(root, path)]
                if path.lower().endswith(".txt"):
                    found = next((t for t in targets if t in self.files), None)
                    if found is not None:
                        self.lists[found] = split
                else:
                    self.folders.append((targets, split, rel))

    def _darknet(self, rel: str) -> Names | None:
        """obj.data: `names = data/obj.names`, `train = data/train.txt`, ... (paths
        relative to Darknet's folder: the file of that name beside obj.data)."""
        text = text_of(rel, read_bounded(self.read, rel, 1 << 20, FILE_LIMIT))
        settings = dict(
            (k.strip(), v.strip())
            for k, _, v in (ln.partition("=") for ln in text.splitlines())
            if v
        )
        folder = folder_of(rel)
        for name, split in (("train", "train"), ("valid", "val"), ("test", "test")):
            if settings.get(name):
                self.lists[join(folder, name_of(settings[name]))] = split
        if settings.get("names"):
            target = join(folder, name_of(settings["names"]))
            if target in self.files and target != rel:
                found = self._load(target)
                if found is not None:
                    self.used.add(rel)
                return found
        return None

    # ------------------------------------------------------------ splits

    def apply_folder_splits(self, keys: KeyIndex, settled: Collection[str] = ()) -> None:
        """data.yaml's train/val/test folders: the images under them get that split
        (but `settled` ones, stored as they are with every annotation file unchanged)."""
        for targets, split, rel in self.folders:
            for folder in targets:
                prefix = f"{folder}/" if folder else ""
                matched = keys.under(prefix)
                if matched:
                    self.used.add(rel)
                    for key in matched:
                        if key not in settled:
                            self.result.set(key, {"split": split}, sources=[rel])
                    break

    # ------------------------------------------------------------ labels

    def read_label(self, rel: str, data: bytes, image: str) -> None:
        """Read a label file into its image's `objects` (computed when the image's size
        is known); a line that is not YOLO rejects that image, with the line."""
        result = self.result
        result.reading = rel
        found = self.names_for_label(rel)
        names = found.names if found is not None else {}
        kpt = found.kpt_shape if found is not None else None
        try:
            rows = [_row(rel, n, line, kpt) for n, line in _lines(rel, data)]
        except AnnotationError as exc:
            result.broken[image] = str(exc)
            return
        missing = sorted({cls for cls, _kind, _v in rows if names and cls not in names})
        if missing:
            assert found is not None
            result.note(
                f"{rel}: class {missing[0]} has no name in {found.source} "
                f"({len(names)} names): its category is {str(missing[0])!r}"
            )
        if any(not _in_range(kind, values) for _c, kind, values in rows):
            result.note(
                f"{rel}: coordinates outside 0..1 (ultralytics ignores this image's labels); "
                "kept as they are"
            )

        def objects(width: int, height: int) -> list[dict[str, Any]]:
            return [_object(cls, kind, v, names, width, height) for cls, kind, v in rows]

        result.set_sized(image, "objects", objects)


def _names_rank(rel: str) -> tuple[int, str]:
    """Which names file of a folder wins: YAML, Darknet's .names, classes.txt, Label
    Studio's notes.json, then a .data file (which only points at a .names)."""
    name = name_of(rel).lower()
    for rank, matches in enumerate(
        (
            name.endswith((".yaml", ".yml")),
            name.endswith(".names"),
            name == "classes.txt",
            name == "notes.json",
        )
    ):
        if matches:
            return rank, rel
    return 4, rel


def _inside(folder: str, path: str) -> list[str]:
    """Where a path data.yaml gives may be: relative to its folder, or, with its leading
    `../` dropped, inside it (Roboflow writes `train: ../train/images` for the export's
    own train/images); never outside the place."""
    path = path.replace("\\", "/").strip("/")
    candidates = [path]
    stripped = path
    while stripped.startswith("../"):
        stripped = stripped[3:]
    if stripped != path:
        candidates.append(stripped)
    out = []
    for candidate in candidates:
        target = posixpath.normpath(join(folder, candidate))
        if target != ".." and not target.startswith("../"):
            out.append("" if target == "." else target)
    return out


def _yaml_names(rel: str, names: Any) -> dict[int, str] | None:
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict):
        pairs = list(names.items())
    else:
        return None
    try:
        if any(isinstance(name, list | dict) for _i, name in pairs):
            raise TypeError
        return {int(i): str(name) for i, name in pairs}
    except (TypeError, ValueError, OverflowError):
        raise AnnotationError(f"{rel}: names must map class numbers to names") from None


def _kpt_shape(rel: str, shape: Any) -> tuple[int, int] | None:
    if shape is None:
        return None
    if (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(v) is int for v in shape)
        and 0 < shape[0] < 10_000
        and shape[1] in (2, 3)
    ):
        return (shape[0], shape[1])
    raise AnnotationError(f"{rel}: kpt_shape must be [keypoints, 2 or 3] (got {shape!r})")


def _notes_names(rel: str, text: str) -> Names | None:
    try:
        notes = strict_json(text)
        categories = notes["categories"]
        return Names({int(c["id"]): str(c["name"]) for c in categories}, rel)
    except (ValueError, KeyError, TypeError):
        return None


def _lines(rel: str, data: bytes) -> Iterable[tuple[int, str]]:
    for number, line in enumerate(text_of(rel, data).splitlines(), 1):
        if line.strip():
            yield number, line


def _row(
    rel: str, number: int, line: str, kpt: tuple[int, int] | None
) -> tuple[int, str, list[float]]:
    """One label line: (class, "box" | "polygon" | "pose", the coordinates)."""
    try:
        values = [float(cell) for cell in line.split()]
    except ValueError:
        values = []
    n = len(values)
    if n and all(math.isfinite(v) for v in values) and values[0].is_integer():
        cls = values[0]
        if not 0 <= cls < MAX_CLASS:
            raise AnnotationError(f"{rel}:{number}: class {line.split()[0]} is not a class number")
        if kpt is not None and n == 5 + kpt[0] * kpt[1]:
            return int(cls), f"pose{kpt[1]}", values[1:]
        if n == 5:
            return int(cls), "box", values[1:]
        if n >= 7 and n % 2 == 1:
            return int(cls), "polygon", values[1:]
    raise AnnotationError(
        f"{rel}:{number}: not a YOLO row (class cx cy w h; class x1 y1 ... xn yn; or a "
        f"pose with data.yaml's kpt_shape): {line.strip()[:60]!r}"
    )


def _in_range(kind: str, values: list[float]) -> bool:
    if kind.startswith("pose"):
        return all(-0.01 <= v <= 1.01 for v in values[:4])
    return all(-0.01 <= v <= 1.01 for v in values)


def _object(
    cls: int, kind: str, v: list[float], names: dict[int, str], width: int, height: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"category_id": cls, "category": names.get(cls, str(cls))}
    if kind == "polygon":
        xs = [x * width for x in v[0::2]]
        ys = [y * height for y in v[1::2]]
        polygon = [rounded(c) for xy in zip(xs, ys, strict=True) for c in xy]
        out["bbox"] = _box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        out["segmentation"] = [polygon]
        return out
    cx, cy, w, h = v[:4]
    out["bbox"] = _box((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
    if kind.startswith("pose"):
        out["keypoints"], out["num_keypoints"] = _keypoints(v[4:], int(kind[4:]), width, height)
    return out


def _box(x: float, y: float, w: float, h: float) -> list[int | float]:
    return [rounded(x), rounded(y), rounded(w), rounded(h)]


def _keypoints(values: list[float], dims: int, width: int, height: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    visible = 0
    for i in range(0, len(values), dims):
        x, y = values[i], values[i + 1]
        v = values[i + 2] if dims == 3 else (0 if x < 0 or y < 0 else 2)
        out += [rounded(x * width), rounded(y * height), rounded(v)]
        visible += v > 0
    return out, visible
