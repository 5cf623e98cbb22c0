"""Read every annotation file of a place, each by its format's module, in one order.

Within a place, outer folders are read before inner ones and, in a folder: data.yaml's
splits, tables (Hugging Face's, Open Images', Label Studio's CSV), JSON (COCO, Label
Studio's JSON and JSON_MIN, FiftyOne's labels.json, LabelMe files not named for their
image, Cityscapes polygons), XML (VOC, CVAT), then text files (YOLO, KITTI and DOTA
labels, ICDAR 2015 words, an image's text; CelebA's files together, WIDER FACE, MOT,
PaddleOCR, image lists: `texts`), then sidecars (`NAME.json` before `NAME.EXT.json`,
LabelMe's too): a later source wins field by field. A file that does not parse is an
AnnotationError naming it (losing labels is worse than stopping), except a file that is
one image's own (a sidecar, a LabelMe file, a label file), which rejects that one image
with the reason instead, and a table no reader places, which is reported alone
(imagetables.py).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from .archives import read_source
from .base import (
    FILE_LIMIT,
    AnnotationError,
    Annotations,
    KeyIndex,
    Limits,
    Reader,
    TooLarge,
    folder_of,
    parse_xml,
    read_bounded,
    text_of,
)
from .celeba import is_celeba, read_celeba, root_of
from .cityscapes import is_cityscapes_polygons, read_cityscapes
from .classes import is_class_file, read_class_file
from .coco import is_coco, read_coco
from .cvat import is_cvat, read_cvat
from .embedded import is_labelme, note_copies
from .fiftyone import is_fiftyone, read_fiftyone
from .imagetables import read_image_table
from .kinds import annotation_kind
from .labelme import apply_labelme, read_labelme
from .labelstudio import is_json_min, is_label_studio, read_label_studio
from .labelstudio_min import is_label_studio_table, read_label_studio_items
from .lists import read_list
from .openimages import OpenImages
from .reach import gives_rows, own_reach
from .sidecars import sidecar_image, sidecar_objects
from .tables import read_table
from .texts import read_own, read_shared, text_image
from .values import strict_json
from .voc import is_voc, read_voc
from .yolo import Yolo, is_names_file

ORDER = {"table": 0, "json": 1, "xml": 2, "text": 3, "ini": 3, "celeba": 3}
DEFAULT_LIMITS = Limits()


def _own_files(files: Iterable[str], keys: KeyIndex, images: Collection[str]) -> set[str]:
    """Those of the annotation `files` that speak of one image only, one of `images`: a
    YOLO label file, an image's text, a sidecar. (Other files may speak of any image.)"""
    own = set()
    for rel in files:
        found = own_reach(rel, keys)
        if found is not None and found.key in images:
            own.add(rel)
    return own


def read_annotations(
    files: Iterable[str],
    read: Reader,
    keys: KeyIndex,
    limits: Limits = DEFAULT_LIMITS,
    settled: Collection[str] = (),
    settled_files: Collection[str] = (),
    image_column: str = "",
) -> Annotations:
    """Read the annotation files `files` (paths relative to their place) of a place whose
    images are `keys`; `read(rel, limit)` gives a file's bytes, within `limits`;
    `image_column` (annotations.image_column) names the image in tables that have it.
    `settled` images are stored as they are, with every annotation file unchanged since
    (ingest knows): their own files are listed as used and not read, and data.yaml's
    folders give them nothing new. `settled_files` (tables, XML files) are unchanged
    since a run that read them and found every row an image, all of them settled: they
    are listed as used and not read."""
    files = list(files)
    result = Annotations()
    unread = _own_files(files, keys, settled) if settled else set()
    unread.update(rel for rel in settled_files if gives_rows(rel))

    def whole(rel: str) -> bytes:
        return read_bounded(read, rel, limits.file, FILE_LIMIT)

    yolo = Yolo(files, read, result)
    yolo.apply_folder_splits(keys, settled)
    open_images = OpenImages(keys, result)  # class names found in any table of the place
    for rel in unread:
        result.files.append(rel)
        if rel.endswith(".txt"):
            yolo.names_for_label(rel)  # its class names are still in use
    sidecars: list[str] = []
    for kind, rels in _units([f for f in files if f not in unread], keys, sidecars):
        if kind == "json":
            _read_json_folder(rels, whole, keys, result)
            continue
        if kind == "celeba":
            read_celeba(rels, whole, keys, result)
            continue
        rel = rels[0]
        result.reading = rel
        said = len(result.unused) + len(result.notes)
        if is_class_file(rel):  # ADE20K's objectInfo150.csv, CamVid's class_dict.csv...
            result.files.append(rel)
            read_class_file(rel, whole(rel), keys, result)
        elif kind == "table":
            result.files.append(rel)
            _read_table(rel, whole(rel), keys, limits, image_column, open_images, result)
        elif kind == "xml":
            result.files.append(rel)
            _read_xml(rel, whole(rel), keys, result)
        else:
            _read_text(rel, read, whole, keys, limits.own, yolo, result)
        if len(result.unused) + len(result.notes) != said:
            result.dirty.add(rel)
    open_images.finish()
    _read_sidecars(sidecars, read, keys, limits, result)
    for rel in yolo.named:
        if rel in yolo.used:
            result.files.append(rel)
        else:
            result.unused.append(f"{rel}: no YOLO labels use its class names")
    result.files.sort()
    return result


def _read_sidecars(
    files: list[str], read: Reader, keys: KeyIndex, limits: Limits, result: Annotations
) -> None:
    """Each image's sidecars: a LabelMe file's shapes (labelme.py), any other object's
    fields as they are."""
    copies: dict[str, list[str]] = {}  # folder -> its LabelMe files that copy their image
    for rel, image, obj in sidecar_objects(files, read, keys, limits, result):
        if is_labelme(obj):
            if obj.get("imageData"):
                copies.setdefault(folder_of(rel), []).append(rel)
            apply_labelme(rel, obj, image, result)
        else:
            result.set(image, obj)
    for folder in sorted(copies):
        note_copies(copies[folder], result)


def _units(
    files: list[str], keys: KeyIndex, sidecars: list[str]
) -> Iterator[tuple[str, list[str]]]:
    """The files to read, in order: one file at a time, but a folder's JSON files (COCO
    files combine) together, and a CelebA folder's files (a face's box and points are in
    two) together."""
    units: list[tuple[tuple[int, int, str], str, list[str]]] = []
    json_folders: dict[str, list[str]] = defaultdict(list)
    celeba: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        kind = annotation_kind(rel)
        if kind is None or is_names_file(rel) or kind in ("yaml", "darknet"):
            continue
        if kind == "json":
            if sidecar_image(rel, keys) is not None:
                sidecars.append(rel)  # applied last: the image's own file wins
            else:
                json_folders[folder_of(rel)].append(rel)
            continue
        if kind == "text" and is_celeba(rel):
            celeba[root_of(rel)].append(rel)
            continue
        units.append(((rel.count("/"), ORDER[kind], rel), kind, [rel]))
    for name, groups in (("json", json_folders), ("celeba", celeba)):
        for group in groups.values():
            group.sort()
            units.append(((group[0].count("/"), ORDER[name], group[0]), name, group))
    for _order, kind, rels in sorted(units):
        yield kind, rels


def _read_table(
    rel: str,
    data: bytes,
    keys: KeyIndex,
    limits: Limits,
    image_column: str,
    open_images: OpenImages,
    result: Annotations,
) -> None:
    """A table, as what its columns say it is: Label Studio's CSV export, a table whose
    image column annotations.image_column names, Open Images' files, a table that names
    its images by path (imagetables.py), or none of these (reported alone)."""
    table = read_table(rel, data, limits.own, limits.file)
    if is_label_studio_table(table.columns):
        rows = ((f"{rel}:{number}", cells) for number, cells in table.rows)
        read_label_studio_items(rel, rows, keys, result)
    elif (image_column and image_column in table.columns) or not open_images.read(rel, table):
        read_image_table(rel, table, keys, result, image_column)


def _read_xml(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    """An XML file, as what its root says it is: Pascal VOC's `<annotation>` or CVAT's
    `<annotations>` (images or tracks)."""
    root = parse_xml(rel, data)
    if is_voc(root):
        read_voc(rel, root, keys, result)
    elif is_cvat(root):
        read_cvat(rel, root, keys, result)
    elif root.tag == "annotations":
        result.unused.append(f"{rel}: CVAT XML with no <image> or <track>: nothing annotated")
    else:
        result.unused.append(
            f"{rel}: XML, but neither Pascal VOC (<annotation>) nor CVAT (<annotations>): "
            f"its root is <{root.tag}>"
        )


def _read_json_folder(
    rels: list[str], whole: Callable[[str], bytes], keys: KeyIndex, result: Annotations
) -> None:
    """A folder's JSON files that are no image's sidecar by name: COCO files, read
    together, Label Studio exports, FiftyOne's labels.json, LabelMe files."""
    copies: list[str] = []  # LabelMe files whose imageData copies an image that is there

    def documents() -> Iterator[tuple[str, dict[str, Any]]]:
        for rel in rels:
            try:
                obj = strict_json(text_of(rel, whole(rel)))
            except ValueError as exc:
                raise AnnotationError(f"{rel}: invalid JSON: {exc}") from None
            result.reading = rel
            if is_coco(obj):
                result.files.append(rel)
                yield rel, obj
            elif not _read_json(rel, obj, keys, result, copies):
                result.unused.append(_unknown_json(rel, obj))

    read_coco(documents(), keys, result)
    note_copies(copies, result)


def _read_json(rel: str, obj: Any, keys: KeyIndex, result: Annotations, copies: list[str]) -> bool:
    """Read a JSON file that is not COCO, if it is a format we read; whether it was."""
    if is_label_studio(obj):
        read_label_studio(rel, obj, keys, result)
    elif is_json_min(obj):
        items = ((f"{rel}: item {number}", item) for number, item in enumerate(obj, 1))
        read_label_studio_items(rel, items, keys, result)
    elif is_cityscapes_polygons(rel, obj):
        read_cityscapes(rel, obj, keys, result)
    elif is_labelme(obj):
        read_labelme(rel, obj, keys, result, copies)
    elif is_fiftyone(obj):
        read_fiftyone(rel, obj, keys, result)
    else:
        return False
    result.files.append(rel)
    return True


def _unknown_json(rel: str, obj: Any) -> str:
    return (
        f"{rel}: not COCO (images and annotations), a Label Studio export (tasks with data "
        "and annotations), FiftyOne's labels.json (labels by image), LabelMe (shapes and "
        "imagePath) or Cityscapes polygons (NAME_gtFine_polygons.json), and no image of "
        "that name"
    )


def _read_text(
    rel: str,
    read: Reader,
    whole: Callable[[str], bytes],
    keys: KeyIndex,
    max_bytes: int,
    yolo: Yolo,
    result: Annotations,
) -> None:
    """A `.txt` (or `.ini`): a list data.yaml names; an image's own file (its labels, its
    words, its text); or a file of a dataset's, which may speak of any image (`texts`)."""
    split = yolo.lists.get(rel)
    if split is not None:
        result.files.append(rel)
        read_list(rel, whole(rel), split, keys, result)
        return
    own = text_image(rel, keys)
    if own is None:
        read_shared(rel, whole, keys, yolo.files, result)
        return
    image, layout = own
    try:
        data = read_bounded(read, rel, max_bytes)
    except AnnotationError as exc:
        result.broken[image] = str(exc)
        return
    read_own(rel, data, image, layout, yolo, result)


def place_reader(root: os.PathLike[str] | str) -> Reader:
    """How the files under the folder `root` are read, within a limit."""

    def read(rel: str, limit: int | None) -> bytes:
        data, size = read_source(os.fspath(root), rel, limit)
        if data is None:
            raise TooLarge(size)
        return data

    return read


def read_place(
    root: os.PathLike[str] | str,
    files: Iterable[str],
    keys: KeyIndex,
    limits: Limits = DEFAULT_LIMITS,
    settled: Collection[str] = (),
    settled_files: Collection[str] = (),
    image_column: str = "",
) -> Annotations:
    """Read annotation files that lie under the folder `root` (see read_annotations)."""
    reader = place_reader(root)
    result = read_annotations(files, reader, keys, limits, settled, settled_files, image_column)
    result.root = Path(root)
    return result
