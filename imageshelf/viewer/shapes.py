"""What to draw over an image: the boxes, polygons and keypoints its annotations hold,
in the shapes the annotation readers store (docs/ANNOTATIONS.md): `objects`, a list of
objects (or Hugging Face's columns: a mapping of lists), each with `bbox` ([x, y,
width, height] in pixels), `category`, `segmentation` (COCO polygons), `keypoints`
([x, y, v, ...]) and CVAT's `points`. Values come from a store, which may come from
anywhere: each object's geometry goes through the one check the exports use too
(imageshelf.records.geometry); an object that fails it is not drawn, and the page says which and
why, never drawn wrongly (nor a 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..records.geometry import Geometry, GeometryError, checked

MAX_SHAPES = 2000  # per image; beyond this, counted as not drawn
MAX_PROBLEMS = 20  # reasons shown per image; every object not drawn is counted
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
    problems: list[str] = field(default_factory=list)  # why objects are not drawn


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


def _pieces(geometry: Geometry) -> Iterator[tuple[str, list[tuple[float, float]] | None]]:
    """(kind, points) of each drawable part of one object; points None: not drawable."""
    if geometry.bbox is not None:
        x, y, width, height = geometry.bbox
        yield "box", [(x, y), (x + width, y + height)]
    for ring in geometry.polygons:
        yield "polygon", list(zip(ring[::2], ring[1::2], strict=True))
    if geometry.mask:
        yield "polygon", None  # an RLE mask: not drawn here
    if geometry.keypoints is not None:
        yield "points", [(x, y) for x, y, visible in geometry.keypoints if visible > 0]
    if geometry.points is not None:
        yield "points", list(geometry.points)


def drawing(metadata: dict[str, Any]) -> Drawing:
    """The shapes of one image's annotations, coloured by category."""
    out = Drawing()
    colours: dict[str, str] = {}
    for number, obj in enumerate(_objects(metadata), 1):
        try:
            if not isinstance(obj, dict):
                raise GeometryError("it is not an object")
            geometry = checked(obj)
        except GeometryError as reason:
            out.skipped += 1
            if len(out.problems) < MAX_PROBLEMS:
                out.problems.append(f"object {number}: {reason}")
            continue
        name = _name(obj)
        colour = colours.setdefault(name, PALETTE[len(colours) % len(PALETTE)])
        first = len(out.shapes)
        for kind, points in _pieces(geometry):
            if points is None or len(out.shapes) >= MAX_SHAPES:
                out.skipped += 1
            elif points:
                out.shapes.append(Shape(kind, name, colour, points, len(out.shapes) == first))
    return out


def categories(metadata: dict[str, Any]) -> list[str]:
    """The categories of an image's objects, each once, in the order they come."""
    names = (_name(obj) for obj in _objects(metadata) if isinstance(obj, dict))
    return [name for name in dict.fromkeys(names) if name]
