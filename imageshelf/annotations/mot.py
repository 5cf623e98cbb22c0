"""MOTChallenge sequences (MOT15 to MOT20; CVAT's "MOT 1.1" export), as the MOTChallenge
devkit's format description gives them: a frame per image, its objects from the
sequence's CSV files.

`train/MOT17-02-FRCNN/` holds `img1/000001.jpg` (frame 1, and so on), `seqinfo.ini`
(`[Sequence]`: name, imDir, frameRate, seqLength, imWidth, imHeight, imExt), and:

- `gt/gt.txt`: `frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility` a line
  (MOT15's has `conf,x,y,z` after the box instead). Each frame image's `objects`: `bbox`
  ([bb_left, bb_top, bb_width, bb_height] in pixels), `track_id` (the `id` column: one
  person across frames; COCO's `id` would name one annotation), `conf` (in ground truth,
  1 to count the box, 0 to ignore it), `class` and its name as `category` (1 Pedestrian
  .. 13 Crowd, MOTChallenge's table; CVAT's `gt/labels.txt`, a name a line, where there
  is one), `visibility` (0..1).
- `det/det.txt`: the public detections, `frame,-1,bb_left,bb_top,bb_width,bb_height,
  conf,-1,-1,-1`: `detections`, each `bbox` and `conf` (and `track_id`, `x`, `y`, `z`
  where they are not -1).

A frame image with no line gets `objects: []` (or `detections: []`); each frame image
also gets `frame` (its number) and, from seqinfo.ini, `seqinfo` (its values, typed).
"""

from __future__ import annotations

import configparser
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .base import (
    AnnotationError,
    Annotations,
    KeyIndex,
    folder_of,
    join,
    text_of,
)
from .lines import Lines, numbers
from .values import typed

CLASSES = {
    1: "Pedestrian",
    2: "Person on vehicle",
    3: "Car",
    4: "Bicycle",
    5: "Motorbike",
    6: "Non motorized vehicle",
    7: "Static person",
    8: "Distractor",
    9: "Occluder",
    10: "Occluder on the ground",
    11: "Occluder full",
    12: "Reflection",
    13: "Crowd",
}
KINDS = {("gt", "gt.txt"): "gt", ("det", "det.txt"): "det", ("gt", "labels.txt"): "labels"}
FIELD = {"gt": "objects", "det": "detections"}
SEQINFO = "seqinfo.ini"


def kind_of(rel: str) -> str | None:
    """ "gt", "det" or "labels" (CVAT's class names) for a sequence's file, by its path."""
    parts = rel.split("/")
    return KINDS.get((parts[-2], parts[-1])) if len(parts) >= 2 else None


def is_mot(lines: Lines) -> bool:
    """Whether a file's first line is a MOTChallenge line (a gt.txt of another dataset is
    read by its lines instead)."""
    if not lines:
        return True  # a sequence with nothing in it
    values = numbers(lines[0][1].split(","))
    return values is not None and len(values) in (9, 10) and isinstance(values[0], int)


def sequence_of(rel: str) -> str:
    return folder_of(folder_of(rel))


def seqinfo(rel: str, data: bytes) -> dict[str, Any]:
    """seqinfo.ini's `[Sequence]` values, typed; an AnnotationError if it has none."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep imDir's case
    try:
        parser.read_string(text_of(rel, data))
    except configparser.Error as exc:
        why = str(exc).splitlines()[0][:120]  # configparser's message runs over lines
        raise AnnotationError(f"{rel}: not a valid INI file: {why}") from None
    if not parser.has_section("Sequence"):
        raise AnnotationError(f"{rel}: no [Sequence] section, as MOT's seqinfo.ini has")
    return {name: typed(value) for name, value in parser.items("Sequence")}


def frames(sequence: str, info: dict[str, Any], keys: KeyIndex) -> dict[int, str]:
    """Frame number -> image, for the images of a sequence's image folder."""
    folder = join(sequence, str(info.get("imDir") or "img1"))
    out = {}
    for key in keys.under(folder + "/"):
        name = key[len(folder) + 1 :]
        stem = name.rpartition(".")[0] or name
        if "/" not in name and stem.isdigit():
            out[int(stem)] = key
    return out


def read_seqinfo(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    info = seqinfo(rel, data)
    for frame, key in frames(folder_of(rel), info, keys).items():
        result.set(key, {"frame": frame, "seqinfo": info})


def read_tracks(
    rel: str,
    lines: Lines,
    keys: KeyIndex,
    files: list[str],
    whole: Callable[[str], bytes],
    result: Annotations,
) -> None:
    """A sequence's gt.txt or det.txt into its frame images' `objects` or `detections`."""
    kind, sequence = kind_of(rel), sequence_of(rel)
    assert kind in FIELD
    info_rel = join(sequence, SEQINFO)
    info = {}
    if info_rel in files:  # where the frames are: imDir
        info = seqinfo(info_rel, whole(info_rel))
    names = _names(join(sequence, "gt/labels.txt"), files, whole) or CLASSES
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    dropped = 0
    for n, line in lines:
        frame, entry, unset = _entry(rel, n, line, kind, names)
        by_frame[frame].append(entry)
        dropped += unset
    images = frames(sequence, info, keys)
    for frame, key in images.items():
        result.set(key, {"frame": frame, FIELD[kind]: by_frame.get(frame, [])})
    orphans = sorted(set(by_frame) - set(images))
    if orphans:
        result.unused.append(
            f"{rel}: lines for {len(orphans)} frame(s) with no image in "
            f"{join(sequence, str(info.get('imDir') or 'img1'))}/ (first: frame {orphans[0]})"
        )
    if dropped:
        result.note(f"{rel}: {dropped} value(s) of -1 (no track, no world coordinates): not stored")


def _names(rel: str, files: list[str], whole: Callable[[str], bytes]) -> dict[int, str]:
    if rel not in files:
        return {}
    text = text_of(rel, whole(rel))
    return {i: name.strip() for i, name in enumerate(text.splitlines(), 1) if name.strip()}


def _entry(
    rel: str, n: int, line: str, kind: str, names: dict[int, str]
) -> tuple[int, dict[str, Any], int]:
    """(frame, the object, how many -1 placeholders were left out) of one line."""
    values = numbers(line.split(","))
    if values is None or len(values) not in (9, 10) or not isinstance(values[0], int):
        raise AnnotationError(
            f"{rel}:{n}: not a MOTChallenge line (frame,id,bb_left,bb_top,bb_width,bb_height,"
            f"conf, then class,visibility or x,y,z): {line[:80]!r}"
        )
    entry: dict[str, Any] = {"bbox": values[2:6], "track_id": values[1], "conf": values[6]}
    if len(values) == 9:
        cls = values[7]
        entry.update(
            {"class": cls, "category": names.get(int(cls), str(cls)), "visibility": values[8]}
        )
    else:
        entry.update(zip(("x", "y", "z"), values[7:], strict=True))
    unset = [name for name in ("track_id", "x", "y", "z") if entry.get(name) == -1]
    for name in unset:
        del entry[name]
    return values[0], entry, len(unset)
