"""Tables whose rows name images by path: Hugging Face's metadata files, lists of image
pairs; and, for a table no reader places, what it looks like and how to place it.

- The image column (tables.image_column: `annotations.image_column` where the table has
  that column, else Hugging Face's first image column or an older name) names the image
  each row describes. Every other `X_file_name` column is, as in `datasets`' imagefolder
  (`folder_based_builder.py`: each `*_file_name` column is an image column named `X`),
  a second image of the same row: the image's paired image in role `X` (a mask, a depth
  map), stored under its record (FORMAT.md, "Paired images"), never an image of its own.
  An `X_file_names` list gives roles `X_0`, `X_1`, ... A paired file that is not in the
  place is reported with its row. A `file_names` list as the image column keeps its
  meaning: each image it names gets the row's fields (HF gives one row with a list of
  images, which are peers: none annotates another).
- A table with no such column whose rows each name two or more images here (`image_a,
  image_b,changed`, a change-detection or verification list) gives each image the row's
  other fields and `pair`: {the other image's column: its key}. Both images stay samples
  of their own (before and after are both photographs; neither annotates the other).
- Any other table is left unread and reported alone: its columns, which of them holds
  image paths if one does, and `annotations.image_column`, which places it.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import ShelfError
from ..store.format import check_role
from .base import AnnotationError, Annotations, KeyIndex, folder_of, join
from .tables import LEGACY_PATH_COLUMNS, Cells, Table, image_column, paths_of

SAMPLE = 200  # rows looked at to tell which columns name images
IMAGE_PARAM = "annotations.image_column"


def read_image_table(
    rel: str, table: Table, keys: KeyIndex, result: Annotations, chosen: str = ""
) -> None:
    """Read a table whose rows name images (above); report one that names none."""
    column, many = image_column(table.columns, chosen)
    if column is not None:
        _read_rows(rel, table, column, many, keys, result)
        return
    named = _naming_columns(rel, table, keys)
    if len(named) >= 2:
        _read_pairs(rel, table, named, keys, result)
    else:
        result.unused.append(unplaced(rel, table.columns, named))


def _read_rows(
    rel: str, table: Table, column: str, many: bool, keys: KeyIndex, result: Annotations
) -> None:
    folder = folder_of(rel)
    roles = _Roles(rel, result)
    seen: dict[str, Cells] = {}
    repeated, first = 0, ""  # rows naming an image an earlier row named otherwise
    for number, cells in table.rows:
        if table.per_row:  # a JSON Lines row may name its image by another column
            column, many = _row_column(rel, number, cells, column, many)
        paths = paths_of(rel, number, column, cells.pop(column, None), many)
        paired = _paired(cells, roles.of(list(cells), column))
        for path in paths:
            key = join(folder, path)
            if key not in keys.keys:
                result.unused.append(f"{rel}:{number}: {path} (no such image)")
                continue
            if key in seen and seen[key] != cells:
                repeated += 1
                first = first or f"{path} (line {number})"
            seen[key] = cells
            result.set(key, cells)
            for role, file in paired.items():
                target = join(folder, file)
                if target in keys.keys and target != key:
                    result.pair(key, role, target)
                else:
                    why = f"the {role} of {key}: no such image"
                    result.unused.append(f"{rel}:{number}: {file} ({why})")
    _note_repeated(rel, repeated, first, result)


def _row_column(rel: str, number: int, cells: Cells, column: str, many: bool) -> tuple[str, bool]:
    if column in cells:
        return column, many
    found, many = image_column(list(cells))
    if found is None:
        raise AnnotationError(
            f"{rel}:{number}: no key names the image (file_name, *_file_name, file_names, "
            f"{', '.join(LEGACY_PATH_COLUMNS)}); its keys are "
            f"{', '.join(repr(c) for c in list(cells)[:8]) or 'none'}"
        )
    return found, many


class _Roles:
    """column -> (role, whether it holds a list), for each `X_file_name` or
    `X_file_names` column beside the image column, per set of columns; one whose X
    cannot be a role is kept as a field, noted once."""

    def __init__(self, rel: str, result: Annotations) -> None:
        self.rel, self.result = rel, result
        self.known: dict[tuple[str, ...], dict[str, tuple[str, bool]]] = {}
        self.refused: set[str] = set()

    def of(self, columns: list[str], primary: str) -> dict[str, tuple[str, bool]]:
        at = (primary, *columns)
        if at not in self.known:
            self.known[at] = {
                name: found
                for name in columns
                if name != primary and (found := self._role(name)) is not None
            }
        return self.known[at]

    def _role(self, name: str) -> tuple[str, bool] | None:
        low = name.lower()
        many = low.endswith("_file_names")
        if not (many or low.endswith("_file_name")):
            return None
        role = name[: -len("_file_names" if many else "_file_name")]
        try:
            check_role(f"{role}_0" if many else role)
        except ShelfError:
            if name not in self.refused:
                self.refused.add(name)
                self.result.note(
                    f"{self.rel}: column {name[:80]!r}: {role[:80]!r} cannot name a paired "
                    "image (1 to 64 characters, no '/'); kept as a field"
                )
            return None
        return role, many


def _paired(cells: Cells, roles: dict[str, tuple[str, bool]]) -> dict[str, str]:
    """role -> path of each paired image a row names, taken out of its cells; a cell
    that is no path (a number) stays a field."""
    paired: dict[str, str] = {}
    for name, (role, many) in roles.items():
        value = cells.get(name)
        if many and isinstance(value, list) and all(isinstance(v, str) for v in value):
            paired.update((f"{role}_{i}", v.strip()) for i, v in enumerate(value) if v.strip())
        elif not many and isinstance(value, str) and value.strip():
            paired[role] = value.strip()
        else:
            continue
        del cells[name]
    return paired


def _naming_columns(rel: str, table: Table, keys: KeyIndex) -> list[str]:
    """The columns whose cells, in the first SAMPLE rows, name images of this place
    (paths relative to the table's folder), in the table's order."""
    head = list(itertools.islice(table.rows, SAMPLE))
    table.rows = itertools.chain(head, table.rows)  # the rows stay whole for the reader
    folder = folder_of(rel)
    return [
        name
        for name in table.columns
        if any(_names_image(cells.get(name), folder, keys) for _number, cells in head)
    ]


def _names_image(value: Any, folder: str, keys: KeyIndex) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    return join(folder, value.strip()) in keys.keys


def _read_pairs(
    rel: str, table: Table, named: list[str], keys: KeyIndex, result: Annotations
) -> None:
    folder = folder_of(rel)
    seen: dict[str, Cells] = {}
    repeated, first = 0, ""
    for number, cells in table.rows:
        images = {c: cells.pop(c).strip() for c in named if isinstance(cells.get(c), str)}
        by_column = {c: join(folder, path) for c, path in images.items() if path}
        for name, key in by_column.items():
            if key not in keys.keys:
                result.unused.append(f"{rel}:{number}: {images[name]} (no such image)")
                continue
            fields = {**cells, "pair": {c: k for c, k in by_column.items() if c != name}}
            if key in seen and seen[key] != fields:
                repeated += 1
                first = first or f"{images[name]} (line {number})"
            seen[key] = fields
            result.set(key, fields)
    _note_repeated(rel, repeated, first, result)


def _note_repeated(rel: str, repeated: int, first: str, result: Annotations) -> None:
    if repeated:
        result.note(
            f"{rel}: {repeated} row(s) name an image an earlier row named, with other "
            f"values; the later row's fields win (first: {first})"
        )


def unplaced(rel: str, columns: list[str], named: list[str]) -> str:
    """Why a table is not read, in the words of what it looks like, and what places it."""
    if not columns:
        return f"{rel}: an empty table (no header, no rows); not read"
    shown = ", ".join(repr(c[:60]) for c in columns[:8])
    if len(columns) > 8:
        shown += f" and {len(columns) - 8} more"
    if named:
        return (
            f"{rel}: a table of columns {shown}; its column {named[0][:60]!r} names images "
            f"here but no image column is named as Hugging Face names one (file_name); "
            f"not read: set {IMAGE_PARAM}: {named[0][:60]} in params.yaml to read it"
        )
    return (
        f"{rel}: a table of columns {shown}, none of which names an image here "
        f"(file_name, *_file_name, file_names, {', '.join(LEGACY_PATH_COLUMNS)}; Open "
        f"Images' ImageID); not read: set {IMAGE_PARAM} in params.yaml to the column "
        "that does"
    )
