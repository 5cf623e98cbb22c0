"""Recognise an image from its bytes: format, width, height, and whether it is whole.

Nothing here decodes pixels. Pillow opens lazily (it reads the header only) and a
per-format structural walk finds truncation: a JPEG must end its last scan, a PNG must
reach IEND with good CRCs, a GIF its trailer, and so on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.ImageFile import StubImageFile

from ..store.values import ImageInfo, Record
from .decoding import NotDecodedError, bounded, decode_cost_problem
from .headers import JPEG_START, PNG_SIGNATURE, plain_header


def _register_plugins() -> list[str]:
    """HEIC/HEIF and JPEG XL, when the `formats` extra is installed: Pillow then reads
    them like any other format. Returns the names of the plugins found."""
    found = []
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        found.append("heif")
    except ImportError:
        pass
    try:
        import pillow_jxl  # noqa: F401  # registers itself

        found.append("jxl")
    except ImportError:
        pass
    return found


PLUGINS = _register_plugins()

# Pillow's own decompression-bomb threshold; params.yaml can lower it.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

# The store records a format by Pillow's name for it, lowercased ("jpeg", "png",
# "jpeg2000", "ppm", "avif", ...). MPO is a JPEG with extra frames (many cameras write
# it); it is still a JPEG to every decoder.
RENAMED = {"MPO": "jpeg"}
# Formats Pillow identifies but whose content is not a raster it can decode: vector
# formats and Pillow's stub plugins (identified, never decoded). Not stored.
NOT_RASTER = frozenset({"EPS", "WMF", "BUFR", "GRIB", "HDF5", "MPEG"})


def format_name(pillow_format: str) -> str:
    """The name the store records for a format Pillow reports."""
    return RENAMED.get(pillow_format, pillow_format.lower())


class NotAnImageError(ValueError):
    """Bytes that cannot be stored as an image. `code` is stable; `reason` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def probe(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Format and size of an image, read from its header; raise NotAnImageError if unusable."""
    if not data:
        raise NotAnImageError("empty", "empty file")
    costly = decode_cost_problem(data)  # before Pillow parses a header of any size
    if costly is not None:
        raise NotAnImageError("too_costly", costly)
    plain = plain_header(data)  # a plain JPEG or PNG, without Pillow (headers.py)
    if plain is not None and plain[1] * plain[2] <= _PILLOW_REFUSES:
        fmt, width, height = plain
        extents: list[tuple[int, int]] = []
    else:
        fmt, width, height, extents = _pillow_header(data)
    if width <= 0 or height <= 0:
        raise NotAnImageError("bad_header", f"image header declares {width}x{height} pixels")
    if width * height > max_pixels:
        raise NotAnImageError(
            "too_large",
            f"image header declares {width}x{height} pixels, over the limit of {max_pixels}",
        )
    problem = _structure_problem(fmt, data, extents)
    if problem:
        raise NotAnImageError("truncated", f"truncated or damaged {fmt.upper()}: {problem}")
    return ImageHeader(fmt, width, height)


# Pillow refuses to open an image over twice its bomb limit (DecompressionBombError):
# such a header is left to it, so the reason given is the same either way.
_PILLOW_REFUSES = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 1 << 62


def _pillow_header(data: bytes) -> tuple[str, int, int, list[tuple[int, int]]]:
    """Format, size and data extents as Pillow reads them; NotAnImageError if it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and corrupt-EXIF warnings: judged below
            with Image.open(io.BytesIO(data)) as im:
                if im.format is None or im.format in NOT_RASTER or isinstance(im, StubImageFile):
                    raise NotAnImageError(
                        "not_image",
                        f"not an image: {im.format or 'this'} is a format Pillow identifies "
                        "but does not decode (vector, or no decoder)",
                    )
                width, height = im.size
                return format_name(im.format), width, height, _data_extents(im)
    except Image.DecompressionBombError as exc:
        raise NotAnImageError("too_large", f"image too large to decode safely: {exc}") from None
    except NotAnImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any header Pillow cannot parse is a reject
        raise _explain_unreadable(data, exc) from None


def prove_decodes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[str]:
    """Decode every pixel of the image once (`ingest.verify: decode`), bounded as all
    decoding here is (decoding.py, the pixel limit); NotAnImageError if it fails.
    Returns what the decoders said on the way (Python warnings, and libtiff's and
    libjpeg's messages, which C code writes to stderr, through a progress bar): for the
    report, one line each."""
    said: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught, _stderr_into(said):
            warnings.simplefilter("always")
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > max_pixels:
                    raise NotAnImageError("too_large", "image over ingest.max_pixels")
                for frame in range(getattr(im, "n_frames", 1) or 1):
                    im.seek(frame)
                    im.load()
        said += [_one_line(w.message) for w in caught]
    except NotAnImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode is the reason
        why = _one_line(exc) + (f" ({said[0][:120]})" if said else "")
        raise NotAnImageError("undecodable", f"does not decode: {why}") from None
    return sorted(set(said))[:5]


@contextlib.contextmanager
def _stderr_into(lines: list[str]) -> Iterator[None]:
    """What C libraries write to file descriptor 2 meanwhile, as lines (never shown)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(64 << 10).decode("utf-8", "replace")
            lines += [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def describe(
    key: str,
    data: bytes,
    metadata: dict[str, Any] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Record:
    """The store record for an image's bytes: probe it and hash it."""
    header = probe(data, max_pixels)
    info = ImageInfo(
        hashlib.sha256(data).hexdigest(), len(data), header.format, header.width, header.height
    )
    return Record(key, info, dict(metadata or {}))


_MAGIC = (
    (JPEG_START, "jpeg"),
    (PNG_SIGNATURE, "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\0", "tiff"),
    (b"MM\0*", "tiff"),
    (b"BM", "bmp"),
)


def sniff(data: bytes) -> str | None:
    """The format a file claims by its first bytes, when Pillow could not open it."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def _explain_unreadable(data: bytes, exc: Exception) -> NotAnImageError:
    sniffed = sniff(data)
    if sniffed is None:
        return NotAnImageError(
            "not_image", "not an image: no image format Pillow reads recognises its content"
        )
    problem = _structure_problem(sniffed, data, [])
    if problem:
        return NotAnImageError("truncated", f"truncated or damaged {sniffed.upper()}: {problem}")
    if isinstance(exc, UnidentifiedImageError):
        return NotAnImageError("bad_header", f"unreadable {sniffed.upper()} header")
    return NotAnImageError("bad_header", f"unreadable {sniffed.upper()} header: {_one_line(exc)}")


def _structure_problem(fmt: str, data: bytes, extents: list[tuple[int, int]]) -> str | None:
    check = _STRUCTURE_CHECKS.get(fmt)
    if check is None:
        return None  # a header read only: `ingest.verify: decode` proves the rest
    try:
        return check(data, extents)
    except (struct.error, IndexError):
        return "the file ends inside its header"


def _one_line(exc: BaseException | Warning | str) -> str:
    text = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
    text = " ".join(text.split()) or type(exc).__name__
    return text[:200]


def _check_jpeg(data: bytes, _extents: list[tuple[int, int]]) -> str | None:
    # Markers cannot occur inside entropy-coded data (0xFF is stuffed as FF00), so the
    # image is whole only if an end-of-image marker follows the last start-of-scan.
    last_scan = data.rfind(b"\xff\xda")
    if last_scan < 0:
        return "no image data (no start-of-scan marker)"
    if data.rfind(b"\xff\xd9") < last_scan:
        return "the last scan has no end-of-image marker"
    return None


def _check_png(data: bytes, _extents: list[tuple[int, int]]) -> str | None:
    pos, end = 8, len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        stop = pos + 12 + length
        if stop > end:
            return f"chunk {kind.decode('latin-1')!r} runs past the end of the file"
        (crc,) = struct.unpack_from(">I", data, stop - 4)
        if zlib.crc32(data[pos + 4 : stop - 4]) != crc:
            return f"chunk {kind.decode('latin-1')!r} fails its CRC check"
        if kind == b"IEND":
            return None
        pos = stop
    return "no IEND chunk"


def _check_gif(data: bytes, _extents: list[tuple[int, int]]) -> str | None:
    end = len(data)
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 << ((flags & 7) + 1)
    while pos < end:
        block = data[pos]
        if block == 0x3B:  # trailer
            return None
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor, optional local table, LZW code size
            if pos + 10 > end:
                break
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 << ((local & 7) + 1)
            pos += 1
        else:
            return f"unexpected block 0x{block:02x} at byte {pos}"
        while pos < end and data[pos] != 0:  # sub-blocks end with a zero length
            pos += data[pos] + 1
        pos += 1
    return "no trailer (the file ends inside the image data)"


def _check_webp(data: bytes, _extents: list[tuple[int, int]]) -> str | None:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if len(data) < riff_size + 8:
        return f"RIFF header declares {riff_size + 8} bytes, the file has {len(data)}"
    return None


def _check_bmp(data: bytes, extents: list[tuple[int, int]]) -> str | None:
    (declared,) = struct.unpack_from("<I", data, 2)
    if declared and len(data) < declared:
        return f"header declares {declared} bytes, the file has {len(data)}"
    return _check_extents(data, extents)


def _check_extents(data: bytes, extents: list[tuple[int, int]]) -> str | None:
    for offset, length in extents:
        if offset + length > len(data):
            return (
                f"image data at bytes {offset}..{offset + length} runs past the end "
                f"of the file ({len(data)} bytes)"
            )
    return None


def _data_extents(im: Image.Image) -> list[tuple[int, int]]:
    """(offset, length) of each block of pixel data the header points at, where known."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None:  # TIFF: strips (273/279) or tiles (324/325)
        for offsets_tag, counts_tag in ((273, 279), (324, 325)):
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if offsets is not None and counts is not None:
                offsets = offsets if isinstance(offsets, tuple) else (offsets,)
                counts = counts if isinstance(counts, tuple) else (counts,)
                return list(zip(offsets, counts, strict=False))
        return []
    # Everything else: where the first pixel data starts (a BMP's bfOffBits, say).
    return [(tile[2], 1) for tile in (getattr(im, "tile", None) or [])]


_STRUCTURE_CHECKS = {
    "jpeg": _check_jpeg,
    "png": _check_png,
    "gif": _check_gif,
    "webp": _check_webp,
    "bmp": _check_bmp,
    "tiff": _check_extents,
}


def picture(data: bytes, edge: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image's first frame, at most `edge` pixels a side, in 8-bit RGB or RGBA: for
    people to look at (thumbnails, a rendering of a format browsers cannot show), never
    to store. Decoded within ingest's bounds (decoding.bounded). NotAnImageError if it
    will not."""
    try:
        with bounded(data, max_pixels) as im:
            im.draft("RGB", (edge, edge))  # JPEG: decode at a reduced scale
            im.thumbnail((edge, edge))
            out = _eight_bit(im)
            return out.convert("RGBA" if "A" in out.getbands() else "RGB")
    except NotDecodedError as exc:
        raise NotAnImageError(exc.code, exc.reason) from None


def _eight_bit(im: Image.Image) -> Image.Image:
    """High-depth pixels (16-bit, 32-bit integer, float) scaled into 0..255 by their own
    range: converting them directly clips everything above 255 to white."""
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    wide = im.convert("F")
    low, high = wide.getextrema()
    if not (isinstance(low, int | float) and isinstance(high, int | float)) or high <= low:
        return Image.new("L", im.size, 0)
    scale = 255.0 / (high - low)
    return wide.point(lambda v: (v - low) * scale).convert("L")
