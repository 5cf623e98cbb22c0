"""`from imageshelf.hf import ...`, as the README writes it: the public path of
imageshelf/read/hf.py, where the reader lives."""

from .read.hf import iterable_dataset

__all__ = [
    "iterable_dataset",
]
