"""Which files of a place are annotation files, by name, and which are ignored."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

_KINDS = {
    ".csv": "table",
    ".tsv": "table",
    ".jsonl": "table",
    ".parquet": "table",
    ".json": "json",  # a sidecar, COCO, a Label Studio export or its notes.json
    ".yaml": "yaml",  # YOLO's data.yaml
    ".yml": "yaml",
    ".xml": "xml",  # Pascal VOC, CVAT for images
    ".txt": "text",  # YOLO labels, class names, image lists, an image's text
    ".names": "text",  # Darknet's (CVAT's obj.names) class names
    ".data": "darknet",  # Darknet's obj.data
    ".ini": "ini",  # MOT's seqinfo.ini
}
ANNOTATION_SUFFIXES = frozenset(_KINDS)  # a name without one of these is not annotations


def annotation_kind(rel: str) -> str | None:
    """What an annotation file is by its name: "table", "json", "yaml", "xml", "text",
    "darknet", "ini"; None for a file that is not an annotation file (an image, or something
    to reject)."""
    dot = rel.rfind(".")
    return _KINDS.get(rel[dot:].lower()) if dot > rel.rfind("/") else None


class IgnoreRules:
    """Ignore patterns: one without `/` matches any file or folder name on the path; one
    with `/` the whole path from the top of the place. Compiled once."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = [p for p in patterns if "/" not in p.strip("/")]
        paths = [p.strip("/") for p in patterns if "/" in p.strip("/")]
        self._name = re.compile("|".join(fnmatch.translate(p) for p in names)) if names else None
        self._path = re.compile("|".join(fnmatch.translate(p) for p in paths)) if paths else None

    @property
    def has_paths(self) -> bool:
        return self._path is not None

    def name(self, name: str) -> bool:
        """Whether a file or folder of this name is ignored wherever it is."""
        return self._name is not None and self._name.match(name) is not None

    def path(self, rel: str) -> bool:
        return self._path is not None and self._path.match(rel) is not None

    def __call__(self, rel: str) -> bool:
        return self.path(rel) or any(self.name(part) for part in rel.split("/"))
