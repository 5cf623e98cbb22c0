"""Open Images' CSV files, as the dataset ships them and as FiftyOne's Open Images
layout keeps them (`data/ID.jpg`, `labels/detections.csv`, `metadata/classes.csv`),
read as FiftyOne's `OpenImagesDatasetImporter` reads them (fiftyone/utils/openimages.py),
with every column kept.

- A table with an `ImageID` column (`ImageId` in the point labels) speaks of the image
  under its dataset's folder (the table's, or the one above `labels/`) whose name,
  without its suffix, is that ID. FiftyOne's `open_images_id` field holds it.
- Boxes (`oidv6-train-annotations-bbox.csv`: `XMin, XMax, YMin, YMax` as fractions of
  the image): `objects`, each `{"bbox": [x, y, w, h] in pixels, "category": the class's
  name, ...every other column as named: LabelName, Source, Confidence, XMin, ...,
  IsOccluded, IsTruncated, IsGroupOf, IsDepiction, IsInside}` (FiftyOne turns the Is*
  flags into booleans; they are kept as written, 0, 1 or -1).
- Image-level labels (`LabelName, Confidence`, no box): `positive_labels` (confidence
  over 0.1, FiftyOne's threshold) and `negative_labels`, each a list of `{"label": the
  class's name, ...every other column}`.
- Any other table keyed by ImageID (the image list with `OriginalURL`, `Rotation`, ...):
  a row's columns are its image's fields, as a metadata table's are.
- Class names: `class-descriptions-boxable.csv` (no header: `/m/011k07,Tortoise`),
  `oidv7-class-descriptions.csv` (`LabelName,DisplayName`), the attribute descriptions,
  FiftyOne's `metadata/classes.csv`: each names the classes of every table under its
  dataset's folder (its own, or the one above `metadata/`). A label no such file names
  keeps its id as its name, and the report says so.

Rows whose ID names no image here, or several, are counted and reported once per table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import Annotations, KeyIndex, folder_of, name_of, rounded
from .tables import Cells, Table

_LABEL_ID = re.compile(r"^/[mgt]/[0-9a-z_]+$")  # Freebase and Knowledge Graph ids
_DESCRIPTIONS = re.compile(r"^(oidv\d+-)?(class|attributes?)-descriptions?(-boxable)?\.csv$")
BOX = ("XMin", "XMax", "YMin", "YMax")
POSITIVE = 0.1  # FiftyOne: a label with a higher confidence is positive


def is_descriptions(rel: str) -> bool:
    """A file of Open Images class names, told by its name (its changes rename the
    classes of every table beside it: reach.gives_rows)."""
    name = name_of(rel).lower()
    return bool(_DESCRIPTIONS.match(name)) or (
        name == "classes.csv" and name_of(folder_of(rel)) == "metadata"
    )


def _id_column(columns: list[str]) -> str | None:
    return next((c for c in columns if c.lower() == "imageid"), None)


def _root(rel: str, inner: str) -> str:
    """The dataset's folder: the file's, or the one above it if it is `inner`."""
    folder = folder_of(rel)
    return folder_of(folder) if name_of(folder) == inner else folder


@dataclass
class OpenImages:
    """What a place's Open Images files say, read table by table; class names are
    looked up once every file is read (`finish`), wherever their file lies."""

    keys: KeyIndex
    result: Annotations
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # root -> id -> name
    labels: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # rel -> root, ids
    stems: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # root -> stem -> keys
    seen: dict[str, dict[str, str]] = field(default_factory=dict)  # names_for, by root

    def read(self, rel: str, table: Table) -> bool:
        """Read `table` if it is an Open Images file; whether it was."""
        if self._is_names(rel, table.columns):
            self._read_names(rel, table)
            return True
        column = _id_column(table.columns)
        if column is None:
            return False
        root = _root(rel, "labels")
        by_image = self._rows_by_image(rel, table, column, root)
        columns = set(table.columns)
        if columns.issuperset(("LabelName", *BOX)):
            self._boxes(rel, root, by_image)
        elif columns.issuperset(("LabelName", "Confidence")):
            self._image_labels(rel, root, by_image)
        else:
            self._fields(rel, by_image)
        return True

    def _is_names(self, rel: str, columns: list[str]) -> bool:
        headerless = len(columns) == 2 and bool(_LABEL_ID.match(columns[0]))
        return headerless or (is_descriptions(rel) and columns[:2] == ["LabelName", "DisplayName"])

    def _read_names(self, rel: str, table: Table) -> None:
        names = self.names.setdefault(_root(rel, "metadata"), {})
        self.seen.clear()
        first, second = table.columns[:2]
        if _LABEL_ID.match(first):  # no header: the first line is a class too, as written
            names[first] = table.header[1] if len(table.header) == 2 else second
        for _number, cells in table.rows:
            label, name = cells.get(first), cells.get(second)
            if isinstance(label, str) and isinstance(name, str):
                names[label] = name

    def _rows_by_image(
        self, rel: str, table: Table, column: str, root: str
    ) -> dict[str, list[Cells]]:
        """The rows of each image the ID column names; those of no image here, or of
        several, reported once."""
        stems = self._stems(root)
        by_image: dict[str, list[Cells]] = defaultdict(list)
        missing: dict[str, int] = {}
        ambiguous: dict[str, list[str]] = {}
        for _number, cells in table.rows:
            image_id = str(cells.pop(column, "")).strip()
            found = stems.get(image_id, [])
            if len(found) == 1:
                by_image[found[0]].append(cells)
            elif found:
                ambiguous.setdefault(image_id, found)
            else:
                missing[image_id] = missing.get(image_id, 0) + 1
        for key in by_image:
            self.result.set(key, {"open_images_id": _stem(key)})
        if missing:
            first = next(iter(missing))[:40] or "(empty)"
            self.result.unused.append(
                f"{rel}: {sum(missing.values())} row(s) for {len(missing)} ImageID(s) with "
                f"no image of that name under {root or 'the top'}/ (first: {first})"
            )
        if ambiguous:
            image_id, found = next(iter(ambiguous.items()))
            self.result.unused.append(
                f"{rel}: {len(ambiguous)} ImageID(s) name more than one image (first: "
                f"{image_id[:40]}: {', '.join(found[:3])}); their rows are not read"
            )
        return by_image

    def _stems(self, root: str) -> dict[str, list[str]]:
        if root not in self.stems:
            stems: dict[str, list[str]] = defaultdict(list)
            for key in self.keys.under(f"{root}/") if root else sorted(self.keys.keys):
                stems[_stem(key)].append(key)
            self.stems[root] = stems
        return self.stems[root]

    def _boxes(self, rel: str, root: str, by_image: dict[str, list[Cells]]) -> None:
        ids = self.labels.setdefault(rel, (root, set()))[1]
        unusable = 0
        for key, rows in by_image.items():
            for cells in rows:
                ids.add(str(cells.get("LabelName")))
                unusable += _fractions(cells) is None
            self.result.set_sized(key, "objects", self._objects(root, rows))
        if unusable:
            self.result.note(
                f"{rel}: {unusable} box(es) whose XMin, XMax, YMin, YMax are not numbers "
                "from 0 to 1; kept as written, without bbox"
            )

    def _objects(self, root: str, rows: list[Cells]) -> Callable[[int, int], list[dict[str, Any]]]:
        def compute(width: int, height: int) -> list[dict[str, Any]]:
            names = self.names_for(root)
            return [_box(cells, names, width, height) for cells in rows]

        return compute

    def _image_labels(self, rel: str, root: str, by_image: dict[str, list[Cells]]) -> None:
        ids = self.labels.setdefault(rel, (root, set()))[1]
        for key, rows in by_image.items():
            ids.update(str(cells.get("LabelName")) for cells in rows)
            self.result.set_sized(key, "positive_labels", self._labels(root, rows, True))
            self.result.set_sized(key, "negative_labels", self._labels(root, rows, False))

    def _labels(self, root: str, rows: list[Cells], positive: bool) -> Callable[[int, int], Any]:
        def compute(_width: int, _height: int) -> list[dict[str, Any]]:
            names = self.names_for(root)
            return [
                {"label": names.get(str(cells["LabelName"]), cells["LabelName"]), **cells}
                for cells in rows
                if _confident(cells.get("Confidence")) == positive
            ]

        return compute

    def _fields(self, rel: str, by_image: dict[str, list[Cells]]) -> None:
        repeated = [key for key, rows in by_image.items() if len(rows) > 1]
        for key, rows in by_image.items():
            for cells in rows:
                self.result.set(key, cells)
        if repeated:
            self.result.note(
                f"{rel}: {len(repeated)} image(s) have more than one row; the later row's "
                f"fields win (first: {repeated[0]})"
            )

    def names_for(self, root: str) -> dict[str, str]:
        """The class names a table under `root` sees: those of every descriptions file
        at or above it, the nearest's first. Worked out once per root (each image's
        boxes ask)."""
        merged = self.seen.get(root)
        if merged is None:
            merged = {}
            for folder in sorted(self.names, key=len):
                if not folder or root == folder or root.startswith(folder + "/"):
                    merged.update(self.names[folder])
            self.seen[root] = merged
        return merged

    def finish(self) -> None:
        """Say which tables' labels no descriptions file names (once all are read)."""
        for rel, (root, ids) in sorted(self.labels.items()):
            names = self.names_for(root)
            unnamed = sorted(ids - set(names))
            if unnamed and not names:
                self.result.note(
                    f"{rel}: no class descriptions (class-descriptions-boxable.csv) in its "
                    f"dataset's folder; each label is named by its id (first: {unnamed[0][:40]})"
                )
            elif unnamed:
                self.result.note(
                    f"{rel}: {len(unnamed)} label id(s) no class descriptions file names; "
                    f"each is named by its id (first: {unnamed[0][:40]})"
                )


def _stem(key: str) -> str:
    name = name_of(key)
    return name.rpartition(".")[0] or name


def _confident(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > POSITIVE


def _fractions(cells: Cells) -> tuple[float, float, float, float] | None:
    """A box's XMin, XMax, YMin, YMax, if they are fractions of the image in order."""
    values = [cells.get(name) for name in BOX]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    xmin, xmax, ymin, ymax = (float(v) for v in values)  # type: ignore[arg-type]
    if not (0 <= xmin <= xmax <= 1 and 0 <= ymin <= ymax <= 1):
        return None  # NaN too
    return xmin, xmax, ymin, ymax


def _box(cells: Cells, names: dict[str, str], width: int, height: int) -> dict[str, Any]:
    label = cells.get("LabelName")
    obj: dict[str, Any] = {"category": names.get(str(label), label), **cells}
    fractions = _fractions(cells)
    if fractions is not None:
        xmin, xmax, ymin, ymax = fractions
        obj["bbox"] = [
            rounded(xmin * width),
            rounded(ymin * height),
            rounded((xmax - xmin) * width),
            rounded((ymax - ymin) * height),
        ]
    return obj
