"""What a text file no reader places looks like, in a few words, so that its report
names the format it resembles (and a file is never called what it is not)."""

from __future__ import annotations

from .lines import Lines, finite, numbers

SAMPLE = 200  # lines looked at: enough to tell a shape, bounded for a large file
# A line of k numbers (separated by spaces), and the format whose lines are so.
_NUMBERS_LIKE = {
    5: "YOLO labels (class cx cy w h)",
    10: "WIDER FACE boxes without name lines",
}
_CSV_LIKE = {9: "MOT's gt/gt.txt", 10: "MOT's det/det.txt"}


def looks_like(lines: Lines) -> str:
    """A few words on the shape of `lines`: "lines of 10 numbers, like WIDER FACE boxes
    without name lines"."""
    if not lines:
        return "an empty text file"
    rows = [line for _n, line in lines[:SAMPLE]]
    if all("\t" in row for row in rows):
        return "lines of a path, a tab and a text or JSON, like PaddleOCR's labels"
    found = _comma_shape(rows) or _space_shape([row.split() for row in rows])
    if found:
        return found
    return f"{len(lines)} line(s) of text"


def _comma_shape(rows: list[str]) -> str | None:
    cells = [row.split(",") for row in rows]
    if not all(len(c) > 1 for c in cells):
        return None
    if all(len(c) >= 9 and numbers(c[:8]) is not None for c in cells) and any(
        finite(c[8]) is None for c in cells
    ):
        return "comma-separated lines of 8 numbers and a text, like ICDAR 2015's gt_NAME.txt"
    widths = {len(c) for c in cells}
    if len(widths) == 1 and all(numbers(c) is not None for c in cells):
        width = widths.pop()
        like = _CSV_LIKE.get(width)
        return f"comma-separated lines of {width} numbers" + (f", like {like}" if like else "")
    return None


def _space_shape(cells: list[list[str]]) -> str | None:
    widths = {len(c) for c in cells}
    if all(numbers(c) is not None for c in cells):
        if len(widths) != 1:
            return "lines of numbers"
        width = widths.pop()
        like = _NUMBERS_LIKE.get(width)
        return f"lines of {width} numbers" + (f", like {like}" if like else "")
    if all(len(c) in (9, 10) and numbers(c[:8]) is not None for c in cells):
        return "lines of 8 numbers and a category, like DOTA's labelTxt"
    if all(len(c) in (15, 16) and numbers(c[1:]) is not None for c in cells):
        return "lines of a type and 14 numbers, like KITTI's label_2"
    if widths == {1}:
        return "one word or path a line, like a list of images"
    if widths == {2}:
        return "lines of two words"
    return None
