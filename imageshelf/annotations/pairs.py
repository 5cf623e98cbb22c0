"""What the modules of paired images and of class names share, and Annotations holds
(base.py): which images a layout paired with which (`Pairs`, `Layout`: paired.py finds
them, COCO's panoptic files add theirs) and a dataset's class names (`ClassTable`:
classes.py reads them). Types only, importing nothing of the package, so that each of
those format modules stands on its own."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Layout(NamedTuple):
    """The layout that paired an image, and its dataset's root folder ("" for the top
    of the place): `VOC2012` for `VOC2012/JPEGImages/x.jpg`."""

    name: str
    root: str


@dataclass
class Pairs:
    """What the layout rules found: image key -> {role: the paired file's key}, the
    layout that paired each image, and the paired files whose image is not there
    (file -> why)."""

    of_image: dict[str, dict[str, str]] = field(default_factory=dict)
    orphans: dict[str, str] = field(default_factory=dict)
    layout_of: dict[str, Layout] = field(default_factory=dict)

    def files(self, roles: Collection[str] | None = None) -> set[str]:
        """Every file paired with an image (in one of `roles`, if given)."""
        return {
            file
            for paired in self.of_image.values()
            for role, file in paired.items()
            if roles is None or role in roles
        }

    def add(self, image: str, role: str, file: str, layout: Layout | None = None) -> None:
        self.of_image.setdefault(image, {})[role] = file
        if layout is not None:
            self.layout_of.setdefault(image, layout)


Present = tuple[int, ...] | tuple[str, ...]  # a mask's ids, or its colours as "#rrggbb"


@dataclass(frozen=True)
class ClassTable:
    """Class names by id (an int) or by colour ("#rrggbb"), and where they come from."""

    names: Mapping[Any, str]
    source: str  # a file's path, the param's name, or the built-in table's
    by_colour: bool = False

    def name(self, present: Present) -> dict[str, str | None] | str:
        """The field for a mask holding `present`; a sentence if this table cannot name
        them (ids against colours)."""
        colours = bool(present) and isinstance(present[0], str)
        if present and colours != self.by_colour:
            has, wants = ("colours", "ids") if colours else ("ids", "colours")
            return f"it holds {has}, {self.source} names {wants}"
        return {str(value): self.names.get(value) for value in present}
