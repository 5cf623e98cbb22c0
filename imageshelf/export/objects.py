"""A record's objects as the exports write them: each with its geometry checked
(imageshelf.records.geometry), or left out with a note that names the key, the object and why.
An export never computes with a value that was not checked, and never drops an object
without saying so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..records.geometry import Geometry, GeometryError, checked, image_size
from ..store import Record
from .text import shown


@dataclass(frozen=True)
class Shaped:
    """One object of a record: its fields as stored and its geometry, checked."""

    number: int  # its place among the record's objects, from 1
    fields: dict[str, Any]
    geometry: Geometry


def shaped_objects(record: Record, notes: list[str]) -> list[Shaped]:
    """The objects of `record` whose geometry holds; a note for each one that does not,
    and for `objects` that is not a list of objects."""
    objects = record.metadata.get("objects")
    if objects is None:
        return []
    if not isinstance(objects, list):
        notes.append(f"{shown(record.key)}: its objects are left out: not a list of objects")
        return []
    kept = []
    for number, obj in enumerate(objects, 1):
        if not isinstance(obj, dict):
            left_out(notes, record, number, "it is not an object")
            continue
        try:
            kept.append(Shaped(number, obj, checked(obj)))
        except GeometryError as reason:
            left_out(notes, record, number, str(reason))
    return kept


def left_out(notes: list[str], record: Record, number: int, reason: str) -> None:
    notes.append(f"{shown(record.key)}: object {number} is left out: {reason}")


def scale(record: Record, objects: list[Shaped], notes: list[str]) -> tuple[int, int] | None:
    """The image's size, to scale its objects' pixels by (YOLO's fractions, Label
    Studio's percent); None, with a note, if the store gives no size in pixels (a
    crafted record's 0: a division by zero) and there are objects to scale."""
    try:
        return image_size(record.info.width, record.info.height)
    except GeometryError as reason:
        if objects:
            notes.append(
                f"{shown(record.key)}: its {len(objects)} object(s) are left out: {reason}"
            )
        return None
