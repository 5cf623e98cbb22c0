"""The image store: original image bytes and their metadata in one LMDB file, or in a
folder of such files (the sharded layout). The format is docs/FORMAT.md.

This package knows nothing of DVC, click, Pillow or the pipeline. Importing it loads
the reading side only (lmdb and a few standard modules: a fresh process reads its first
image about as soon as raw py-lmdb does); writing lives in `imageshelf.store.writer`,
which also takes the writer's lock.

Reading an image by key builds no value class, so it imports no dataclasses: the
frozen dataclasses of `values.py` (Record, ImageInfo, Paired, Header) and `index.py`
(Part, ShardIndex) are imported where a record, a header or the parts are first asked
for (`ImageStore._resolve` and `records`, `StoreFile.header`, `record` and `records`,
and this package's `__getattr__`). `python benchmarks/bench.py first-image` measures
a fresh process that imports, opens a store and reads one image, against raw py-lmdb
on the same images (the goal: at most 1.5x): with the value classes on that path it
took 1.74x to 2.3x (dataclasses imports inspect, and each class is generated code),
as here 1.2x to 1.3x. orjson likewise comes with the first record parsed; the header
is parsed by `json`. The reading side also avoids importing `typing` (`TYPE_CHECKING
= False`): in `python -S`, 21.7 ms against 38.4 ms with it (raw py-lmdb 17.7 ms).
Past the first image none of this matters.
"""

from .file import StoreFile
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_KEY_BYTES,
    InvalidKeyError,
    StoreError,
    UnsupportedVersionError,
    encode_key,
)
from .reader import ImageStore

TYPE_CHECKING = False  # no `typing` at run time: see the package's docstring
if TYPE_CHECKING:
    from .index import Part
    from .values import Header, ImageInfo, Record


def __getattr__(name: str) -> object:
    """The value classes, imported when first named (see above: not to read an image)."""
    if name == "Part":
        from .index import Part

        return Part
    if name in ("Header", "ImageInfo", "Record"):
        from . import values

        return getattr(values, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_KEY_BYTES",
    "Header",
    "ImageInfo",
    "ImageStore",
    "InvalidKeyError",
    "Part",
    "Record",
    "StoreError",
    "StoreFile",
    "UnsupportedVersionError",
    "encode_key",
]
