"""What every format's reader shares: the image keys annotations may speak of, what the
files of a place say about each key, and how a file is read."""

from __future__ import annotations

import bisect
import itertools
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShelfError
from .pairs import ClassTable


class AnnotationError(ShelfError):
    """An annotation file that cannot be read; the message names it (and the line)."""


class KeyIndex:
    """The image keys annotations may speak of, looked up the ways the formats name
    images: by exact path, by folder and stem (sidecars, YOLO, VOC), by a path's tail
    (COCO's file_name, image lists)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = set(keys)
        self._stems: tuple[dict[str, str], dict[str, list[str]]] | None = None
        self._names: dict[str, list[str]] | None = None
        self._ordered: list[str] | None = None
        self._children: dict[str, list[str]] | None = None

    def _stem_index(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """ "folder/stem" -> a key of that stem, and -> the others where there are more
        (rare: x.png beside x.jpg). Built on first use: only some formats need it."""
        if self._stems is None:
            stems: dict[str, str] = {}
            more: dict[str, list[str]] = defaultdict(list)
            for key in self.keys:
                head, dot, suffix = key.rpartition(".")
                stem = head if dot and "/" not in suffix else key
                if stems.setdefault(stem, key) is not key:
                    more[stem].append(key)
            self._stems = (stems, dict(more))
        return self._stems

    def by_tail(self, root: str, tail: str) -> list[str]:
        """Keys under `root` (a folder, "" for all) that end in the path `tail`."""
        names = self._names
        if names is None:  # built on first use
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

    def under(self, prefix: str) -> list[str]:
        """The keys that start with `prefix` (a folder's, with its slash), in order: a
        range of the sorted keys, sorted once."""
        if self._ordered is None:
            self._ordered = sorted(self.keys)
        ordered = self._ordered
        found = []
        for key in itertools.islice(ordered, bisect.bisect_left(ordered, prefix), None):
            if not key.startswith(prefix):
                break
            found.append(key)
        return found

    def folders_in(self, folder: str) -> list[str]:
        """The folders right under `folder` ("" for the top) that hold images of their
        own, sorted (where a dataset keeps its images beside its label folders)."""
        if self._children is None:  # built on first use: only some formats need it
            children: dict[str, set[str]] = defaultdict(set)
            for key in self.keys:
                here = key.rpartition("/")[0]
                if here:
                    children[here.rpartition("/")[0]].add(here)
            self._children = {parent: sorted(found) for parent, found in children.items()}
        return self._children.get(folder, [])

    def one_by_stem(self, folder: str, stem: str) -> str | None:
        if "/" in stem:
            return None
        stems, more = self._stem_index()
        name = f"{folder}/{stem}" if folder else stem
        return None if name in more else stems.get(name)


Deferred = Callable[[int, int], Any]  # a value that needs the image's width and height


@dataclass
class Annotations:
    """What the annotation files of one place say, per image key, and what they hold
    that is not kept (each with its reason)."""

    fields: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    sized: dict[str, dict[str, Deferred]] = field(default_factory=lambda: defaultdict(dict))
    broken: dict[str, str] = field(default_factory=dict)  # key -> why its sidecar failed
    unused: list[str] = field(default_factory=list)  # rows and files that matched no image
    # what was read but is not kept, or is kept but a peer's loader would refuse
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every annotation file read
    # files named like annotations that are not text: images (by content), or rejects
    not_text: list[str] = field(default_factory=list)
    # images that are inside an annotation file (a LabelMe JSON's imageData, with no
    # image file beside it): key -> the file
    embedded: dict[str, str] = field(default_factory=dict)
    # file -> the keys it set something for (which records a change to it can touch)
    keys_by_file: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # tables and XML files that left rows for no image, or notes: read again every run
    dirty: set[str] = field(default_factory=set)
    # image key -> {role: the key of an image that annotates it (a mask: paired.py)}
    paired: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    # folder -> the class names a dataset's file there gives its masks (classes.py)
    class_tables: dict[str, ClassTable] = field(default_factory=dict)
    reading: str = ""  # the file being read
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

    def set(self, key: str, values: dict[str, Any], sources: Iterable[str] = ()) -> None:
        """Set fields of `key` (a later source wins field by field); `sources` are the
        files that said so (by default, the one being read)."""
        for rel in sources or (self.reading,):
            self.keys_by_file[rel].add(key)
        self.fields[key].update(values)
        for name in values:
            self.sized.get(key, {}).pop(name, None)

    def set_sized(self, key: str, name: str, compute: Deferred) -> None:
        self.keys_by_file[self.reading].add(key)
        self.fields.get(key, {}).pop(name, None)
        self.sized[key][name] = compute

    def note(self, text: str) -> None:
        self.notes.append(text)

    def pair(self, key: str, role: str, file: str) -> None:
        """`file`, an image of this place, annotates the image `key` in `role` (its
        panoptic PNG, its mask): stored with it, never as an image of its own."""
        self.keys_by_file[self.reading].add(key)
        self.keys_by_file[self.reading].add(file)
        self.paired[key][role] = file


@dataclass(frozen=True, slots=True)
class Own:
    """What a file reaches: one image, `key` (a sidecar, a label file, an image's text)."""

    key: str


@dataclass(frozen=True, slots=True)
class Rows:
    """What a file reaches: the images its rows name (a table, an XML file), known only
    by reading it (`Annotations.keys_by_file`)."""


@dataclass(frozen=True, slots=True)
class Below:
    """What a file reaches: the images under these folders (key prefixes, each with its
    slash), to whose files it gives meaning (YOLO's class names, data.yaml's splits)."""

    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Everything:
    """What a file reaches: any image of the place (it combines with other files, or
    gives meaning to files anywhere)."""


# Which images an annotation file can give anything to (reach.py asks each format).
Reach = Own | Rows | Below | Everything
ROWS, EVERYTHING = Rows(), Everything()


# (relative path, a size limit or None) -> the file's bytes; TooLarge, before reading
# anything, for a file over the limit
Reader = Callable[[str, "int | None"], bytes]
OWN_LIMIT = "ingest.max_metadata_bytes"  # the setting that bounds one image's own file
FILE_LIMIT = "annotations.max_file_bytes"  # the setting that bounds any annotation file


@dataclass(frozen=True)
class Limits:
    """How large a file may be read: `own`, one image's own file (a sidecar, a label
    file) and a table's row; `file`, any other (a dataset's table, a COCO file)."""

    own: int = 1 << 20
    file: int = 2 << 30


class TooLarge(OSError):
    """A file over the size a reader was given; `size` is its size."""

    def __init__(self, size: int) -> None:
        super().__init__(27, "file too large")
        self.size = size


def read_bounded(read: Reader, rel: str, limit: int | None, setting: str = OWN_LIMIT) -> bytes:
    """A file's bytes, or an AnnotationError if it cannot be read or is over `limit`
    (the value of `setting`), said before a byte of it is read."""
    try:
        return read(rel, limit)
    except TooLarge as exc:
        raise AnnotationError(
            f"{rel}: {exc.size:,} bytes, over {limit:,} ({setting} in params.yaml)"
        ) from None
    except OSError as exc:
        raise AnnotationError(f"{rel}: cannot read: {exc.strerror or exc}") from None


def text_of(rel: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{rel}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None


def parse_xml(rel: str, data: bytes) -> Any:
    """An XML file's root element, parsed by defusedxml (no entities, no external
    references); an AnnotationError naming the file if it is not XML."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise AnnotationError(f"{rel}: not valid XML: {exc}") from None


def resolve(folder: str, line: str, keys: KeyIndex) -> str | None:
    """The image a path written in a list (lists.py, ocr.py, texts.py) names: relative
    to the list's `folder`, or to any folder above (CVAT's `data/obj_train_data/1.jpg`,
    PaddleOCR's `train_data/rec/train/word_001.jpg`), or the one image whose path ends so
    under the folder above the list's (WIDER FACE's `wider_face_split/` beside
    `WIDER_test/`)."""
    path = line.replace("\\", "/").strip("/")
    direct = posixpath.normpath(join(folder, path))
    if direct in keys.keys:
        return direct
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    for at in range(1, len(parts)):
        candidate = join(folder, "/".join(parts[at:]))
        if candidate in keys.keys:
            return candidate
    if len(parts) == 1 and "." not in parts[0]:
        return keys.one_by_stem(folder, parts[0])
    if parts:
        found = keys.by_tail(folder_of(folder), "/".join(parts))
        if len(found) == 1:
            return found[0]
    return None


def join(folder: str, path: str) -> str:
    """A path written in an annotation file, relative to `folder`, as a key."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return f"{folder}/{path}" if folder else path


def folder_of(rel: str) -> str:
    return rel.rpartition("/")[0]


def name_of(rel: str) -> str:
    return rel.rpartition("/")[2]


def number(value: float) -> int | float:
    """A whole float as an int (`10.0` -> `10`), so boxes read from text stay small."""
    return int(value) if value.is_integer() else value


def rounded(value: float) -> int | float:
    """A pixel coordinate computed from a normalized one: 3 decimals, whole as an int."""
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value
