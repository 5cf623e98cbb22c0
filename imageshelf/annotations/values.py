"""Values as the store holds them: JSON checked for what it cannot carry, and the
cells of a table typed one column at a time."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][+-]?[0-9]+)?")


def typed(text: str) -> Any:
    """One cell as a value, alone (a column is typed by `ColumnType`): surrounding
    spaces dropped; `true`/`false` (any case) a boolean; a whole number without leading
    zeros (`-3`, `42`, not `007`) an integer; a decimal (`0.25`, `1e-3`) a float; a cell
    starting with `[` or `{` that is valid JSON that value; anything else text."""
    return typed_column([text])[0]


def typed_column(cells: Sequence[str]) -> list[Any]:
    """The cells of one column typed together (ColumnType)."""
    column = ColumnType()
    for cell in cells:
        column.see(cell)
    return [column.value(cell) for cell in cells]


class ColumnType:
    """The type of a table's column, decided by every non-empty cell it holds: booleans if
    every cell is `true`/`false`; integers if every cell is a whole number without leading
    zeros; floats if every cell is a number and one is a decimal; JSON if every cell is a
    `[...]` or `{...}` that parses; else text. So `007` beside `100` keeps both text, and
    a column never mixes types. `see` each cell first (spaces around it dropped), then
    take each cell's `value`: two passes, and nothing kept but the verdict."""

    def __init__(self) -> None:
        self.kinds = {"bool", "int", "float", "json"}

    def see(self, cell: str) -> None:
        kinds = self.kinds
        if not kinds:
            return  # text already: the usual case after a first word
        value = cell.strip()
        if "bool" in kinds and value.lower() not in ("true", "false"):
            kinds.discard("bool")
        whole = _INT.fullmatch(value) is not None
        if "int" in kinds and not whole:
            kinds.discard("int")
        if "float" in kinds and not (whole or (_FLOAT.fullmatch(value) and _finite(value))):
            kinds.discard("float")
        if "json" in kinds and not _is_json(value):
            kinds.discard("json")

    @property
    def kind(self) -> str:
        return next((k for k in ("bool", "int", "float", "json") if k in self.kinds), "text")

    def value(self, cell: str) -> Any:
        return self.converter()(cell)

    def converter(self) -> Callable[[str], Any]:
        """The function from a cell to its value, once every cell has been seen."""
        return _CONVERT[self.kind]


_CONVERT: dict[str, Callable[[str], Any]] = {
    "bool": lambda cell: cell.strip().lower() == "true",
    "int": lambda cell: int(cell.strip()),
    "float": lambda cell: float(cell.strip()),
    "json": lambda cell: strict_json(cell.strip()),
    "text": str.strip,
}


def _finite(value: str) -> bool:
    return math.isfinite(float(value))


def _is_json(value: str) -> bool:
    if value[:1] not in ("[", "{"):
        return False
    try:
        strict_json(value)
    except ValueError:
        return False
    return True


def strict_json(text: str | bytes) -> Any:
    """JSON as the store can hold it: no NaN or Infinity; numbers that overflow, nesting
    too deep for Python and lone surrogates are ValueErrors, like any other bad JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    check_json_value(value)
    return value


def check_json_value(value: Any, depth: int = 0) -> None:
    """Refuse (ValueError) what canonical JSON cannot carry: NaN, infinities, lone
    surrogates, nesting over 100 levels."""
    if depth > 100:
        raise ValueError("nested more than 100 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number too large to store")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string with a lone surrogate (not valid Unicode)") from None
    elif isinstance(value, dict):
        for name, item in value.items():
            check_json_value(name, depth + 1)
            check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
