"""Fields an image's folders give, by the rules of params.yaml's `annotations` section:
the split, from Hugging Face's split folder names, and the label, as torchvision's
ImageFolder gives it."""

from __future__ import annotations

import re
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


@lru_cache(maxsize=4096)  # a store's keys share few folder names
def split_of_name(name: str) -> str | None:
    """The split a folder (or list file) name says, as Hugging Face reads it (but in any
    case): `train`, `val` or `test`; None if it says none."""
    lowered = name.lower()
    for split, pattern in _PATTERNS.items():
        if pattern.search(lowered):
            return split
    return None


def folder_fields(
    key: str, label_from_folder: bool | int, split_from_folder: bool
) -> dict[str, Any]:
    """Fields a key's folders give.

    - `split` (split_from_folder): the nearest folder whose name says a split
      (split_of_name): `train2017/`, `validation/`, `test-images/`.
    - `label` (label_from_folder): torchvision's ImageFolder class, the first folder
      under the dataset's root, whatever lies below it (`cat/kittens/1.jpg` is `cat`). The
      root is the top of the place, or the split folder the split came from; a number N
      takes the Nth folder under it instead (2: `pets/cat/1.jpg` is `cat`).
    """
    folders = key.split("/")[:-1]
    values: dict[str, Any] = {}
    start = 0
    if split_from_folder:
        for at in range(len(folders) - 1, -1, -1):
            split = split_of_name(folders[at])
            if split is not None:
                values["split"] = split
                start = at + 1
                break
    depth = int(label_from_folder)
    if depth > 0 and len(folders) >= start + depth:
        values["label"] = folders[start + depth - 1]
    return values
