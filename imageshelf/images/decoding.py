"""What decoding an image would cost, read off its bytes before a decoder sees them.

Pillow's decompression-bomb limit counts pixels only (measured): a progressive
JPEG that repeats a scan thousands of times costs minutes per decode under it, and a
TIFF with millions of one-row strips costs gigabytes as soon as its header is parsed
(Pillow reads every strip offset into a Python tuple). Both are counted here, from the
bytes, without Pillow: ingest refuses such a file with a reason, and every decoder in
the library (stats' thumbnails, `ImageDataset(decode=...)`) checks first.

Pillow is imported by `bounded` alone, when it is called: the reading path stays light.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ShelfError

# Real encoders write at most a few dozen scans (libjpeg's progressive script: 10;
# mozjpeg's: up to about 20).
MAX_JPEG_SCANS = 100
# Strips or tiles in one TIFF image: 2^18 offsets is about 20 MB of Python ints.
MAX_TIFF_BLOCKS = 1 << 18


class DecodeCostError(ShelfError, ValueError):
    """An image whose decoding would cost without bound; the message says why."""


def decode_cost_problem(data: bytes) -> str | None:
    """Why decoding `data` would cost without bound, or None."""
    if data[:3] == b"\xff\xd8\xff":
        scans = data.count(b"\xff\xda")  # markers never occur inside entropy-coded data
        if scans > MAX_JPEG_SCANS:
            return f"JPEG with {scans} scans (at most {MAX_JPEG_SCANS}: decoding would not end)"
        return None
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        blocks = tiff_blocks(data)
        if blocks > MAX_TIFF_BLOCKS:
            return (
                f"TIFF with {blocks:,} strips or tiles (at most {MAX_TIFF_BLOCKS:,}: "
                "its header alone would take gigabytes)"
            )
    return None


def check_decode_cost(data: bytes) -> None:
    problem = decode_cost_problem(data)
    if problem is not None:
        raise DecodeCostError(problem)


class NotDecodedError(ShelfError, ValueError):
    """An image `bounded` would not decode: `code` ("too_costly", "too_large",
    "undecodable") is stable, `reason` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@contextlib.contextmanager
def bounded(data: bytes, max_pixels: int) -> Iterator[Any]:
    """The image in `data`, opened by Pillow (imported here, on first use) within the
    bounds every decode in the library keeps: its cost read off the bytes first, then
    `max_pixels` from the header, before any pixel is decoded. Whatever fails, here or
    in the caller's `with` body (the decode itself), is a NotDecodedError with the
    reason."""
    from PIL import Image

    problem = decode_cost_problem(data)
    if problem is not None:
        raise NotDecodedError("too_costly", problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > max_pixels:
                    size = f"{im.width}x{im.height} pixels, over {max_pixels}"
                    raise NotDecodedError("too_large", size)
                yield im
    except NotDecodedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode is the reason
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise NotDecodedError("undecodable", f"does not decode: {reason}") from None


_OFFSET_TAGS = (273, 279, 324, 325)  # StripOffsets, StripByteCounts, TileOffsets, ...


def tiff_blocks(data: bytes) -> int:
    """The largest strip or tile count the first IFD of a TIFF declares (0 if it cannot
    be read: Pillow then reports the damage itself)."""
    try:
        order = "<" if data[:2] == b"II" else ">"
        big = struct.unpack_from(order + "H", data, 2)[0] == 43
        if big:
            (ifd,) = struct.unpack_from(order + "Q", data, 8)
            (entries,) = struct.unpack_from(order + "Q", data, ifd)
            start, size, count_format = ifd + 8, 20, "Q"
        else:
            (ifd,) = struct.unpack_from(order + "I", data, 4)
            (entries,) = struct.unpack_from(order + "H", data, ifd)
            start, size, count_format = ifd + 2, 12, "I"
        most = 0
        for i in range(min(entries, 4096)):
            at = start + i * size
            tag = struct.unpack_from(order + "H", data, at)[0]
            if tag in _OFFSET_TAGS:
                (count,) = struct.unpack_from(order + count_format, data, at + 4)
                most = max(most, count)
        return most
    except (struct.error, OverflowError):  # an offset past the end, or past any file
        return 0
