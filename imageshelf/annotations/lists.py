"""Image lists: text files that name one image per line, giving each the split the list
stands for.

- Named for a split as Hugging Face names split folders (`train.txt`, `val.txt`,
  `test.txt`, `train2017.txt`), or named by data.yaml's `train`/`val`/`test` or Darknet's
  obj.data (CVAT's "YOLO 1.1" export): a line is an image's path, relative to the list,
  to data.yaml's dataset, or (CVAT's `data/obj_train_data/1.jpg`) to any folder above;
  absolute paths are matched by their end.
- Pascal VOC's `ImageSets/Main/train.txt` (and `Segmentation/`, `Layout/`, ...): a line is
  an image id, the image `JPEGImages/ID.*` beside `ImageSets/`. `trainval.txt` is the
  union of train and val, so it gives nothing of its own; per-class lists
  (`cat_train.txt`: an id and 1, 0 or -1 per line) repeat what the objects say.
"""

from __future__ import annotations

import posixpath

from .base import Annotations, KeyIndex, folder_of, join, name_of, text_of
from .folders import split_of_name


def list_split(rel: str) -> str | None:
    """The split a list file's name gives ("trainval" for VOC's union of two)."""
    stem = name_of(rel)[: -len(".txt")].lower()
    if stem == "trainval":
        return "trainval"
    return split_of_name(stem)


def read_list(rel: str, data: bytes, split: str, keys: KeyIndex, result: Annotations) -> None:
    lines = [line.strip() for line in text_of(rel, data).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("#")]
    if lines and all(len(line.split()) == 2 for line in lines):
        result.note(f"{rel}: a per-class list (an image id and 1, 0 or -1): what the objects say")
        return
    if split == "trainval":
        result.note(f"{rel}: the union of train and val: the split comes from those lists")
        return
    voc_root = _voc_root(rel)
    missing = []
    for line in lines:
        if voc_root is not None:
            key = keys.one_by_stem(join(voc_root, "JPEGImages"), line.split()[0])
        else:
            key = _resolve(folder_of(rel), line, keys)
        if key is None:
            missing.append(line)
        else:
            result.set(key, {"split": split})
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} listed image(s) not found (first: {missing[0][:80]})"
        )


def _voc_root(rel: str) -> str | None:
    parts = rel.split("/")
    if "ImageSets" not in parts[:-1]:
        return None
    return "/".join(parts[: parts.index("ImageSets")])


def _resolve(folder: str, line: str, keys: KeyIndex) -> str | None:
    path = line.replace("\\", "/").strip("/")
    direct = posixpath.normpath(join(folder, path))
    if direct in keys.keys:
        return direct
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    for at in range(1, len(parts)):
        candidate = join(folder, "/".join(parts[at:]))
        if candidate in keys.keys:
            return candidate
    if len(parts) == 1 and "." not in parts[0]:
        return keys.one_by_stem(folder, parts[0])
    return None
