"""DOTA: oriented boxes of aerial images, as DOTA_devkit's `parse_dota_poly` reads them.

`labelTxt/P0001.txt` holds the objects of `images/P0001.png` (`labelTxt-v1.0/`,
`labelTxt-v1.5/` too; and `labelTxt-v1.0/labelTxt/` beside `images/`). It may start with
`imagesource:GoogleEarth` and `gsd:0.146` (metres a pixel), then one object a line:

    x1 y1 x2 y2 x3 y3 x4 y4 category difficult

Each object: `segmentation`, its four corners in pixels as COCO holds a polygon
([[x1, y1, ..., x4, y4]], in the file's order); `bbox`, their extent ([x, y, width,
height]); `category`; `difficult` (0 where the line has none, as the devkit gives it).
The header lines are `dota`: {"imagesource": ..., "gsd": ...}. A line of fewer than 9
values, which the devkit skips, is skipped and reported.
"""

from __future__ import annotations

from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, name_of
from .lines import Lines, extent, finite, numbers
from .values import typed

HEADER = ("imagesource", "gsd")


def label_image(rel: str, keys: KeyIndex) -> str | None:
    """The image of a file in a `labelTxt*` folder: `images/NAME.*` beside the folder
    (or beside the folder above, for `labelTxt-v1.0/labelTxt/`)."""
    folder, _, name = rel.rpartition("/")
    if not name_of(folder).startswith("labelTxt"):
        return None
    stem, parent = name[: -len(".txt")], folder_of(folder)
    found = keys.one_by_stem(join(parent, "images"), stem)
    if found is None and name_of(parent).startswith("labelTxt"):
        found = keys.one_by_stem(join(folder_of(parent), "images"), stem)
    return found


def where(rel: str) -> str | None:
    folder, _, name = rel.rpartition("/")
    if not name_of(folder).startswith("labelTxt"):
        return None
    return f"{join(folder_of(folder), 'images')}/{name[:-4]}.*"


def _header(line: str) -> tuple[str, str] | None:
    name, colon, value = line.partition(":")
    return (name.strip(), value.strip()) if colon and name.strip() in HEADER else None


def is_dota(lines: Lines) -> bool:
    """Whether the lines read as DOTA's: header lines, then objects of 8 numbers, a
    category and an optional difficult flag."""
    for _n, line in lines:
        if _header(line) is not None:
            continue
        cells = line.split()
        if len(cells) not in (9, 10) or numbers(cells[:8]) is None or finite(cells[8]) is not None:
            return False
    return bool(lines)


def read_label(rel: str, lines: Lines, image: str, result: Annotations) -> None:
    header: dict[str, Any] = {}
    objects: list[dict[str, Any]] = []
    skipped = []
    for n, line in lines:
        found = _header(line)
        if found is not None:
            header[found[0]] = None if found[1] in ("", "null", "None") else typed(found[1])
            continue
        cells = line.split()
        if len(cells) < 9:
            skipped.append(n)
            continue
        objects.append(_object(rel, n, cells))
    if skipped:
        result.note(
            f"{rel}: line(s) {', '.join(map(str, skipped[:5]))} hold fewer than 9 values: "
            "skipped, as DOTA_devkit skips them"
        )
    values: dict[str, Any] = {"objects": objects}
    if header:
        values["dota"] = header
    result.set(image, values)


def _object(rel: str, n: int, cells: list[str]) -> dict[str, Any]:
    corners = numbers(cells[:8])
    if corners is None or len(cells) > 10:
        raise AnnotationError(
            f"{rel}:{n}: not a DOTA object (x1 y1 x2 y2 x3 y3 x4 y4 category difficult): "
            f"{' '.join(cells)[:80]!r}"
        )
    return {
        "bbox": extent(corners),
        "category": cells[8],
        "difficult": typed(cells[9]) if len(cells) == 10 else 0,
        "segmentation": [corners],
    }
