"""CelebA's annotation files, read together, as torchvision's `CelebA` reads them (and
as the dataset's readme lays them out: `Anno/`, `Eval/`, `Img/img_align_celeba/`; or
all in one folder, as torchvision keeps them). Each line starts with an image's name
(`000001.jpg`), matched by its end to the images under the dataset's folder (the
files' folder, or the one above `Anno/` and `Eval/`):

- `list_eval_partition.txt`: 0, 1 or 2: `split` train, val, test.
- `identity_CelebA.txt`: the person's number: `identity`.
- `list_attr_celeba.txt` (a count, the 40 attribute names, then a line per image):
  `attributes`, {name: 0 or 1}: the file's -1 is 0, as torchvision maps it.
- `list_landmarks_align_celeba.txt` (a count, the names, a line per image): five points
  of the aligned images: an object `{"category": "face", "keypoints": [x, y, 2, ...],
  "num_keypoints": 5}`, the points in the header's order (left eye, right eye, nose,
  left and right mouth corner).
- `list_bbox_celeba.txt` and `list_landmarks_celeba.txt`: the box ([x_1, y_1, width,
  height]) and points of the in-the-wild images (`img_celeba/`), given to those only:
  they do not fit the aligned and cropped ones. torchvision gives the box to the
  aligned images anyway, with a warning that it does not match them; here it is
  reported instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, name_of
from .lines import numbered_lines

PARTITION = {0: "train", 1: "val", 2: "test"}
_FLAG = {"1": 1, "-1": 0}  # an attribute as torchvision gives it: (v + 1) // 2
FILES = (
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_attr_celeba.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
    "list_landmarks_celeba.txt",
)
WILD = "img_celeba"  # the folder of the in-the-wild images
# Whose a file's box or points are: the in-the-wild images' (True), the aligned ones'
# (False); a file not named here gives every image of the name its fields.
WILD_OF = {
    "list_bbox_celeba.txt": True,
    "list_landmarks_celeba.txt": True,
    "list_landmarks_align_celeba.txt": False,
}


def is_celeba(rel: str) -> bool:
    return name_of(rel) in FILES


def root_of(rel: str) -> str:
    """The dataset's folder: the file's, or the one above `Anno/` and `Eval/`."""
    folder = folder_of(rel)
    return folder_of(folder) if name_of(folder) in ("Anno", "Eval") else folder


class _Images:
    """What the CelebA files of one dataset folder say about each image."""

    def __init__(self, keys: KeyIndex, root: str) -> None:
        self.keys, self.root = keys, root
        self.fields: dict[str, dict[str, Any]] = defaultdict(dict)
        self.faces: dict[str, dict[str, Any]] = defaultdict(dict)
        self.sources: dict[str, set[str]] = defaultdict(set)
        self._found: dict[str, tuple[list[str], list[str]]] = {}  # each file names each image

    def targets(self, name: str, wild: bool | None) -> list[str]:
        """The images named `name`: in-the-wild ones (wild), the others (not wild), or
        both (None)."""
        found = self._found.get(name)
        if found is None:
            every = self.keys.by_tail(self.root, name)
            in_wild = [k for k in every if WILD in k.split("/")[:-1]]
            found = self._found[name] = (in_wild, [k for k in every if k not in in_wild])
        if wild is None:
            return found[0] + found[1]
        return found[0] if wild else found[1]


def read_celeba(
    rels: list[str], whole: Callable[[str], bytes], keys: KeyIndex, result: Annotations
) -> None:
    """The CelebA files of one dataset folder, read together: one face object per image
    gathers the box and points of two files."""
    images = _Images(keys, root_of(rels[0]))
    for rel in rels:
        result.files.append(rel)
        _read_one(rel, whole(rel), images, result)
    for key in sorted(set(images.fields) | set(images.faces)):
        values = dict(images.fields.get(key, {}))
        if key in images.faces:
            values["objects"] = [{"category": "face", **images.faces[key]}]
        result.set(key, values, sources=sorted(images.sources[key]))


def _read_one(rel: str, data: bytes, images: _Images, result: Annotations) -> None:
    name = name_of(rel)
    lines = numbered_lines(rel, data)
    header: list[str] = []
    if name not in ("list_eval_partition.txt", "identity_CelebA.txt"):
        if len(lines) < 2 or not lines[0][1].isdigit():
            raise AnnotationError(f"{rel}: not CelebA's (a count, the names, then a line an image)")
        header, lines = lines[1][1].split(), lines[2:]
    wild = WILD_OF.get(name)
    given = _Given(rel, header)
    missing, unfit = [], 0
    for n, line in lines:
        cells = line.split()
        value = given.value(name, n, cells)
        targets = images.targets(cells[0], wild)
        if not targets:
            if wild is not None and images.targets(cells[0], None):
                unfit += 1  # the image is here, but as the other kind
            else:
                missing.append(cells[0])
            continue
        for key in targets:
            images.sources[key].add(rel)
            if wild is not None:  # a box or points: the face object's
                images.faces[key].update(value)
            else:
                images.fields[key].update(value)
    _report(rel, missing, unfit, wild, result)


class _Given:
    """A line's value, by the file it is in."""

    def __init__(self, rel: str, header: list[str]) -> None:
        self.rel, self.header = rel, header

    def value(self, name: str, n: int, cells: list[str]) -> dict[str, Any]:
        if name == "list_attr_celeba.txt" and len(cells) == len(self.header) + 1:
            flags = [_FLAG.get(c) for c in cells[1:]]  # 8 million cells: no int() each
            if None not in flags:
                return {"attributes": dict(zip(self.header, flags, strict=True))}
        try:
            ints = [int(c) for c in cells[1:]]
        except ValueError:
            ints = []
        if name == "list_eval_partition.txt" and len(ints) == 1 and ints[0] in PARTITION:
            return {"split": PARTITION[ints[0]]}
        if name == "identity_CelebA.txt" and len(ints) == 1:
            return {"identity": ints[0]}
        if name == "list_bbox_celeba.txt" and len(ints) == 4:
            return {"bbox": ints}
        if name.startswith("list_landmarks") and self._fits(ints) and len(ints) % 2 == 0:
            points = [c for i in range(0, len(ints), 2) for c in (ints[i], ints[i + 1], 2)]
            return {"keypoints": points, "num_keypoints": len(ints) // 2}
        line = " ".join(cells)[:80]
        raise AnnotationError(f"{self.rel}:{n}: not a line of CelebA's {name}: {line!r}")

    def _fits(self, ints: list[int]) -> bool:
        return bool(ints) and len(ints) == len(self.header)


def _report(
    rel: str, missing: list[str], unfit: int, wild: bool | None, result: Annotations
) -> None:
    if missing:
        result.unused.append(
            f"{rel}: {len(missing)} listed image(s) not found (first: {missing[0][:80]})"
        )
    if unfit:
        which = "in-the-wild images (img_celeba/)" if wild else "aligned images"
        result.note(
            f"{rel}: {unfit} line(s) are for the {which}, which are not here: not given to the "
            "others, which they do not fit (torchvision gives list_bbox_celeba.txt's boxes to "
            "the aligned images, warning that they do not match)"
        )
