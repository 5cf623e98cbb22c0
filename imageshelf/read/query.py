"""Select records by their metadata, without reading image bytes.

A condition is `FIELD OP VALUE`, written as a string (the command line's `--where`):

    label=rose            equal
    label=rose,tulip      one of
    label!=rose           not equal (also true when the field is missing)
    width>=256            compare: >=, <=, >, <
    height=100..200       a range, both ends included

FIELD is any field of the image's metadata (label, text, ...) or of the store's own:
key, split, format, width, height, size, sha256 (these win over metadata fields of the
same name; `meta.NAME` reaches the metadata's), or what its pixels measure:
`props.p99`, `props.sharpness`, ... (docs/QUALITY.md). A value compares as a number when the
field holds a number, as true/false when it holds a boolean, else as text.

From Python, `where` may also be a mapping: {"label": {"rose", "tulip"}, "split":
"val", "width": lambda w: w >= 256}: a value, a collection of values, or a test.
Several conditions must all hold.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from ..errors import ShelfError
from ..store import ImageStore, Record, StoreFile
from ..store.format import record_object

Predicate = Callable[[str, dict[str, Any]], bool]  # (key, the record's parsed JSON)
Filter = str | Iterable[str] | Mapping[str, Any] | None  # what --where and where= take

_CONDITION = re.compile(r"^\s*([^=!<>\s][^=!<>]*?)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")
_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_MISSING = object()


class QueryError(ShelfError, ValueError):
    """A condition that cannot be understood; the message says how to write it."""


_INFO_FIELDS = frozenset({"format", "width", "height", "size", "sha256"})


def _field(key: str, obj: dict[str, Any], name: str) -> Any:
    """A field of a record, read from its parsed JSON as Record.fields() would give it."""
    if name == "key":
        return key
    if name in _INFO_FIELDS:
        return obj.get(name, _MISSING)
    meta = obj.get("meta") or {}
    if name == "split":
        split = obj.get("split")
        return split if split is not None else meta.get("split")
    if name.startswith("meta."):
        return meta.get(name[5:], _MISSING)
    if name.startswith("props."):  # what its pixels measure (images/properties.py)
        props = obj.get("props")
        return props.get(name[6:], _MISSING) if isinstance(props, dict) else _MISSING
    return meta.get(name, _MISSING)


def _coerce(text: str, like: Any) -> Any:
    """Read `text` as the type of the stored value it is compared with."""
    if isinstance(like, bool):
        lowered = text.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return text
    if isinstance(like, int | float):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    return text


def _equal(value: Any, text: str) -> bool:
    if value is None:
        return text.lower() in ("", "null", "none")
    if isinstance(value, list | dict):
        return False
    return value == _coerce(text, value) or str(value) == text


def _literal(name: str, text: str) -> str | None:
    """The JSON string a record must contain to have `name` equal to `text`, when only
    a string value can match (not a number, boolean or null, and not the key, which
    lives outside the record's JSON)."""
    if name == "key" or text.lower() in ("", "null", "none", "true", "false", "yes", "no"):
        return None
    try:
        float(text)
        return None
    except ValueError:
        return json.dumps(text, ensure_ascii=False)


def _ordered(value: Any, op: Callable[[Any, Any], bool], text: str, condition: str = "") -> bool:
    other = _coerce(text, value)
    if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(other, str):
        raise QueryError(
            f"{condition or text}: the field holds numbers, and {text!r} is not a number"
        )
    try:
        return bool(op(value, other))
    except TypeError:  # text against number and the like: not comparable, no match
        return False


def parse_condition(text: str) -> tuple[str, Predicate, list[str] | None]:
    """One condition -> (field, predicate, literals for a prefilter).

    The literals, when given, are JSON strings of which any matching record's JSON
    contains at least one.
    """
    match = _CONDITION.match(text)
    if not match or not match.group(3) and match.group(2) not in ("=", "!="):
        raise QueryError(
            f"cannot read condition {text!r}; write FIELD=VALUE, FIELD=A,B, FIELD!=VALUE, "
            "FIELD>=N (also <=, >, <) or FIELD=LOW..HIGH"
        )
    name, op, raw = match.groups()
    if op == "!=":
        options = raw.split(",")

        def differs(key: str, obj: dict[str, Any]) -> bool:
            value = _field(key, obj, name)
            return value is _MISSING or not any(_equal(value, o) for o in options)

        return name, differs, None
    if op in _COMPARE:
        compare = _COMPARE[op]

        def ordered(key: str, obj: dict[str, Any]) -> bool:
            value = _field(key, obj, name)
            return value is not _MISSING and _ordered(value, compare, raw, text)

        return name, ordered, None
    if ".." in raw and raw.count("..") == 1:
        low, high = raw.split("..")

        def within(key: str, obj: dict[str, Any]) -> bool:
            value = _field(key, obj, name)
            return (
                value is not _MISSING
                and (not low or _ordered(value, operator.ge, low, text))
                and (not high or _ordered(value, operator.le, high, text))
            )

        return name, within, None
    options = raw.split(",")

    def equal(key: str, obj: dict[str, Any]) -> bool:
        value = _field(key, obj, name)
        return value is not _MISSING and any(_equal(value, o) for o in options)

    alternatives = [_literal(name, option) for option in options]
    literals = [text for text in alternatives if text is not None]
    return name, equal, literals if len(literals) == len(alternatives) else None


def _from_mapping(name: str, wanted: Any) -> Predicate:
    if callable(wanted):

        def test(key: str, obj: dict[str, Any]) -> bool:
            value = _field(key, obj, name)
            return value is not _MISSING and bool(wanted(value))

        return test
    if isinstance(wanted, Collection) and not isinstance(wanted, str | bytes):
        options = list(wanted)

        def member(key: str, obj: dict[str, Any]) -> bool:
            return _field(key, obj, name) in options

        return member

    def same(key: str, obj: dict[str, Any]) -> bool:
        return _field(key, obj, name) == wanted

    return same


def compile_where(where: Filter) -> tuple[Predicate | None, list[list[str]]]:
    """All conditions as one predicate (None: everything matches), and groups of JSON
    literals: a match contains one literal of every group (a fast prefilter on a
    record's raw bytes)."""
    if where is None:
        return None, []
    tests: list[Predicate] = []
    literals: list[list[str]] = []
    if isinstance(where, Mapping):
        for name, wanted in where.items():
            tests.append(_from_mapping(str(name), wanted))
            if isinstance(wanted, str) and name != "key":
                literals.append([json.dumps(wanted, ensure_ascii=False)])
    else:
        for text in [where] if isinstance(where, str) else where:
            _name, test, literal = parse_condition(text)
            tests.append(test)
            if literal is not None:
                literals.append(literal)
    if not tests:
        return None, []
    return (lambda key, obj: all(test(key, obj) for test in tests)), literals


STORE_FIELDS = ("key", "split", "format", "width", "height", "size", "sha256")


def field_names(where: Filter) -> list[str]:
    """The fields a selection names."""
    if where is None:
        return []
    if isinstance(where, Mapping):
        return [str(name) for name in where]
    texts = [where] if isinstance(where, str) else list(where)
    return [parse_condition(text)[0] for text in texts]


def check_fields(store: ImageStore | StoreFile, names: Collection[str]) -> None:
    """QueryError naming the known fields if an image field named in a selection is
    held by no image at all (`lable=cat`): a typo would otherwise select nothing, or
    with `!=` everything. One pass over the records' bytes at most; usually one record."""
    wanted = {_unprefixed(n) for n in names if n not in STORE_FIELDS}
    if not wanted:
        return
    needles = {name: json.dumps(name, ensure_ascii=False).encode("utf-8") + b":" for name in wanted}
    missing = set(wanted)
    empty = True
    for _key, raw in store.raw_records():
        empty = False
        missing = {name for name in missing if needles[name] not in raw}
        if not missing:
            return
    if empty:
        return
    known: set[str] = set()
    for _key, raw in itertools.islice(store.raw_records(), 2000):
        meta = record_object(_key, raw).get("meta")
        if isinstance(meta, dict):
            known.update(meta)
    fields = ", ".join([*STORE_FIELDS, *sorted(known)[:30]])
    name = sorted(missing)[0]
    if f"props.{name}" in names:  # what pixels measure: the store is older, or the name wrong
        fields = "mean, p05, p99, contrast, sharpness, edges, chroma, colour, entropy, phash"
        raise QueryError(f"no image has props.{name}; props holds: {fields} (docs/QUALITY.md)")
    raise QueryError(f"no image has a field {name!r}; the fields are: {fields}")


def _unprefixed(name: str) -> str:
    """A field's name inside the record's JSON: `meta.label` and `props.p99` are found
    as `label` and `p99`."""
    for prefix in ("meta.", "props."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class _EveryPart:
    """A store's records part after part, as `part_records` gives them (a store read
    from a remote: from its catalog, no shard fetched)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def raw_records(self) -> Iterator[tuple[str, bytes]]:
        for part in self.store.parts:
            yield from self.store.part_records(part.name).raw_records()


def check_store_fields(store: ImageStore, where: Filter) -> None:
    """check_fields over every part of `store`: once, for a caller that then selects
    its parts one at a time with check=False."""
    check_fields(_EveryPart(store), field_names(where))  # type: ignore[arg-type]


def index_lookups(where: Filter) -> Iterator[tuple[str, list[str]]]:
    """The conditions of `where` a field index can answer, as (field, texts): equalities
    whose every alternative only text can equal (`label=rose,tulip`). The records an
    index gives for one are a superset of the matches; every condition is still tested
    on each."""
    if where is None:
        return
    if isinstance(where, Mapping):
        for name, wanted in where.items():
            if name == "key":
                continue
            if isinstance(wanted, str):
                yield _index_name(str(name)), [wanted]
            elif (
                isinstance(wanted, Collection)
                and not isinstance(wanted, bytes)
                and all(isinstance(w, str) for w in wanted)
            ):
                yield _index_name(str(name)), list(wanted)
        return
    for text in [where] if isinstance(where, str) else where:
        match = _CONDITION.match(text)
        if not match or match.group(2) != "=":
            continue
        name, _op, raw = match.groups()
        if ".." in raw and raw.count("..") == 1:
            continue  # a range
        options = raw.split(",")
        if all(_literal(name, option) is not None for option in options):
            yield _index_name(name), options


def _index_name(name: str) -> str:
    """The indexed field a condition's name reads: `meta.label` is `label`, but
    `meta.split` is the metadata's own, not the store's split."""
    if name.startswith("meta.") and name[5:] not in STORE_FIELDS:
        return name[5:]
    return name


def select(
    store: ImageStore | StoreFile,
    where: Filter = None,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
    after: str | None = None,
    before: str | None = None,
    check: bool = True,
) -> Iterator[Record]:
    """Records of `store` matching `where` (and `predicate`, given the image's fields),
    in key order; with `after`, only those whose key sorts after it (the next page);
    with `before`, those whose key sorts before it, nearest first.
    Reads records only, never image bytes. A field no image has is a QueryError, as is
    comparing a number field with a value that is not a number. A caller that selects
    a store part by part checks the fields once over all of them (`check_store_fields`)
    and passes check=False: a field that only newer shards hold is no typo."""
    test, literals = compile_where(where)
    if check:
        check_fields(store, field_names(where))
    groups = [[literal.encode("utf-8") for literal in group] for group in literals]
    found = None
    for name, texts in index_lookups(where):
        found = store.indexed_records(name, texts, after, before)  # those that may match
        if found is not None:
            break
    if found is None:
        found = store.raw_records(after, before) if after or before else store.raw_records()
    for key, raw in found:
        if groups and not all(any(n in raw for n in group) for group in groups):
            continue  # cannot match: its JSON lacks every value a match could have
        obj = record_object(key, raw)
        try:
            keep = test is None or test(key, obj)
        except (TypeError, AttributeError, KeyError, ValueError):
            Record.from_json(key, obj)  # a damaged record: raises, naming the key
            raise
        if not keep:
            continue
        record = Record.from_json(key, obj)
        if predicate is None or predicate(record.fields()):
            yield record


def rows(
    store: ImageStore | StoreFile,
    where: Filter = None,
    columns: Iterable[str] = ("key", "image"),
    check: bool = True,
) -> Iterator[dict[str, Any]]:
    """One dict per record matching `where`, in key order, holding `columns`: `key`,
    `image` (the original bytes, read only if named), any of the store's own fields
    (split, format, width, height, size, sha256) or metadata fields (None where an
    image lacks one), and `paired.ROLE`: the bytes of the image's paired image in that
    role (its mask: `paired.mask`; None where it has none). What the Ray and Hugging
    Face readers give, a part at a time."""
    names = list(columns)
    bytes_wanted = "image" in names
    roles = {name: name[len(PAIRED) :] for name in names if name.startswith(PAIRED)}
    for record in select(store, where, check=check):
        fields = record.fields()
        row = {name: fields.get(name) for name in names if name != "image"}
        if bytes_wanted:
            row["image"] = store.get(record.key)
        for name, role in roles.items():
            row[name] = store.get_paired(record.key, role) if role in record.paired else None
        yield {name: row[name] for name in names}


PAIRED = "paired."  # a column of paired images: `paired.mask`
