"""Fields an image's folders give, by the rules of params.yaml's `annotations` section:
the split, from Hugging Face's split folder names, and the label: the class folder as
the peers infer it, per dataset folder of data/incoming/ (docs/ANNOTATIONS.md, "Folder
labels").

A dataset folder is a top-level folder of data/incoming/: what the README says to drop
in, and the one unit the store can tell apart without being told (`pets/cat/1.jpg` and
`cat/kittens/1.jpg` have the same shape). By Hugging Face's rule a key's class also
depends on the folders of every other image of its dataset: `FolderLayout` holds that,
drawn from every key of the store to be; `folder_fields` gives one key's fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Hugging Face datasets' split keywords (data_files.py), in the order it tries them: a
# folder name holding one, alone or set off by `-`, `.`, `_`, a space or a digit
# (`train`, `train2017`, `val-images`, `my_test`), names that split.
SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "val": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_PATTERNS = {
    split: re.compile(rf"(?:^|[-._ 0-9])(?:{'|'.join(words)})(?:[-._ 0-9]|$)")
    for split, words in SPLIT_KEYWORDS.items()
}

# What annotations.label_from_folder (and each entry of label_from_folder_in) may say:
# False; True (torchvision's ImageFolder); a depth N; AUTO (Hugging Face's imagefolder).
LabelRule = bool | int | str
AUTO = "auto"
TOP = ""  # the dataset that is data/incoming/ itself (or data/annotations/)


@lru_cache(maxsize=4096)  # a store's keys share few folder names
def split_of_name(name: str) -> str | None:
    """The split a folder (or list file) name says, as Hugging Face reads it (but in any
    case): `train`, `val` or `test`; None if it says none."""
    lowered = name.lower()
    for split, pattern in _PATTERNS.items():
        if pattern.search(lowered):
            return split
    return None


def _nearest_split(folders: list[str], start: int = 0) -> int | None:
    """Where the nearest folder at or after `start` that names a split is, if any."""
    for at in range(len(folders) - 1, start - 1, -1):
        if split_of_name(folders[at]) is not None:
            return at
    return None


def dataset_root(folders: list[str]) -> int:
    """How many of an image's leading folders are its dataset's root: 1 under a
    top-level folder of data/incoming/ (a dataset folder, `pets/cat/1.jpg`); 0 at the
    top and under a top-level folder named for a split (`train/cat/1.jpg`: a dataset's
    split folders copied straight in), whose dataset is the top itself (TOP)."""
    return 1 if folders and split_of_name(folders[0]) is None else 0


def dataset_of_top(top: str) -> str:
    """The dataset of the images under a top-level name (dataset_root)."""
    return top if top and split_of_name(top) is None else TOP


@dataclass(frozen=True)
class FolderLayout:
    """What Hugging Face's label rule depends on beyond a key: the datasets it would
    label. Drawn from every key of the store to be.

    - `labelled`: the datasets (dataset folders, or TOP) whose images all lie at one
      depth, in more than one parent folder by name (folder_based_builder: "files are on
      the same level in directory hierarchy and there is more than one label").
    - `tops`: every top-level name that holds an image (TOP for the top itself).
    """

    labelled: frozenset[str] = frozenset()
    tops: frozenset[str] = frozenset()

    @classmethod
    def of(cls, folders: Iterable[str]) -> FolderLayout:
        """The layout of the images in `folders` (each folder of the store to be that
        holds an image directly, as a key's part before its last `/`)."""
        depths: dict[str, set[int]] = {}
        parents: dict[str, set[str]] = {}
        tops = set()
        for folder in folders:
            parts = folder.split("/") if folder else []
            tops.add(parts[0] if parts else TOP)
            dataset = dataset_of_top(parts[0] if parts else TOP)
            depths.setdefault(dataset, set()).add(len(parts))
            parents.setdefault(dataset, set()).add(parts[-1] if parts else TOP)
        labelled = {d for d in depths if len(depths[d]) == 1 and len(parents[d]) > 1}
        return cls(frozenset(labelled), frozenset(tops))

    def codes(self) -> dict[str, int]:
        """Per top-level name, 1 where its images' dataset is labelled: a change in one
        re-labels the images under it."""
        return {top: int(dataset_of_top(top) in self.labelled) for top in self.tops}

    def changed_tops(self, before: Mapping[str, Any]) -> set[str]:
        """The top-level names, among those `before` (an earlier `codes()`) knew, whose
        images may take another class now. New names hold no stored image yet."""
        now = self.codes()
        return {top for top, code in before.items() if now.get(top) != code}


def top_of(key: str) -> str:
    """A key's top-level folder (TOP for a key at the top)."""
    top, slash, _rest = key.partition("/")
    return top if slash else TOP


def rule_for(folder: str, default: LabelRule, per_folder: Mapping[str, LabelRule]) -> LabelRule:
    """The label rule of the images in `folder`: that of the longest folder
    label_from_folder_in names that holds it, else label_from_folder."""
    while per_folder:
        if folder in per_folder:
            return per_folder[folder]
        if not folder:
            break
        folder = folder.rpartition("/")[0]
    return default


def folder_label(folders: list[str], rule: LabelRule, layout: FolderLayout) -> str | None:
    """The class of an image in `folders`, by `rule`:

    - True, torchvision's ImageFolder (`find_classes`, `make_dataset`): the first folder
      under the dataset's root, whatever lies below it (`pets/cat/kittens/1.jpg` is
      `cat`); an image directly in the root has none.
    - AUTO, Hugging Face's imagefolder: the image's parent folder, where the dataset is
      `labelled` and the parent is not the root.
    - For both, a folder named for a split is a root (`pets/train/cat/1.jpg` is `cat`),
      as Hugging Face splits the data there and torchvision is pointed at it.
    - N: the Nth folder under data/incoming/, counted as it is (no dataset folder).
    """
    if rule is True or rule == AUTO:
        root = dataset_root(folders)
        split_at = _nearest_split(folders, root)
        start = root if split_at is None else split_at + 1
        if start >= len(folders):
            return None
        if rule is True:
            return folders[start]
        return folders[-1] if (folders[0] if root else TOP) in layout.labelled else None
    if type(rule) is int and rule > 0 and len(folders) >= rule:
        return folders[rule - 1]
    return None


def folder_fields(
    key: str,
    label_from_folder: LabelRule,
    split_from_folder: bool,
    layout: FolderLayout | None = None,
) -> dict[str, Any]:
    """Fields a key's folders give.

    - `split` (split_from_folder): the nearest folder whose name says a split
      (split_of_name): `train2017/`, `validation/`, `test-images/`.
    - `label` (label_from_folder): the class folder (folder_label); a depth N counts
      from the split folder the split came from, if there is one.
    """
    folders = key.split("/")[:-1]
    values: dict[str, Any] = {}
    start = 0
    if split_from_folder:
        at = _nearest_split(folders)
        if at is not None:
            values["split"] = split_of_name(folders[at])
            start = at + 1
    if type(label_from_folder) is int:
        folders = folders[start:]
    label = folder_label(folders, label_from_folder, layout or FolderLayout())
    if label is not None:
        values["label"] = label
    return values
