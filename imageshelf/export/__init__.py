"""Write images back out, byte-identical, in the layouts the peers read (imagefolder,
COCO, YOLO, Label Studio, WebDataset).

The layouts:

- `imagefolder` (the default): each image under its key, with the metadata files Hugging
  Face's imagefolder reads (imagefolder.py); ingest reads them back as they are;
- `coco`, `yolo`: the images with their objects in the files pycocotools, torchvision and
  ultralytics read, every other field in `metadata.jsonl` (detection.py);
- `label-studio`: the images with `tasks.json` and `label_config.xml`, to correct the
  labels in Label Studio and bring them back with its JSON export (labelstudio.py);
- `webdataset`: tar shards of image and JSON pairs, for streaming (webdataset.py).

Every target is checked before the first file is written (targets.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..base.atomic import write_bytes
from ..store import ImageStore, Record
from .detection import coco_files, labels_outside, yolo_files
from .imagefolder import metadata_files, metadata_rows, split_paths
from .labelstudio import label_studio_files
from .targets import (
    ExportError,
    OnItem,
    disk_folds,
    paired_paths,
    plan_files,
    target_inside,
    write_images,
    write_paired,
)
from .webdataset import sample_name, stale_shards, write_shards

LAYOUTS = ("imagefolder", "coco", "yolo", "label-studio")


@dataclass
class Exported:
    """What an export wrote: image bytes, the other files, and what it could not carry."""

    image_bytes: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_files(
    store: ImageStore,
    records: Sequence[Record],
    out_dir: Path,
    on_item: OnItem | None = None,
    overwrite: bool = False,
    layout: str = "imagefolder",
    case_insensitive: bool | None = None,
    split_folders: bool = False,
) -> Exported:
    """Write each record's original bytes to `out_dir/KEY`, and the annotation files of
    `layout` beside them. Every target is checked before the first file is written.
    `split_folders` (imagefolder): each image at `out_dir/SPLIT/KEY` instead, so Hugging
    Face sees the store's splits (ingest then reads the split folder into the key)."""
    records = sorted(records, key=lambda r: r.key.encode("utf-8"))
    notes: list[str] = []
    paths = [record.key for record in records]
    if split_folders and layout != "imagefolder":
        raise ExportError("--split-folders is for the imagefolder layout")
    if split_folders:
        paths, notes = split_paths(records)
    paired = paired_paths(records, paths)
    if layout == "coco":
        files, notes = coco_files(records)
    elif layout == "yolo":
        if case_insensitive is None:  # asked once: YOLO's label files must not fold together
            case_insensitive = disk_folds(out_dir)
        files, notes = yolo_files(records, case_insensitive)
        notes += labels_outside(out_dir, records)
    elif layout == "label-studio":
        files, notes = label_studio_files(records)
    elif layout == "imagefolder":
        rows, unlinked = metadata_rows(records, paths, paired)
        files = metadata_files(rows)
        notes += unlinked
    else:
        raise ExportError(f"no export layout {layout!r}; one of {', '.join(LAYOUTS)}")
    extra = sorted({path for path, _key, _role in paired.values()})
    clash = sorted(set(paths) & (set(files) | set(extra)) or set(extra) & set(files))
    if clash:
        raise ExportError(f"{clash[0]!r} is both a key and a file this export writes")
    every = [*paths, *extra, *sorted(files)]
    targets = plan_files(out_dir, every, overwrite, "key", case_insensitive)
    written = write_images(store, records, targets[: len(records)], on_item)
    at = dict(zip(every, targets, strict=True))
    written += write_paired(store, {at[path]: (key, role) for path, key, role in paired.values()})
    for name in sorted(files):
        os.makedirs(os.path.dirname(at[name]), exist_ok=True)
        write_bytes(at[name], files[name])
    return Exported(written, sorted(files), notes)


__all__ = [
    "LAYOUTS",
    "ExportError",
    "Exported",
    "export_files",
    "sample_name",
    "stale_shards",
    "target_inside",
    "write_shards",
]
