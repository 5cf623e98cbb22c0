"""What to draw over an image: the boxes, polygons and keypoints its annotations hold,
in the shapes the annotation readers store (docs/ANNOTATIONS.md): `objects`, a list of
objects (or Hugging Face's columns: a mapping of lists), each with `bbox` ([x, y,
width, height] in pixels), `category`, `segmentation` (COCO polygons), `keypoints`
([x, y, v, ...]) and CVAT's `points`. Values come from a store, which may come from
anywhere: anything that is not finite numbers of the right count is left out and
counted, never drawn wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_SHAPES = 2000  # per image; beyond this, counted as not drawn
# Colours a reader can tell apart on most pictures (Tableau 10), by category.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip


@dataclass
class Shape:
    kind: str  # box | polygon | points
    category: str
    colour: str
    points: list[tuple[float, float]]  # box: its two corners
    named: bool = True  # the object's first shape carries its name; its others do not

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x, y, width, height of a box."""
        (x0, y0), (x1, y1) = self.points[0], self.points[-1]
        return x0, y0, x1 - x0, y1 - y0

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x:g},{y:g}" for x, y in self.points)


@dataclass
class Drawing:
    shapes: list[Shape] = field(default_factory=list)
    skipped: int = 0  # annotations found but not drawable (RLE masks, bad numbers)


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return None
    return [float(v) for v in value]


def _objects(metadata: dict[str, Any]) -> list[Any]:
    objects = metadata.get("objects")
    if isinstance(objects, dict):  # Hugging Face: {"bbox": [...], "category": [...]}
        columns = {k: v for k, v in objects.items() if isinstance(v, list)}
        rows = max((len(v) for v in columns.values()), default=0)
        return [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(rows)]
    return objects if isinstance(objects, list) else []


def _name(obj: dict[str, Any]) -> str:
    for name in ("category", "label", "name", "category_id", "class"):
        value = obj.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return ""


def _pieces(obj: dict[str, Any]) -> Iterator[tuple[str, list[tuple[float, float]] | None]]:
    """(kind, points) of each drawable part of one object; points None: not drawable."""
    if "bbox" in obj:
        box = _numbers(obj["bbox"])
        ok = box is not None and len(box) == 4 and box[2] >= 0 and box[3] >= 0
        yield "box", [(box[0], box[1]), (box[0] + box[2], box[1] + box[3])] if ok else None  # type: ignore[index]
    segmentation = obj.get("segmentation")
    if isinstance(segmentation, list):
        for ring in segmentation:
            flat = _numbers(ring)
            ok = flat is not None and len(flat) >= 6 and len(flat) % 2 == 0
            yield "polygon", list(zip(flat[::2], flat[1::2], strict=True)) if ok else None  # type: ignore[index]
    elif segmentation is not None:
        yield "polygon", None  # an RLE mask: not drawn here
    keypoints = _numbers(obj.get("keypoints"))
    if keypoints is not None and len(keypoints) % 3 == 0:
        visible = [(x, y) for x, y, v in zip(*[iter(keypoints)] * 3, strict=True) if v > 0]
        yield "points", visible
    elif "keypoints" in obj:
        yield "points", None
    if "points" in obj:
        yield "points", _pairs(obj["points"])


def _pairs(value: Any) -> list[tuple[float, float]] | None:
    flat = _numbers(value)
    if flat is None and isinstance(value, list):  # [[x, y], ...]
        pairs = [_numbers(p) for p in value]
        if all(p is not None and len(p) == 2 for p in pairs):
            return [(p[0], p[1]) for p in pairs if p is not None]
        return None
    if flat is None or len(flat) % 2:
        return None
    return list(zip(flat[::2], flat[1::2], strict=True))


def drawing(metadata: dict[str, Any]) -> Drawing:
    """The shapes of one image's annotations, coloured by category."""
    out = Drawing()
    colours: dict[str, str] = {}
    for obj in _objects(metadata):
        if not isinstance(obj, dict):
            out.skipped += 1
            continue
        name = _name(obj)
        colour = colours.setdefault(name, PALETTE[len(colours) % len(PALETTE)])
        first = len(out.shapes)
        for kind, points in _pieces(obj):
            if points is None or len(out.shapes) >= MAX_SHAPES:
                out.skipped += 1
            elif points:
                out.shapes.append(Shape(kind, name, colour, points, len(out.shapes) == first))
    return out


def categories(metadata: dict[str, Any]) -> list[str]:
    """The categories of an image's objects, each once, in the order they come."""
    names = (_name(obj) for obj in _objects(metadata) if isinstance(obj, dict))
    return [name for name in dict.fromkeys(names) if name]
