"""Class names for segmentation masks: which classes each mask holds, named as its
dataset names them.

A class-id mask (roles `mask`, `coarse_mask`, `train_ids`: paired.py) is decoded once,
when ingest first sees it new or changed, for the values its pixels take
(`mask_values`: a palette or grey mask's ids, an RGB mask's colours, as CamVid codes
its classes); its bytes are stored as they came. Its image gets the field
`ROLE_classes` (`mask_classes`): {id as text, or "#rrggbb": class name} for the values
present, null for a value the table does not name.

Where the names come from, the first found:

- the dataset's own file, in its root folder or one above: ADE20K's `objectInfo150.csv`
  or `.txt` (Idx, Name; 0 is "other"), CamVid's `class_dict.csv` (name, r, g, b),
  CVAT's and Datumaro's VOC `labelmap.txt` (`name:r,g,b:parts:actions`);
- `annotations.mask_classes` in params.yaml: a list of names, the index the id;
- built in: Pascal VOC's 21 classes (the devkit's; 255 void) and Cityscapes' labelIds
  and trainIds (cityscapesScripts' `labels.py`).

ADE20K's `sceneCategories.txt` (`NAME scene` per line) gives each image under its
`images/` folder a `scene`. These files are read as what they are, never as a metadata
table or an image list (reader.py asks `is_class_file` first).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..images.decoding import NotDecodedError, bounded
from .base import EVERYTHING, Annotations, Below, Everything, KeyIndex, folder_of, name_of, text_of
from .pairs import ClassTable, Layout, Pairs, Present

if TYPE_CHECKING:
    from PIL.Image import Image

# The paired images that hold class ids (paired.py's roles; gtCoarse's are coarse_*).
CLASS_ROLES = frozenset({"mask", "coarse_mask", "train_ids", "coarse_train_ids"})
# Distinct values beyond which a mask is no class map (an RGB mask resized with
# smoothing, a photo): no field, a note instead.
MAX_VALUES = 1024

_VOC = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
# labels.py: name, labelId; license plate's -1 never appears in a mask.
_CITYSCAPES = [
    "unlabeled",
    "ego vehicle",
    "rectification border",
    "out of roi",
    "static",
    "dynamic",
    "ground",
    "road",
    "sidewalk",
    "parking",
    "rail track",
    "building",
    "wall",
    "fence",
    "guard rail",
    "bridge",
    "tunnel",
    "pole",
    "polegroup",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "caravan",
    "trailer",
    "train",
    "motorcycle",
    "bicycle",
]
# labels.py's trainIds 0-18, the evaluated classes; 255 (ignored) is its first such label.
_TRAIN_IDS = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
]

VOC = ClassTable({**dict(enumerate(_VOC)), 255: "void"}, "Pascal VOC's 21 classes (built in)")
CITYSCAPES = ClassTable(
    {**dict(enumerate(_CITYSCAPES)), -1: "license plate"}, "Cityscapes' labelIds (built in)"
)
CITYSCAPES_TRAIN = ClassTable(
    {**dict(enumerate(_TRAIN_IDS)), 255: "unlabeled"}, "Cityscapes' trainIds (built in)"
)
BUILT_IN = {
    ("Pascal VOC", "mask"): VOC,
    ("Cityscapes", "mask"): CITYSCAPES,
    ("Cityscapes", "coarse_mask"): CITYSCAPES,
    ("Cityscapes", "train_ids"): CITYSCAPES_TRAIN,
    ("Cityscapes", "coarse_train_ids"): CITYSCAPES_TRAIN,
}
SHIPPED = {"ADE20K": "objectInfo150.csv", "CamVid": "class_dict.csv"}  # for the note
PARAM = "annotations.mask_classes"

_SCENES = "scenecategories.txt"
_TABLES = ("objectinfo150.csv", "objectinfo150.txt", "class_dict.csv", "labelmap.txt")


def is_class_file(rel: str) -> bool:
    """A file of class names or of scenes (above), told by its name."""
    name = name_of(rel).lower()
    return name in _TABLES or name == _SCENES


def reach(rel: str) -> Below | Everything:
    """A class file (is_class_file) reaches the images below its folder, told by its
    path alone: it names the masks of the datasets rooted there or below
    (MaskClasses.table), and sceneCategories.txt the images under images/ beside it. At
    the top of the place, every image."""
    folder = folder_of(rel)
    return Below((f"{folder}/",)) if folder else EVERYTHING


def read_class_file(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    """A class table into `result.class_tables` (by its folder), or a scene list into
    `scene` fields. One that is not what its name says is listed unused, with why:
    class names are no reason to stop an ingest."""
    name = name_of(rel).lower()
    text = text_of(rel, data)
    if name == _SCENES:
        _read_scenes(rel, text, keys, result)
        return
    try:
        if name == "class_dict.csv":
            table = _colour_table(rel, text)
        elif name == "labelmap.txt":
            table = _labelmap(rel, text)
        else:
            table = _idx_table(rel, text)
    except ValueError as exc:
        result.unused.append(f"{rel}: not the class table its name says ({exc})")
        return
    if result.class_tables.setdefault(folder_of(rel), table) is not table:
        first = result.class_tables[folder_of(rel)].source
        result.unused.append(f"{rel}: a second class table in its folder; {first} names")


def _rows(text: str) -> tuple[list[str], list[list[str]]]:
    """A CSV's (or, with a tab in its header, a TSV's) lowered header and its rows."""
    lines = [line for line in text.splitlines() if line.strip()]
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    return ([cell.lower() for cell in rows[0]] if rows else []), rows[1:]


def _idx_table(rel: str, text: str) -> ClassTable:
    """ADE20K's objectInfo150 (Idx, Ratio, Train, Val, Name): 0 is "other" (its README:
    "0 refers to other objects")."""
    header, rows = _rows(text)
    if "idx" not in header or "name" not in header:
        raise ValueError(f"no Idx and Name columns: {', '.join(header[:6]) or 'empty'}")
    idx, at = header.index("idx"), header.index("name")
    names: dict[Any, str] = {0: "other"}
    for number, row in enumerate(rows, 2):
        if len(row) <= max(idx, at) or not row[idx].isdigit() or not row[at]:
            raise ValueError(f"row {number} is not an id and a name")
        names[int(row[idx])] = row[at]
    return ClassTable(names, rel)


def _colour_table(rel: str, text: str) -> ClassTable:
    """CamVid's class_dict.csv: name, r, g, b."""
    header, rows = _rows(text)
    if not {"name", "r", "g", "b"} <= set(header):
        raise ValueError(f"no name, r, g, b columns: {', '.join(header[:6]) or 'empty'}")
    at = [header.index(column) for column in ("name", "r", "g", "b")]
    names: dict[Any, str] = {}
    for number, row in enumerate(rows, 2):
        if len(row) <= max(at) or not row[at[0]]:
            raise ValueError(f"row {number} is not a name and a colour")
        names.setdefault(_colour([row[i] for i in at[1:]], number), row[at[0]])
    return ClassTable(names, rel, by_colour=True)


def _labelmap(rel: str, text: str) -> ClassTable:
    """Datumaro's (CVAT's "Segmentation mask") labelmap.txt: `name:r,g,b:parts:actions`
    per class, `#` comments; the masks are painted in those colours."""
    names: dict[Any, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        if not name.strip():
            raise ValueError(f"line {number} is not name:r,g,b")
        names.setdefault(_colour(rest.partition(":")[0].split(","), number), name.strip())
    if not names:
        raise ValueError("no classes")
    return ClassTable(names, rel, by_colour=True)


def _colour(cells: list[str], number: int) -> str:
    channels = [int(cell) for cell in cells if cell.strip().isdigit()]
    if len(cells) != 3 or len(channels) != 3 or max(channels) > 255:
        raise ValueError(f"line {number}: not a colour of three values 0 to 255")
    return "#{:02x}{:02x}{:02x}".format(*channels)


def _read_scenes(rel: str, text: str, keys: KeyIndex, result: Annotations) -> None:
    """ADE20K's sceneCategories.txt: `ADE_train_00000001 airport_terminal` per line, the
    image named by its stem under the `images/` folder beside the file."""
    folder = folder_of(rel)
    images = f"{folder}/images/" if folder else "images/"
    by_stem = {name_of(key).rpartition(".")[0]: key for key in keys.under(images)}
    missing, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        cells = line.split()
        if len(cells) == 2 and cells[0] in by_stem:
            result.set(by_stem[cells[0]], {"scene": cells[1]})
        elif len(cells) == 2:
            missing.append(cells[0])
        elif cells:
            bad.append(number)
    if bad:
        result.unused.append(f"{rel}: {len(bad)} line(s) not a name and a scene (line {bad[0]})")
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} scene(s) of no image under {images} (first: {missing[0][:80]})"
        )


def mask_values(data: bytes, max_pixels: int) -> Present | str:
    """The values a mask's pixels take, sorted: ids for a palette, grey or integer
    image, "#rrggbb" colours for an RGB one; or a sentence saying why it holds no class
    map. Decoded once, bounded as every decode here is (images/decoding.py, the pixel limit)."""
    try:
        with bounded(data, max_pixels) as im:
            return _values(im)
    except NotDecodedError as exc:
        return "over ingest.max_pixels" if exc.code == "too_large" else exc.reason


def _values(im: Image) -> Present | str:
    if im.mode.startswith("I;16"):
        im = im.convert("I")  # getcolors reads 32-bit, not 16-bit, integers
    elif im.mode == "RGBA":
        im = im.convert("RGB")
    elif im.mode not in ("P", "L", "1", "I", "RGB"):
        return f"a {im.mode} image: neither class ids nor colours"
    # P and L: a histogram, one pass; RGB: a hash of colours, stopped past the limit.
    counted = im.getcolors(MAX_VALUES)
    if counted is None:
        return f"over {MAX_VALUES:,} distinct values: no class map"
    values: list[Any] = sorted(value for _count, value in counted)
    if im.mode == "RGB":
        return tuple("#{:02x}{:02x}{:02x}".format(*value) for value in values)
    return tuple(int(value) for value in values)


@dataclass
class MaskClasses:
    """Which table names the masks of each image: its dataset's file (in the root its
    layout gives, or a folder above), else the param, else a built-in table."""

    pairs: Pairs
    tables: Mapping[str, ClassTable]  # the class files read, by folder
    named: Sequence[str] = ()  # annotations.mask_classes
    used: set[str] = field(default_factory=set)  # the folders whose table named a mask

    def __post_init__(self) -> None:
        self.param = ClassTable(dict(enumerate(self.named)), PARAM) if self.named else None

    def layout(self, image: str) -> Layout:
        """How `image` was paired; one no layout paired (a table's column) is its top
        folder's."""
        found = self.pairs.layout_of.get(image)
        if found is not None:
            return found
        return Layout("", image.split("/")[0] if "/" in image else "")

    def table(self, image: str, role: str) -> ClassTable | None:
        layout = self.layout(image)
        if role.endswith("train_ids"):  # Cityscapes' own ids: no file or param names them
            return BUILT_IN.get((layout.name, role))
        folder: str | None = layout.root
        while folder is not None:
            if folder in self.tables:
                self.used.add(folder)
                return self.tables[folder]
            folder = folder_of(folder) if folder else None
        if self.param is not None:
            return self.param
        return BUILT_IN.get((layout.name, role))

    def value(self, image: str, role: str, present: Present | str) -> tuple[Any, str | None]:
        """(the field's value or None, a note or None) for the mask of `image` in `role`
        whose pixels hold `present` (mask_values)."""
        table = self.table(image, role)
        if table is None:
            return None, None  # said once for its dataset folder: notes()
        named = present if isinstance(present, str) else table.name(present)
        if isinstance(named, str):
            return None, f"the {role} of {image}: {named}; {role}_classes not set"
        return named, None

    def notes(self) -> tuple[list[str], list[str]]:
        """(notes, unused): each dataset folder whose masks have no class names, or whose
        built-in names the param replaces; each class table no mask uses. The same on
        every run over the same files: the report compares them."""
        nameless: dict[Layout, int] = defaultdict(int)
        replaced: set[Layout] = set()
        for image, roles in self.pairs.of_image.items():
            for role in roles.keys() & CLASS_ROLES:
                table, layout = self.table(image, role), self.layout(image)
                if table is None:
                    nameless[layout] += 1
                elif table.source == PARAM and (layout.name, role) in BUILT_IN:
                    replaced.add(layout)
        notes = [_nameless(layout, count) for layout, count in sorted(nameless.items())]
        for layout in sorted(replaced):
            built_in = BUILT_IN[(layout.name, "mask")].source
            root = layout.root or "."
            notes.append(f"{root}: {layout.name} masks named by {PARAM}, not {built_in}")
        unused = [
            f"{table.source}: class names, but no mask in or below its folder"
            for folder, table in sorted(self.tables.items())
            if folder not in self.used
        ]
        return notes, unused


def _nameless(layout: Layout, count: int) -> str:
    shipped = SHIPPED.get(layout.name)
    what = f"{layout.name} mask(s)" if layout.name else "paired mask(s)"
    return (
        f"{layout.root or '.'}: {count} {what} whose ids have no class names "
        f"(no {shipped or 'class table'} there): list them in {PARAM} in params.yaml"
    )
