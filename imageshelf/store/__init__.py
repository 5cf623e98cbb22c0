"""The image store: original image bytes and their metadata in one LMDB file, or in a
folder of such files (the sharded layout). The format is docs/FORMAT.md.

This package knows nothing of DVC, click, Pillow or the pipeline. Importing it loads
the reading side only; writing lives in `imageshelf.store.writer`, which also takes the
writer's lock. The reading side is plain code (json for the header, threading, one
reader per format version, frozen dataclasses for values) but for two measured
exceptions, both for a fresh process's first image (`make bench`: "first image in a
fresh process", import, open, get, against raw py-lmdb on the same images; the goal is
at most 1.5x; `python benchmarks/bench.py first-image` runs those rows alone):

- No value class on the way to an image. Reading an image by key builds no Record,
  Header or Part, so it imports no dataclasses: `values.py` (Record, ImageInfo, Paired,
  Header) and `index.py` (Part, ShardIndex) are imported where a record, a header or
  the parts are first asked for (`ImageStore._resolve` and `records`,
  `StoreFile.header`, `record` and `records`, this package's `__getattr__`). With them
  on that path the row was 1.74x and 2.3x raw (dataclasses imports inspect, and each
  class is generated code); as here, 1.25x to 1.36x in three runs. The row "had the
  store imported dataclasses" is what this saves: 1.17x to 1.27x of ours.
- `TYPE_CHECKING = False` instead of typing's, so type-only imports import no typing.
  In the project's environment (an editable install, whose import hook has loaded much
  of what typing needs) importing typing costs 0.95x to 1.08x of ours in the goal row,
  within its noise, and 1.16x -> 1.39x raw by hand (median of 31 interleaved); in a
  plain install (no hook) 3 to 4 ms of a 20 ms process (2.0x -> 2.4x raw, CPU time).
  Kept for the plain install, and for the margin under 1.5x.

In a plain install the first image costs more than in the project's environment:
json imports re, enum, functools and collections, which the editable install's hook
had loaded already (2.0x raw CPU time there, 1.3x before json and threading). orjson
is imported with the first record parsed; a module only some calls need (pathlib,
heapq, hashlib) is imported in those calls. Past the first image none of this matters.
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
