"""Which metadata columns a file format can carry as they are.

A column's values have a type signature: "null", "bool", "int", "float", "str",
("list", item) or ("struct", ((name, type), ...)). Two signatures unify the way Arrow's
JSON reader unifies rows (Hugging Face reads `metadata.jsonl` with it): null gives way
to anything, a struct takes the union of its fields, and, leniently, an int column with
a float in it is a float column; anything else (text beside a number, a list beside an
object) conflicts. `strict` unification is what a Parquet column carries exactly, back to
the same JSON: no int beside a float, no null inside a value, no empty object.

`typed_signature` is what a Parquet file gives Hugging Face: the lenient rules, and where
values still conflict (COCO polygons beside RLE masks) the narrowest part that does is
"json", JSON text, so that `objects` stays a list of records and only their
`segmentation` is text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

INT64 = 1 << 63


class Conflict(Exception):
    """Values that no one Arrow column holds as they are."""


def signature(value: Any, strict: bool) -> Any:
    if value is None:
        if strict:
            raise Conflict("null")
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise Conflict("an integer over 64 bits")
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        if strict and not _utf8(value):  # a lone surrogate (a JSON escape): no Arrow text
            raise Conflict("text that UTF-8 cannot encode")
        return "str"
    if isinstance(value, list):
        item: Any = "null"
        for element in value:
            item = unify(item, signature(element, strict), strict)
        return ("list", item)
    if isinstance(value, dict):
        if strict and not value:
            raise Conflict("an empty object")
        return ("struct", tuple(sorted((k, signature(v, strict)) for k, v in value.items())))
    raise Conflict(type(value).__name__)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unify(a: Any, b: Any, strict: bool) -> Any:
    if a == b:
        return a
    if a == "null":
        return b
    if b == "null":
        return a
    if not strict and {a, b} == {"int", "float"}:
        return "float"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "list":
            return ("list", unify(a[1], b[1], strict))
        fields = dict(a[1])
        for name, kind in b[1]:
            fields[name] = unify(fields[name], kind, strict) if name in fields else kind
        return ("struct", tuple(sorted(fields.items())))
    raise Conflict(f"{a} beside {b}")


JSON = "json"  # typed_signature: values no one Arrow type holds, written as JSON text


def typed_signature(values: Iterable[Any]) -> Any:
    """The lenient signature of a column's values, a conflict at any depth becoming
    JSON text there (never a Conflict)."""
    kind: Any = "null"
    for value in values:
        kind = _typed_unify(kind, _typed(value))
    return kind


def _typed(value: Any) -> Any:
    if isinstance(value, list):
        item: Any = "null"
        for element in value:
            item = _typed_unify(item, _typed(element))
        return ("list", item)
    if isinstance(value, dict):
        if not value:
            return JSON  # an empty object: no Arrow struct
        return ("struct", tuple(sorted((k, _typed(v)) for k, v in value.items())))
    try:
        return signature(value, strict=False)
    except Conflict:
        return JSON


def _typed_unify(a: Any, b: Any) -> Any:
    if JSON in (a, b):
        return JSON
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "list":
            return ("list", _typed_unify(a[1], b[1]))
        fields = dict(a[1])
        for name, kind in b[1]:
            fields[name] = _typed_unify(fields[name], kind) if name in fields else kind
        return ("struct", tuple(sorted(fields.items())))
    try:
        return unify(a, b, strict=False)
    except Conflict:
        return JSON


def typed_value(value: Any, kind: Any) -> Any:
    """`value` as a column of `kind` (typed_signature) holds it: JSON text where the
    kind says so, ints as floats in a float column."""
    if value is None:
        return None
    if kind == JSON:
        import json

        return json.dumps(value, sort_keys=True, ensure_ascii=True)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(kind, tuple) and kind[0] == "list" and isinstance(value, list):
        return [typed_value(v, kind[1]) for v in value]
    if isinstance(kind, tuple) and kind[0] == "struct" and isinstance(value, dict):
        fields = dict(kind[1])
        return {k: typed_value(value.get(k), sub) for k, sub in fields.items()}
    return value


def column_signature(values: Iterable[Any], strict: bool) -> Any:
    """The signature of a column's values (a missing cell is not among them)."""
    kind: Any = "null"
    for value in values:
        kind = unify(kind, signature(value, strict), strict)
    return kind


def arrow_type(kind: Any) -> Any:
    import pyarrow as pa

    simple = {"null": pa.null(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}
    if kind == JSON:
        return pa.string()
    if isinstance(kind, str):
        return simple.get(kind, pa.string())
    if kind[0] == "list":
        return pa.list_(arrow_type(kind[1]))
    return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in kind[1]])
