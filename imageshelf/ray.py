"""`from imageshelf.ray import ...`, as the README writes it: the public path of
imageshelf/read/ray.py, where the reader lives."""

from .read.ray import StoreDatasource, read_store

__all__ = [
    "StoreDatasource",
    "read_store",
]
