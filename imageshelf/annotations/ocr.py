"""Text in images: ICDAR 2015's ground truth and PaddleOCR's label files, as PaddleOCR's
docs describe them (its `gen_label.py` turns the first into the second).

- ICDAR 2015 (incidental scene text): `ch4_training_localization_transcription_gt/
  gt_img_1.txt` holds the words of `ch4_training_images/img_1.jpg` (`gt_NAME.txt` is
  NAME's, beside it or in a folder beside its own; where two such folders hold a NAME,
  the one whose name says the same split: `training`, `test`). UTF-8 with a BOM, a word
  a line: `x1,y1,x2,y2,x3,y3,x4,y4,transcription` (the transcription may hold commas).
- PaddleOCR recognition (`rec_gt_train.txt`): `path<TAB>text` a line: the image's `text`.
- PaddleOCR detection (`Label.txt` of PPOCRLabel, `train_icdar2015_label.txt`):
  `path<TAB>[{"transcription": ..., "points": [[x, y], ...]}, ...]` a line.
  Paths are relative to the label file's folder or any folder above it (PaddleOCR's
  `data_dir`). A label file whose name says a split (`rec_gt_train.txt`) gives it.

Each word is an object: `category` "text", `transcription`, `segmentation` (its corners
in pixels, as COCO holds a polygon), `bbox` (their extent), every other field of a
PaddleOCR region under its name (`difficult`, `key_cls`), and `ignore: true` for a
"do not care" region (`###`, and PaddleOCR's `*`), which trainers skip.
"""

from __future__ import annotations

import posixpath
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, name_of, number, resolve
from .folders import split_of_name
from .lines import Lines, extent, numbers
from .values import strict_json

# A gt_ file's image is looked for in the folders beside its own, where a dataset keeps
# a few (ICDAR: images, ground truth, for training and test); a folder among thousands
# is no such layout, and looking in each for each file would cost their product.
MAX_BESIDE = 64
DO_NOT_CARE = ("###", "*")  # PaddleOCR's DetLabelEncode ignores both; ICDAR writes ###
PPOCRLABEL_STATE = "fileState.txt"  # PPOCRLabel: which images a person has checked


# ------------------------------------------------------------------ ICDAR 2015


def icdar_image(rel: str, keys: KeyIndex) -> str | None:
    """The image `gt_NAME.txt` speaks of: NAME beside it, or in one folder beside its
    folder (the one whose name says the same split, where several hold a NAME; among up
    to MAX_BESIDE folders)."""
    folder, _, name = rel.rpartition("/")
    if not name.startswith("gt_"):
        return None
    stem = name[3 : -len(".txt")]
    here = keys.one_by_stem(folder, stem)
    beside = keys.folders_in(folder_of(folder))
    if here is not None or not folder or len(beside) > MAX_BESIDE:
        return here
    found = [
        key
        for other in beside
        if other != folder and (key := keys.one_by_stem(other, stem)) is not None
    ]
    if len(found) > 1:
        split = split_of_name(name_of(folder))
        found = [k for k in found if split and split_of_name(name_of(folder_of(k))) == split]
    return found[0] if len(found) == 1 else None


def is_icdar(lines: Lines) -> bool:
    return bool(lines) and all(_corners(line) is not None for _n, line in lines)


def _corners(line: str) -> tuple[list[int | float], str] | None:
    cells = line.split(",", 8)
    corners = numbers(cells[:8]) if len(cells) == 9 else None
    return None if corners is None else (corners, cells[8])


def read_icdar(rel: str, lines: Lines, image: str, result: Annotations) -> None:
    objects = []
    for n, line in lines:
        found = _corners(line)
        if found is None:
            raise AnnotationError(
                f"{rel}:{n}: not an ICDAR 2015 word (x1,y1,x2,y2,x3,y3,x4,y4,transcription): "
                f"{line[:80]!r}"
            )
        objects.append(_word(found[0], found[1], {}))
    result.set(image, {"objects": objects})


def _word(corners: list[int | float], text: str, rest: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bbox": extent(corners),
        "category": "text",
        "segmentation": [corners],
        "transcription": text,
        **rest,
    }
    if text in DO_NOT_CARE:
        out["ignore"] = True
    return out


# ------------------------------------------------------------------ PaddleOCR


def tab_rows(lines: Lines) -> list[tuple[int, str, str]] | None:
    """(line number, path, the rest) of each line, if every line is `path<TAB>rest`."""
    rows = []
    for n, line in lines:
        path, tab, rest = line.partition("\t")
        if not tab or not path.strip():
            return None
        rows.append((n, path.strip(), rest.strip()))
    return rows or None


def read_paddle(
    rel: str, rows: list[tuple[int, str, str]], keys: KeyIndex, result: Annotations
) -> bool:
    """A PaddleOCR label file's lines into each image's `objects` (detection) or `text`
    (recognition). False, with nothing set, if no line names an image here."""
    folder = folder_of(rel)
    found = [(n, resolve(folder, path, keys), path, rest) for n, path, rest in rows]
    if all(key is None for _n, key, _p, _r in found):
        return False
    detection = rows[0][2].startswith("[")  # then every line must be regions
    split = split_of_name(posixpath.splitext(name_of(rel))[0])
    missing = [path for _n, key, path, _r in found if key is None]
    for n, key, _path, rest in found:
        if key is None:
            continue
        values: dict[str, Any] = (
            {"objects": _regions(f"{rel}:{n}", rest)} if detection else {"text": rest}
        )
        if split is not None:
            values["split"] = split
        result.set(key, values)
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} labelled image(s) not found (first: {missing[0][:80]})"
        )
    return True


def _regions(where: str, rest: str) -> list[dict[str, Any]]:
    """A detection label's JSON: each region an object; anything else raises, naming
    the line."""
    try:
        regions = strict_json(rest)
    except ValueError as exc:
        raise AnnotationError(f"{where}: not PaddleOCR's regions (invalid JSON: {exc})") from None
    objects = []
    for region in regions if isinstance(regions, list) else [None]:
        text = region.get("transcription") if isinstance(region, dict) else None
        flat = _flat(region.get("points")) if isinstance(region, dict) else None
        if flat is None or not isinstance(text, str):
            raise AnnotationError(
                f"{where}: a region without a transcription and points [[x, y], ...] (3 or "
                "more), as PaddleOCR's detection labels have them"
            )
        assert isinstance(region, dict)
        rest_fields = {k: v for k, v in region.items() if k not in ("points", "transcription")}
        objects.append(_word(flat, text, rest_fields))
    return objects


def _flat(points: Any) -> list[int | float] | None:
    """[[x, y], ...] as [x, y, ...], or None if it is not 3 or more pairs of numbers."""
    if not isinstance(points, list) or len(points) < 3:
        return None
    flat: list[int | float] = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 2):
            return None
        for value in point:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            flat.append(number(float(value)))  # strict_json has refused NaN and infinities
    return flat
