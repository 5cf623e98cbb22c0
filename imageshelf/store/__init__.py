"""The image store: original image bytes and their metadata in one LMDB file, or in a
folder of such files (the sharded layout). The format is docs/FORMAT.md.

This package knows nothing of DVC, click, Pillow or the pipeline. Importing it loads
the reading side only (lmdb and a few standard modules: a fresh process reads its first
image about as soon as raw py-lmdb does); writing lives in `imageshelf.store.writer`,
which also takes the writer's lock.

Its reading side avoids two standard modules that cost a fresh process more than its
own work does. A process that opens a store and reads one image took 21.7 ms (median
of 41, `python -S`, 2 cores; raw py-lmdb 17.7 ms); importing first `typing` made it
38.4 ms, `dataclasses` 50.3 (`make bench` measures the same: "first image in a fresh
process"). Hence, here only: `TYPE_CHECKING = False` instead of importing typing's;
and `frozen.Frozen` for value classes instead of dataclasses. The header is parsed by
`json`; orjson, whose own import costs more, is imported with the first record, not
the first image. Past the first read none of this matters.
"""

from .file import StoreFile
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_KEY_BYTES,
    Header,
    ImageInfo,
    InvalidKeyError,
    Record,
    StoreError,
    UnsupportedVersionError,
    encode_key,
)
from .index import Part
from .reader import ImageStore

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
