"""How metadata from several sources becomes a record's: the rule that docs/PIPELINE.md,
"How sources combine, and what removes a field", states, in one place.

Weakest to strongest: what arrived with the image in data/incoming/ (sets fields, never
removes one); params.yaml's folder rules (only where nothing else gave the field, and a
folder label only to an image nothing arrived with annotates); the tracked annotations
in data/annotations/ (over everything; a null removes a field). A record remembers which
fields the tracked sources set (`annotated`), so that a field leaves the store only when
the tracked source that set it stops setting it, and the values that arrived with the
image for the fields they override or remove (`overridden`), so that those come back
then: undoing a correction gives back the record from before it, although the image's
files may have left data/incoming/ long ago.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..annotations import Annotations, KeyIndex, Limits, read_place
from ..annotations.folders import AUTO, FolderLayout, folder_fields, rule_for
from ..errors import ShelfError
from ..project.params import AnnotationsParams
from ..store import ImageInfo, Record
from .walk import walk


class Metadata(NamedTuple):
    """A record's metadata as the sources give it, with what the record keeps to undo
    the tracked ones: the fields they set (`annotated`) and the arrived values they
    override or remove (`overridden`)."""

    metadata: dict[str, Any]
    annotated: tuple[str, ...]
    overridden: dict[str, Any]

    @classmethod
    def of(cls, record: Record) -> Metadata:
        """What a record holds now, to compare a plan with."""
        return cls(record.metadata, record.annotated, record.overridden)


class TrackedError(ShelfError):
    """The tracked annotations folder holds something that is not annotations, or a file
    there does not parse."""


@dataclass
class Tracked:
    """The metadata that tracked sources give: data/annotations/ and the folder rules.
    `layout`: the folders of every image of the store to be, which Hugging Face's
    folder labels depend on (FolderLayout)."""

    annotations: Annotations
    rules: AnnotationsParams
    layout: FolderLayout = field(default_factory=FolderLayout)
    _by_folder: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        rules = self.rules
        return bool(
            rules.label_from_folder
            or any(rules.label_from_folder_in.values())
            or rules.split_from_folder
        )

    def folder_fields(self, key: str) -> dict[str, Any]:
        """The fields the folder rules give `key`: the same for every image of a folder."""
        folder = key.rpartition("/")[0]
        fields = self._by_folder.get(folder)
        if fields is None:
            rules = self.rules
            per_folder = {k.strip("/"): v for k, v in rules.label_from_folder_in.items()}
            rule = rule_for(folder, rules.label_from_folder, per_folder)
            fields = folder_fields(key, rule, rules.split_from_folder, self.layout)
            self._by_folder[folder] = fields
        return fields

    def concerns(self, key: str, raw: bytes) -> bool:
        """Whether a stored record (its raw JSON) may need these sources applied."""
        return (
            self.active
            or key in self.annotations
            or raw.startswith(b'{"annotated":')
            or b'"overridden":{' in raw  # an arrived value a null removed (no `annotated`)
        )

    def apply(
        self, key: str, info: ImageInfo, stored: Record | None, arrived: dict[str, Any] | None
    ) -> Metadata:
        """A record's metadata: what arrived with the image so far (`arrived_so_far`)
        updated by what arrived now (it sets fields, never removes one); plus the folder
        rules, where nothing else gave the field; plus data/annotations, over everything
        (a null there removes the field). Returns it with the names of the fields tracked
        sources set and the arrived values they override or remove."""
        underneath = arrived_so_far(stored)
        if arrived:
            underneath.update(arrived)
        metadata = dict(underneath)
        # A folder label is for images nothing else describes: a format that gave them
        # fields (COCO objects, a table's row, a sidecar) is their annotation, as a
        # metadata file is for Hugging Face (it then infers no labels). A split alone is not.
        described = any(name != "split" for name in metadata)
        owned = set()
        for name, value in self.folder_fields(key).items():
            if name not in metadata and not (name == "label" and described):
                metadata[name] = value
                owned.add(name)
        if key in self.annotations:
            for name, value in self.annotations.for_image(key, info.width, info.height).items():
                if value is None:  # null in a tracked file: remove the field, whoever set it
                    metadata.pop(name, None)
                    owned.discard(name)
                else:
                    metadata[name] = value
                    owned.add(name)
        overridden = {
            name: value
            for name, value in underneath.items()
            if name in owned or name not in metadata
        }
        return Metadata(metadata, tuple(sorted(owned)), overridden)


def arrived_so_far(stored: Record | None) -> dict[str, Any]:
    """What arrived with a stored image, as far as its record tells: its metadata less
    the fields tracked sources set, plus the arrived values they override or removed."""
    if stored is None:
        return {}
    owned = stored.annotated
    metadata = {name: value for name, value in stored.metadata.items() if name not in owned}
    metadata.update(stored.overridden)
    return metadata


def needs_layout(rules: AnnotationsParams) -> bool:
    """Whether a label rule looks at the folders of other images (auto does)."""
    return AUTO in [rules.label_from_folder, *rules.label_from_folder_in.values()]


def read_tracked(
    folder: Path,
    rules: AnnotationsParams,
    keys: Callable[[], Iterable[str]],
    max_bytes: int = 1 << 20,
    layout: FolderLayout | None = None,
) -> Tracked:
    """The tracked annotations in `folder` (data/annotations/), for the images `keys()`
    names (read only if the folder holds annotation files), with the folder rules over
    `layout`. Every file there must be an annotation file (or ignored), and every one
    must parse."""
    layout = layout or FolderLayout()
    if not folder.is_dir():
        return Tracked(Annotations(), rules, layout)
    found = walk(str(folder), rules.ignore)
    problems = [f"{r.path}: {r.reason}" for r in found.rejects] + [
        f"{rel}: not an annotation file (a table, a sidecar, COCO, YOLO, VOC or CVAT); move "
        "it out or add it to annotations.ignore"
        for rel in found.files
    ]
    if problems:
        raise TrackedError(f"{folder}/{problems[0]}")
    if not found.annotations:
        return Tracked(Annotations(), rules, layout)
    limits = Limits(max_bytes, rules.max_file_bytes)
    annotations = read_place(
        folder, found.annotations, KeyIndex(keys()), limits, image_column=rules.image_column
    )
    for key, rel in sorted(annotations.embedded.items()):  # its image is not stored
        annotations.unused.append(f"{rel}: LabelMe with its image inside, {key}: no such image")
    if annotations.broken:
        key, reason = sorted(annotations.broken.items())[0]
        raise TrackedError(f"{folder}: the annotations of {key}: {reason}")
    if annotations.not_text:
        raise TrackedError(
            f"{folder}/{annotations.not_text[0]}: not a text file (an image?); annotations "
            "here are text: move it out or add it to annotations.ignore"
        )
    return Tracked(annotations, rules, layout)
