"""Values as the store holds them: JSON checked for what it cannot carry, and the
cells of a table typed one column at a time."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][+-]?[0-9]+)?")


def typed(text: str) -> Any:
    """One cell as a value, alone (a column is typed by `typed_column`): surrounding
    spaces dropped; `true`/`false` (any case) a boolean; a whole number without leading
    zeros (`-3`, `42`, not `007`) an integer; a decimal (`0.25`, `1e-3`) a float; a cell
    starting with `[` or `{` that is valid JSON that value; anything else text."""
    return typed_column([text])[0]


def typed_column(cells: Sequence[str]) -> list[Any]:
    """The cells of one column (empty ones left out by the caller), typed together: a
    column is booleans if every cell is `true`/`false`; integers if every cell is a
    whole number without leading zeros; floats if every cell is a number and one is a
    decimal; JSON if every cell is a `[...]` or `{...}` that parses; else text. So
    `007` beside `100` keeps both text, and a column never mixes types."""
    values = [cell.strip() for cell in cells]
    lowered = [value.lower() for value in values]
    if all(value in ("true", "false") for value in lowered):
        return [value == "true" for value in lowered]
    if all(_INT.fullmatch(value) for value in values):
        return [int(value) for value in values]
    if all(_INT.fullmatch(value) or _FLOAT.fullmatch(value) for value in values):
        numbers = [float(value) for value in values]
        if all(math.isfinite(number) for number in numbers):
            return numbers
    if all(value[:1] in ("[", "{") for value in values):
        try:
            return [strict_json(value) for value in values]
        except ValueError:
            pass
    return values


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
