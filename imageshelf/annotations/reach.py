"""Which images an annotation file reaches (base.Reach), each format's module answering
for its own files, as reader.py sends each file to its module.

- `Own(key)`: an image's own file, by its name: a sidecar (sidecars.py), a label file
  or an image's text (texts.py: YOLO, KITTI, DOTA, ICDAR 2015, NAME.txt).
- `Rows()`: a table or an XML file (tables.py and the modules that place its rows,
  voc.py, cvat.py): the images its rows name, known once it is read
  (`Annotations.keys_by_file`).
- `Below(prefixes)`: YOLO's class names and data.yaml (yolo.py): the images under its
  folder and the folders it names; a dataset's class names or scenes (classes.py): the
  images under its folder.
- `Everything`: a file that combines with the other files of its folder (COCO, Label
  Studio, FiftyOne and LabelMe JSON, Cityscapes polygons), a dataset's text files that
  name images anywhere (lists, MOT, WIDER FACE, CelebA, PaddleOCR), Open Images' class
  descriptions, a data.yaml that names image lists, a file at the top of the place that
  gives meaning to others.

Ingest asks it of the annotation files that are new, changed or gone since its last run,
and looks up in the store again only the images they reach (sources/incoming.py).
"""

from __future__ import annotations

from . import classes, sidecars, texts, yolo
from .base import EVERYTHING, ROWS, KeyIndex, Own, Reach, Reader
from .classes import is_class_file
from .kinds import annotation_kind
from .openimages import is_descriptions
from .yolo import is_names_file


def reach(rel: str, read: Reader, keys: KeyIndex) -> Reach:
    """Which of the images `keys` annotation file `rel` reaches. `read` reads the files
    of its place; it is used only for a file that gives meaning to others (data.yaml),
    as it is now (one that is gone cannot be read: Everything)."""
    own = own_reach(rel, keys)
    if own is not None:
        return own
    if gives_rows(rel):
        return ROWS
    if is_class_file(rel):
        return classes.reach(rel)
    if is_names_file(rel):
        return yolo.reach(rel, read)
    return EVERYTHING


def gives_meaning(rel: str) -> bool:
    """Whether `rel` gives meaning to other files (YOLO's class names and data.yaml, a
    dataset's class names or scenes), told by its name: its reach is `Below` or
    `Everything`."""
    return is_names_file(rel) or is_class_file(rel)


def own_reach(rel: str, keys: KeyIndex) -> Own | None:
    """The one image `rel` is the own file of, told by its name; None for any other."""
    if is_names_file(rel):
        return None
    kind = annotation_kind(rel)
    if kind == "text":
        return texts.reach(rel, keys)
    if kind == "json":
        return sidecars.reach(rel, keys)
    return None


def gives_rows(rel: str) -> bool:
    """Whether `rel` reaches exactly the images its rows name (`Rows`), told by its name:
    a table or an XML file, but not a dataset's class names, which name the masks or
    boxes of every image below them."""
    kind = annotation_kind(rel)
    return kind in ("table", "xml") and not is_class_file(rel) and not is_descriptions(rel)
