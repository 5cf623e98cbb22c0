"""The image store: original image bytes and their metadata in one LMDB file, or in a
folder of such files (the sharded layout).

Knows nothing of DVC, click or the pipeline. The format is described in docs/FORMAT.md.
"""

from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_KEY_BYTES,
    ImageInfo,
    InvalidKeyError,
    Record,
    StoreError,
    UnsupportedVersionError,
    encode_key,
)
from .reader import ImageStore
from .sharded import ShardedImageStore, write_sharded
from .writer import ConcurrentWriteError, Item, rebuild, write_store, writer_lock

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_KEY_BYTES",
    "ConcurrentWriteError",
    "ImageInfo",
    "ImageStore",
    "ShardedImageStore",
    "InvalidKeyError",
    "Item",
    "Record",
    "StoreError",
    "UnsupportedVersionError",
    "encode_key",
    "rebuild",
    "write_sharded",
    "write_store",
    "writer_lock",
]
