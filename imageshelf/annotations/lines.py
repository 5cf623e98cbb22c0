"""Text annotation files as lines: the numbers in them, and the box around a polygon."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import number, rounded, text_of

Lines = list[tuple[int, str]]  # (line number, the line without surrounding spaces)


def numbered_lines(rel: str, data: bytes) -> Lines:
    """The lines of a UTF-8 text that are not blank, numbered from 1 (a BOM dropped)."""
    lines = enumerate(text_of(rel, data).splitlines(), 1)
    return [(n, line.strip()) for n, line in lines if line.strip()]


def finite(cell: str) -> float | None:
    """A cell as a finite number, or None."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numbers(cells: Sequence[str]) -> list[int | float] | None:
    """Every cell as a number (whole ones as ints), or None if one is not."""
    out = []
    for cell in cells:
        value = finite(cell)
        if value is None:
            return None
        out.append(number(value))
    return out


def extent(flat: Sequence[int | float]) -> list[int | float]:
    """The box around a polygon [x1, y1, x2, y2, ...]: COCO's [x, y, width, height]."""
    xs, ys = flat[0::2], flat[1::2]
    return [
        number(float(min(xs))),
        number(float(min(ys))),
        rounded(max(xs) - min(xs)),
        rounded(max(ys) - min(ys)),
    ]
