"""KITTI object detection, as the KITTI devkit's readme describes its label files and
torchvision's `Kitti` dataset reads them.

`training/label_2/000000.txt` holds the labels of `training/image_2/000000.png` (any
`label_N/` beside `image_N/`), one object a line, 15 values separated by spaces, and a
16th, `score`, in a results file:

    type truncated occluded alpha left top right bottom height width length x y z rotation_y

Each object keeps every value under the devkit's name: `category` (the type: Car, Van,
Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc, or DontCare, a region left
unlabelled that a detector is neither rewarded nor punished for), `truncated` (0..1),
`occluded` (0 fully visible .. 3 unknown), `alpha` (the observation angle), `bbox` (the
2D box, as COCO's [x, y, width, height] in pixels, where the file has left, top, right,
bottom), `dimensions` ([height, width, length] in metres), `location` ([x, y, z] in the
camera's coordinates, metres), `rotation_y`, and `score` where there is one.

`training/calib/000000.txt` is that image's calibration (`P0:` .. `P3:`, `R0_rect:`,
`Tr_velo_to_cam:`, `Tr_imu_to_velo:`, each a row-major matrix): `calib`, a list of
numbers per name.
"""

from __future__ import annotations

import re
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, join, rounded
from .lines import Lines, finite, numbers

_LABELS = re.compile(r"label_(\d+)")
FIELDS = 15  # the values of a label line, without a score


def label_image(rel: str, keys: KeyIndex) -> tuple[str, str] | None:
    """The image a KITTI label or calibration file belongs to, and which it is ("kitti"
    or "calib"): `label_N/NAME.txt` is `image_N/NAME.*`'s, `calib/NAME.txt` `image_2/NAME.*`'s."""
    folder, _, name = rel.rpartition("/")
    parent, _, here = folder.rpartition("/")
    stem = name[: -len(".txt")]
    if (match := _LABELS.fullmatch(here)) is not None:
        found = keys.one_by_stem(join(parent, f"image_{match[1]}"), stem)
        return None if found is None else (found, "kitti")
    if here == "calib":
        found = keys.one_by_stem(join(parent, "image_2"), stem)
        return None if found is None else (found, "calib")
    return None


def where(rel: str) -> str | None:
    """Where the image of a file laid out as KITTI's would be, to say so when it is not."""
    folder, _, name = rel.rpartition("/")
    parent, _, here = folder.rpartition("/")
    if (match := _LABELS.fullmatch(here)) is not None:
        return f"{join(parent, f'image_{match[1]}')}/{name[:-4]}.*"
    return f"{join(parent, 'image_2')}/{name[:-4]}.*" if here == "calib" else None


def is_kitti(lines: Lines) -> bool:
    """Whether every line reads as a KITTI object: a type, then 14 numbers (15 with a
    score)."""
    return bool(lines) and all(_is_row(line.split()) for _n, line in lines)


def _is_row(cells: list[str]) -> bool:
    return (
        len(cells) in (FIELDS, FIELDS + 1)
        and finite(cells[0]) is None
        and numbers(cells[1:]) is not None
    )


def read_label(rel: str, lines: Lines, image: str, result: Annotations) -> None:
    """An image's label file into its `objects`; a line that is not KITTI's raises,
    naming it (the caller rejects that one image)."""
    result.set(image, {"objects": [_object(rel, n, line) for n, line in lines]})


def _object(rel: str, n: int, line: str) -> dict[str, Any]:
    cells = line.split()
    values = numbers(cells[1:]) if _is_row(cells) else None
    if values is None:
        raise AnnotationError(
            f"{rel}:{n}: not a KITTI object (type, then 14 numbers: truncated occluded alpha "
            f"left top right bottom height width length x y z rotation_y): {line[:80]!r}"
        )
    truncated, occluded, alpha, left, top, right, bottom = values[:7]
    out: dict[str, Any] = {
        "category": cells[0],
        "truncated": truncated,
        "occluded": occluded,
        "alpha": alpha,
        "bbox": [left, top, rounded(right - left), rounded(bottom - top)],
        "dimensions": values[7:10],
        "location": values[10:13],
        "rotation_y": values[13],
    }
    if len(values) == FIELDS:
        out["score"] = values[14]
    return out


def read_calib(rel: str, lines: Lines, image: str, result: Annotations) -> None:
    """An image's calibration file into `calib`: {name: [numbers]}."""
    calib: dict[str, list[int | float]] = {}
    for n, line in lines:
        name, colon, rest = line.partition(":")
        values = numbers(rest.split()) if colon and name.strip() else None
        if not values:
            raise AnnotationError(
                f"{rel}:{n}: not a KITTI calibration line (NAME: numbers): {line[:80]!r}"
            )
        calib[name.strip()] = values
    result.set(image, {"calib": calib})
