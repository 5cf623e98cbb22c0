"""CVAT's XML: "CVAT for images 1.1" and "CVAT for video 1.1" (CVAT's
`dataset_manager/formats/cvat.py`, which writes both; datumaro's `CvatExtractor`, which
reads both).

Both have the root `<annotations>`. Each shape becomes an entry of `objects`: `type` (its
tag), `category` (its `label`), `bbox` in pixels (a `<box>`'s corners; a polygon's,
polyline's or points' extent; an `<ellipse>`'s or a `<mask>`'s box), `segmentation` for
a polygon and `points` for the other point shapes (COCO's flat list), `elements` for a
skeleton's points, its `<attribute>`s in `attributes`, and every other attribute under
its name, typed as a table's cell (`occluded`, `z_order`, `source`, `rle`, ...).

- For images: an `<image name=... width=... height=...>` per image, holding its shapes
  and `<tag>`s; the image's other attributes (`id`, ...) are kept in `cvat`.
- For video: a `<track id=... label=...>` per object, holding one shape per frame it is
  seen in (CVAT writes every frame, interpolated ones with `keyframe="0"`). Each frame is
  an image, named as CVAT's export with images names it: `images/frame_000042.PNG`
  (`frame_` and the frame's number in six digits, any suffix), beside the XML or in its
  `images/` folder. A shape is an object of its frame with the track's `label` as
  `category`, its `id` as `track_id` and its other attributes (`source`, `group_id`);
  one with `outside="1"` is not (the object has left the view). Every frame image gets
  `objects`, an empty list where no track is seen.

`<meta>` (the task, its labels and segments) describes the dataset, not an image: the
report says it was not stored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, number
from .values import typed

SHAPES = ("box", "polygon", "polyline", "points", "mask", "tag", "ellipse", "skeleton", "cuboid")
FRAME_NAME = re.compile(r"frame_(\d{6,})(\.[^./]*)?")


def is_cvat(root: Any) -> bool:
    return root.tag == "annotations" and (
        root.find("image") is not None or root.find("track") is not None
    )


def read_cvat(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    if root.find("image") is not None:
        _read_images(rel, root, keys, result)
    if root.find("track") is not None:
        _read_video(rel, root, keys, result)
    if root.find("meta") is not None:
        result.note(f"{rel}: <meta> describes the task, not an image: not stored")


# ------------------------------------------------------------------ CVAT for images


def _read_images(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    folder = folder_of(rel)
    for image in root.iter("image"):
        name = (image.get("name") or "").strip()
        key = join(folder, name)
        if key not in keys.keys:
            found = keys.by_tail(folder, name)
            key = found[0] if len(found) == 1 else ""
        if not key:
            result.unused.append(f"{rel}: {name or '(no name)'} (no such image)")
            continue
        objects = [shape(rel, element) for element in image if element.tag in SHAPES]
        values: dict[str, Any] = {"objects": objects}
        extra = {
            k: typed(v) for k, v in image.attrib.items() if k not in ("name", "width", "height")
        }
        if extra:
            values["cvat"] = extra
        result.set(key, values)


def shape(rel: str, element: Any, track: dict[str, str] | None = None) -> dict[str, Any]:
    """One shape as an entry of `objects`; `track`: the attributes of its <track>."""
    attrib = {**(track or {}), **element.attrib}
    out: dict[str, Any] = {"category": attrib.pop("label", ""), "type": element.tag}
    if track is not None and "id" in attrib:
        out["track_id"] = typed(attrib.pop("id"))
    try:
        out.update(_geometry(element.tag, attrib))
    except (KeyError, ValueError):
        raise AnnotationError(f"{rel}: a <{element.tag}> without numeric coordinates") from None
    out.update((k, typed(v)) for k, v in attrib.items())
    attributes = {a.get("name", ""): typed(a.text or "") for a in element.findall("attribute")}
    if attributes:
        out["attributes"] = attributes
    elements = [shape(rel, child) for child in element if child.tag in SHAPES]
    if elements:
        out["elements"] = elements
    return out


def _geometry(tag: str, attrib: dict[str, str]) -> dict[str, Any]:
    """The coordinates a shape's attributes give, taken out of `attrib`."""
    if tag == "box":
        x1, y1, x2, y2 = (float(attrib.pop(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
        return {"bbox": _box(x1, y1, x2, y2)}
    if tag == "ellipse":
        cx, cy, rx, ry = (float(attrib.pop(k)) for k in ("cx", "cy", "rx", "ry"))
        return {"bbox": _box(cx - rx, cy - ry, cx + rx, cy + ry)}
    if tag == "mask":  # `rle` stays: CVAT's run lengths inside this box
        left, top, width, height = (float(attrib[k]) for k in ("left", "top", "width", "height"))
        return {"bbox": _box(left, top, left + width, top + height)}
    if "points" not in attrib:
        return {}
    flat = [float(c) for pair in attrib.pop("points").split(";") for c in pair.split(",")]
    xs, ys = flat[0::2], flat[1::2]
    return {
        "bbox": _box(min(xs), min(ys), max(xs), max(ys)),
        ("segmentation" if tag == "polygon" else "points"): [[number(c) for c in flat]],
    }


def _box(x1: float, y1: float, x2: float, y2: float) -> list[int | float]:
    return [number(x1), number(y1), number(x2 - x1), number(y2 - y1)]


# ------------------------------------------------------------------ CVAT for video


def _read_video(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    frames = _frame_images(folder_of(rel), keys)
    objects: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for track in root.findall("track"):
        attrib = dict(track.attrib)
        for element in track:
            if element.tag not in SHAPES or element.get("outside") == "1":
                continue
            try:
                frame = int(element.get("frame", ""))
            except ValueError:
                raise AnnotationError(
                    f"{rel}: a <{element.tag}> of track {attrib.get('id')} without a frame number"
                ) from None
            objects[frame].append(shape(rel, element, attrib))
    for frame, key in sorted(frames.items()):
        result.set(key, {"objects": objects.get(frame, [])})
    missing = sorted(set(objects) - set(frames))
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} frame(s) with objects but no image frame_NNNNNN.* beside "
            f"it or in images/ (first: frame {missing[0]}, frame_{missing[0]:06d}.PNG)"
        )


def _frame_images(folder: str, keys: KeyIndex) -> dict[int, str]:
    """Frame number -> the image of that frame: `frame_000042.*` in the XML's `images/`
    folder, or beside it."""
    frames: dict[int, str] = {}
    for under in (join(folder, "images"), folder):
        prefix = f"{under}/" if under else ""
        for key in keys.under(prefix):
            match = FRAME_NAME.fullmatch(key[len(prefix) :])
            if match is not None:
                frames.setdefault(int(match.group(1)), key)
    return frames
