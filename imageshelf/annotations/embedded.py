"""Images inside annotation files: LabelMe's `imageData`, the image in base64 (labelme's
`_label_file.py`). What of a LabelMe file is its image is shared by the modules that meet
one: labelme.py (a file named for no image), sidecars.py (a file beside its image, whose
copy of the image is no metadata) and reader.py, which sends LabelMe sidecars to
labelme.py."""

from __future__ import annotations

import re
from typing import Any

from .base import Annotations

# `"imageData": "<base64>"`, as the bytes of a file: what of a LabelMe file is its image
_IMAGE_DATA = re.compile(rb'"imageData"\s*:\s*"[A-Za-z0-9+/=\\\s]*"')


def is_labelme(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("shapes"), list) and "imagePath" in obj


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
