"""Images inside annotation files: LabelMe's `imageData`, the image in base64 (labelme's
`_label_file.py`). What of a LabelMe file is its image is shared by the modules that meet
one: labelme.py (a file named for no image), sidecars.py (a file beside its image, whose
copy of the image is no metadata), reader.py, which sends LabelMe sidecars to labelme.py,
and archives.py, which reads an image that only a LabelMe file holds as any other file
of the place (`embedded_image`: ingest, pack and validate alike)."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

from .base import Annotations, name_of
from .kinds import annotation_kind
from .values import strict_json

# `"imageData": "<base64>"`, as the bytes of a file: what of a LabelMe file is its image
_IMAGE_DATA = re.compile(rb'"imageData"\s*:\s*"[A-Za-z0-9+/=\\\s]*"')


def is_labelme(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("shapes"), list) and "imagePath" in obj


def image_path(obj: dict[str, Any]) -> str:
    """`imagePath` as a POSIX path (labelme on Windows writes `..\\images\\a.jpg`)."""
    path = obj.get("imagePath")
    return PureWindowsPath(path).as_posix() if isinstance(path, str) and path else ""


def image_data_length(data: bytes) -> int:
    """How many bytes of a JSON file an `imageData` string takes (0 if none): the rest of
    a LabelMe file is metadata, bound as any sidecar is."""
    found = _IMAGE_DATA.search(data)
    return 0 if found is None else found.end() - found.start()


def note_copies(copies: list[str], result: Annotations) -> None:
    """One note for the LabelMe files of a folder whose imageData copies an image that
    is there (labelme's default: every file of an export)."""
    if copies:
        more = f" and {len(copies) - 1} other LabelMe file(s)" if len(copies) > 1 else ""
        result.note(
            f"{copies[0]}{more}: imageData, a copy of the image file: the image file is "
            "stored, the copy is not"
        )


def embedded_key(rel: str, path: str) -> str | None:
    """The key of the image a LabelMe file `rel` embeds: the JSON's own path with the
    suffix of the image it names (`shots/a.json`, `imagePath: a.jpg` -> `shots/a.jpg`).
    None for a suffix that would make it an annotation file or an archive."""
    suffix = posixpath.splitext(name_of(path))[1]
    if suffix and (annotation_kind(suffix) is not None or suffix.lower() in (".zip", ".tar")):
        return None
    return rel[: -len(".json")] + suffix


class EmbeddedImageError(OSError):
    """A LabelMe file whose imageData is not base64."""


Read = Callable[[str, "int | None"], "tuple[bytes | None, int]"]


def embedded_image(read: Read, key: str, limit: int | None) -> tuple[bytes | None, int] | None:
    """The bytes of the image a LabelMe file beside `key` embeds (labelme's
    `base64.b64decode(imageData)`), as a source is read: (bytes, size), or (None, size)
    over `limit`; None if no LabelMe file there embeds an image under that key. `read`
    reads a file of the place (no fallback)."""
    if key.lower().endswith(".json"):
        return None
    head, dot, suffix = key.rpartition(".")
    stems = [key] if not dot or "/" in suffix else [head, key]
    for stem in stems:
        for rel in (stem + ".json", stem + ".JSON"):
            found = _embedding(read, rel, key, limit)
            if found is not None:
                return found
    return None


def _embedding(
    read: Read, rel: str, key: str, limit: int | None
) -> tuple[bytes | None, int] | None:
    try:  # base64 is 4/3 of the bytes; the shapes beside them are small
        data, size = read(rel, None if limit is None else limit * 2 + (1 << 20))
    except OSError:
        return None
    if data is None:
        return None, size
    try:
        obj = strict_json(data)
    except ValueError:
        return None
    encoded = obj.get("imageData") if is_labelme(obj) else None
    if not isinstance(encoded, str) or embedded_key(rel, image_path(obj)) != key:
        return None
    try:
        image = base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        raise EmbeddedImageError(f"{name_of(rel)}: imageData is not base64") from None
    if limit is not None and len(image) > limit:
        return None, len(image)
    return image, len(image)
