"""Sidecars: `NAME.json` or `NAME.EXT.json` beside an image, one JSON object of fields.

A sidecar is the image's own: one that does not parse rejects that one image (with the
reason) instead of stopping the stage. `NAME.json` is applied before `NAME.EXT.json`, so
the more specific one wins field by field."""

from __future__ import annotations

from collections.abc import Iterable

from .base import AnnotationError, Annotations, KeyIndex, Reader, name_of, read_bounded
from .values import strict_json


def sidecar_image(rel: str, keys: KeyIndex) -> str | None:
    """The image a `NAME.EXT.json` or `NAME.json` belongs to, if there is exactly one."""
    base = rel[: -len(".json")]
    if base in keys.keys:
        return base
    folder, _, stem = base.rpartition("/")
    return keys.one_by_stem(folder, stem)


def sidecar_order(rel: str) -> tuple[int, bool, str]:
    return (rel.count("/"), "." in name_of(rel[: -len(".json")]), rel)


def read_sidecars(
    files: Iterable[str], read: Reader, keys: KeyIndex, max_bytes: int, result: Annotations
) -> None:
    for rel in sorted(files, key=sidecar_order):
        image = sidecar_image(rel, keys)
        assert image is not None
        result.files.append(rel)
        result.reading = rel
        name = name_of(rel)
        try:
            obj = strict_json(read_bounded(read, rel, max_bytes).decode("utf-8"))
        except AnnotationError as exc:
            result.broken[image] = str(exc).split(": ", 1)[1]
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            result.broken[image] = f"invalid metadata JSON in {name}: {exc}"
            continue
        if not isinstance(obj, dict):
            result.broken[image] = (
                f"metadata in {name} is a JSON {type(obj).__name__}, not an object"
            )
            continue
        result.set(image, obj)
