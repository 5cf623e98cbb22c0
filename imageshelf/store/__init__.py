"""The image store: original image bytes and their metadata in one LMDB file, or in a
folder of such files (the sharded layout). The format is docs/FORMAT.md.

This package knows nothing of DVC, click, Pillow or the pipeline. Importing it loads
the reading side only (lmdb and a few standard modules: a fresh process reads its first
image about as soon as raw py-lmdb does); writing lives in `imageshelf.store.writer`,
which also takes the writer's lock.
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
