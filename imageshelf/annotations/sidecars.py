"""Sidecars: `NAME.json` or `NAME.EXT.json` beside an image, one JSON object of fields,
or the LabelMe file labelme saves there (reader.py sends that to labelme.py).

A sidecar is the image's own: one that does not parse rejects that one image (with the
reason) instead of stopping the stage. `NAME.json` is applied before `NAME.EXT.json`, so
the more specific one wins field by field. A sidecar's fields are metadata, so one over
`ingest.max_metadata_bytes` rejects its image, before it is parsed; in a LabelMe file,
the image it embeds (`imageData`) is not metadata and not counted (the file may be as
large as `annotations.max_file_bytes`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .base import (
    FILE_LIMIT,
    AnnotationError,
    Annotations,
    KeyIndex,
    Limits,
    Own,
    Reader,
    name_of,
    read_bounded,
)
from .embedded import image_data_length, is_labelme
from .values import strict_json


def sidecar_image(rel: str, keys: KeyIndex) -> str | None:
    """The image a `NAME.EXT.json` or `NAME.json` belongs to, if there is exactly one."""
    base = rel[: -len(".json")]
    if base in keys.keys:
        return base
    folder, _, stem = base.rpartition("/")
    return keys.one_by_stem(folder, stem)


def reach(rel: str, keys: KeyIndex) -> Own | None:
    """A sidecar reaches its image alone; None for a JSON file that is no image's."""
    image = sidecar_image(rel, keys)
    return None if image is None else Own(image)


def sidecar_order(rel: str) -> tuple[int, bool, str]:
    return (rel.count("/"), "." in name_of(rel[: -len(".json")]), rel)


def sidecar_objects(
    files: Iterable[str], read: Reader, keys: KeyIndex, limits: Limits, result: Annotations
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Each sidecar with its image and its JSON object, in the order they apply; one that
    does not parse rejects its image instead (`result.broken`), with the reason. What an
    object gives its image is reader.py's to decide (a LabelMe file's, labelme.py's)."""
    for rel in sorted(files, key=sidecar_order):
        image = sidecar_image(rel, keys)
        assert image is not None
        result.files.append(rel)
        result.reading = rel
        obj = _sidecar(rel, read, limits, image, result)
        if obj is not None:
            yield rel, image, obj


def _sidecar(
    rel: str, read: Reader, limits: Limits, image: str, result: Annotations
) -> dict[str, Any] | None:
    """A sidecar's JSON, or None with its image rejected (`result.broken`) and why."""
    name = name_of(rel)
    try:
        data = read_bounded(read, rel, max(limits.own, limits.file), FILE_LIMIT)
        size = len(data) - image_data_length(data)  # a LabelMe file's image is no metadata
        if size > limits.own:  # never parsed, then
            raise AnnotationError(f"{rel}: {_over(size, limits)}")
        obj = strict_json(data.decode("utf-8"))
    except AnnotationError as exc:
        result.broken[image] = str(exc).split(": ", 1)[1]
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        result.broken[image] = f"invalid metadata JSON in {name}: {exc}"
        return None
    if not isinstance(obj, dict):
        result.broken[image] = f"metadata in {name} is a JSON {type(obj).__name__}, not an object"
        return None
    if len(data) > limits.own and not is_labelme(obj):
        result.broken[image] = _over(len(data), limits)
        return None
    return obj


def _over(size: int, limits: Limits) -> str:
    return f"{size:,} bytes, over {limits.own:,} (ingest.max_metadata_bytes in params.yaml)"
