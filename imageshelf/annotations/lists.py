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

from .base import Annotations, KeyIndex, folder_of, join, name_of, resolve
from .folders import split_of_name
from .lines import numbered_lines
from .looks import looks_like


def list_split(rel: str) -> str | None:
    """The split a list file's name gives ("trainval" for VOC's union of two)."""
    stem = name_of(rel)[: -len(".txt")].lower()
    if stem == "trainval":
        return "trainval"
    return split_of_name(stem)


def read_list(rel: str, data: bytes, split: str, keys: KeyIndex, result: Annotations) -> None:
    """A list's images get its split; a list none of whose lines names an image here is
    not one, and is reported with what it looks like."""
    lines = [(n, line) for n, line in numbered_lines(rel, data) if not line.startswith("#")]
    voc_root = _voc_root(rel)
    if voc_root is not None and lines and all(_per_class(line) for _n, line in lines):
        result.note(f"{rel}: a per-class list (an image id and 1, 0 or -1): what the objects say")
        return
    found: list[str] = []
    missing, rest = [], []
    for _n, line in lines:
        key = _listed(rel, line, voc_root, keys)
        if key is None and voc_root is None and len(line.split()) > 1:
            key = resolve(folder_of(rel), line.split()[0], keys)  # a path, then more
            rest += [line] if key is not None else []
        if key is None:
            missing.append(line)
        else:
            found.append(key)
    if lines and not found:
        result.unused.append(
            f"{rel}: named like a list of {split} images, but none of its {len(lines)} "
            f"line(s) names an image here: {looks_like(lines)} (first: {lines[0][1][:80]})"
        )
        return
    if split == "trainval":
        result.note(f"{rel}: the union of train and val: the split comes from those lists")
        return
    for key in found:
        result.set(key, {"split": split})
    if rest:
        result.note(
            f"{rel}: {len(rest)} line(s) hold more than an image's path (first: "
            f"{rest[0][:80]!r}): only the split is kept"
        )
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} listed image(s) not found (first: {missing[0][:80]})"
        )


def _per_class(line: str) -> bool:
    cells = line.split()
    return len(cells) == 2 and cells[1] in ("1", "0", "-1")


def _listed(rel: str, line: str, voc_root: str | None, keys: KeyIndex) -> str | None:
    """The image a list's line names: an id under a dataset's image folder (VOC's
    `JPEGImages/`, KITTI's `training/image_2/`) for a list in `ImageSets/`, else a path."""
    if voc_root is None:
        return resolve(folder_of(rel), line, keys)
    stem = line.split()[0]
    for images in _ID_FOLDERS:
        key = keys.one_by_stem(join(voc_root, images), stem)
        if key is not None:
            return key
    return None


# Where a dataset's ImageSets/ ids name images: VOC, then KITTI (whose ImageSets/
# train.txt and val.txt, from the 3D detection tools, split its training/ folder).
_ID_FOLDERS = ("JPEGImages", "training/image_2", "testing/image_2")


def _voc_root(rel: str) -> str | None:
    parts = rel.split("/")
    if "ImageSets" not in parts[:-1]:
        return None
    return "/".join(parts[: parts.index("ImageSets")])
