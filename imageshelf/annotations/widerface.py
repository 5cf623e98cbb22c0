"""WIDER FACE: `wider_face_split/wider_face_train_bbx_gt.txt` (and `_val_`), as the
dataset's readme describes it, and `wider_face_test_filelist.txt`.

A bbx_gt file holds, for each image: its path under `WIDER_train/images/` (the subset the
file's name says), a line with its number of faces, then a line per face:

    x1 y1 w h blur expression illumination invalid occlusion pose

An image with no face has a count of 0 followed by one line of zeros, which is no face.
Each face is an object: `bbox` ([x1, y1, w, h] in pixels), `category` "face", and the
six attributes under the readme's names. The image gets the split the file's name says
(torchvision's `WIDERFace` reads the train file for its train split). The test file
list gives its images the test split.

The readme orders the attributes blur, expression, illumination, invalid, occlusion,
pose (as TFDS and Datumaro read them); torchvision's `WIDERFace` names the last three
occlusion, pose, invalid, and keeps the line of zeros as a face of size 0.
"""

from __future__ import annotations

import re
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, name_of
from .folders import split_of_name
from .lines import Lines, numbers

BBX = re.compile(r"wider_face_(\w+?)_bbx_gt\.txt")
FILE_LIST = re.compile(r"wider_face_(\w+?)_filelist\.txt")
ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
_IMAGE_NAME = re.compile(r"\S+\.(jpe?g|png|bmp)", re.IGNORECASE)

Entry = tuple[int, str, list[list[int | float]]]  # line number, image path, face rows


def subset_of(rel: str) -> tuple[str, str] | None:
    """("bbx" or "list", the subset) for a WIDER FACE file, by its name."""
    name = name_of(rel)
    for kind, pattern in (("bbx", BBX), ("list", FILE_LIST)):
        if (match := pattern.fullmatch(name)) is not None:
            return kind, match[1]
    return None


def looks_like_bbx(lines: Lines) -> bool:
    """An image path, a count, and as many lines of 10 numbers (a file of that shape,
    whatever its name)."""
    if len(lines) < 3 or not _IMAGE_NAME.fullmatch(lines[0][1]) or not lines[1][1].isdigit():
        return False
    try:
        _entries("", lines)
    except AnnotationError:
        return False
    return True


def read_bbx(rel: str, lines: Lines, subset: str, keys: KeyIndex, result: Annotations) -> None:
    split = split_of_name(subset)
    missing = []
    for _n, path, rows in _entries(rel, lines):
        key = _image(rel, path, subset, keys)
        if key is None:
            missing.append(path)
            continue
        values: dict[str, Any] = {"objects": [_face(row) for row in rows]}
        if split is not None:
            values["split"] = split
        result.set(key, values)
    _missing(rel, missing, result)


def read_file_list(
    rel: str, lines: Lines, subset: str, keys: KeyIndex, result: Annotations
) -> None:
    split = split_of_name(subset)
    missing = []
    for _n, path in lines:
        key = _image(rel, path, subset, keys)
        if key is None:
            missing.append(path)
        elif split is not None:
            result.set(key, {"split": split})
    _missing(rel, missing, result)


def _missing(rel: str, missing: list[str], result: Annotations) -> None:
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} listed image(s) not found (first: {missing[0][:80]})"
        )


def _entries(rel: str, lines: Lines) -> list[Entry]:
    out: list[Entry] = []
    at = 0
    while at < len(lines):
        n, path = lines[at]
        if at + 1 >= len(lines) or not lines[at + 1][1].isdigit():
            raise AnnotationError(
                f"{rel}:{n}: {path[:80]!r} is not followed by a count of faces (WIDER FACE: "
                "an image's path, its count of faces, a line per face)"
            )
        count = int(lines[at + 1][1])
        at += 2
        if at + count > len(lines):
            raise AnnotationError(
                f"{rel}:{n}: {path[:80]!r} has {count} face(s), and the file ends after "
                f"{len(lines) - at}"
            )
        rows = [_row(rel, line) for line in lines[at : at + count]]
        at += count
        if count == 0 and at < len(lines) and _zeros(lines[at][1]):
            at += 1  # the line of zeros an image with no face has
        out.append((n, path, rows))
    return out


def _row(rel: str, line: tuple[int, str]) -> list[int | float]:
    values = numbers(line[1].split())
    if values is None or len(values) != 4 + len(ATTRIBUTES):
        raise AnnotationError(
            f"{rel}:{line[0]}: not a WIDER FACE face (x1 y1 w h blur expression illumination "
            f"invalid occlusion pose): {line[1][:80]!r}"
        )
    return values


def _zeros(line: str) -> bool:
    values = numbers(line.split())
    return values is not None and len(values) == 4 + len(ATTRIBUTES) and not any(values)


def _face(row: list[int | float]) -> dict[str, Any]:
    return {"bbox": row[:4], "category": "face", **dict(zip(ATTRIBUTES, row[4:], strict=True))}


def _image(rel: str, path: str, subset: str, keys: KeyIndex) -> str | None:
    """`WIDER_<subset>/images/<path>` beside the file's `wider_face_split/` folder (or
    beside the file), else the one image whose path ends in `path` there."""
    folder = folder_of(rel)
    root = folder_of(folder) if name_of(folder) == "wider_face_split" else folder
    key = join(root, f"WIDER_{subset}/images/{path}")
    if key in keys.keys:
        return key
    found = keys.by_tail(root, path)
    return found[0] if len(found) == 1 else None
