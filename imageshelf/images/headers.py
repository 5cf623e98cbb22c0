"""Format and size of a plain JPEG or PNG, read off its markers or chunks without Pillow.

Most images a dataset holds are JPEG or PNG files their tools wrote in the usual way;
for them Pillow's open (40 to 80 µs: a file object, a plugin search, an object with its
info dictionaries) is most of what ingest spends per image. This walk takes a few
microseconds and says the same thing Pillow would: it mirrors what Pillow's
JpegImagePlugin and PngImagePlugin read before the pixel data, and gives up (None, so
that Pillow decides) on anything else: a marker or chunk it does not know to be
harmless, a segment shorter than Pillow reads, a mode Pillow does not open. It never
accepts a file Pillow would refuse (tests/test_images.py compares the two on damaged
and unusual files). What follows the header (truncation, CRCs) is checked after
either, in recognise.py.
"""

from __future__ import annotations

JPEG_START = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SOF = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended and progressive Huffman
_DHT, _DQT, _DRI, _SOS, _COM = 0xC4, 0xDB, 0xDD, 0xDA, 0xFE

# PNG: (bit depth, colour type) pairs Pillow opens (its _MODES).
_PNG_MODES = frozenset(
    {(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3)}
    | {(8, 3), (8, 4), (16, 4), (8, 6), (16, 6)}
)
# Chunks before the first IDAT whose Pillow handler cannot fail, or fails only below
# this length; a chunk Pillow has no handler for is skipped by it too.
_PNG_SAFE = {b"PLTE": 0, b"tEXt": 0, b"gAMA": 4, b"sRGB": 1, b"pHYs": 9}
_PNG_HANDLED = frozenset(
    {b"iCCP", b"IHDR", b"IEND", b"tRNS", b"cHRM", b"zTXt", b"iTXt", b"eXIf"}
    | {b"acTL", b"fcTL", b"fdAT"}
)


def plain_header(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) of a plain JPEG or PNG; None for anything else."""
    if data.startswith(JPEG_START):
        return _jpeg(data)
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    return None


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    pos, end = 2, len(data)
    size: tuple[int, int] | None = None
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None  # junk between segments: Pillow skips it, leave it to Pillow
        marker = data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        body = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return None
        if marker == _SOS:
            return None if size is None else ("jpeg", *size)
        if marker in _SOF:
            if size is not None or not _frame_ok(body):
                return None
            size = ((body[3] << 8) | body[4], (body[1] << 8) | body[2])
            if not (size[0] and size[1]):
                return None  # Pillow's verdict on an empty frame
        elif not _segment_ok(marker, body):
            return None
        pos += 2 + length
    return None


def _frame_ok(body: bytes) -> bool:
    """A frame header Pillow takes: 8-bit samples, 1, 3 or 4 components."""
    return len(body) >= 6 and body[0] == 8 and body[5] in (1, 3, 4)


def _segment_ok(marker: int, body: bytes) -> bool:
    """Whether Pillow reads this segment before the scan without failing or changing
    what the file is (an MPF segment makes it an MPO; Photoshop's is parsed)."""
    if marker in (_DHT, _DRI, _COM):
        return True
    if marker == _DQT:
        while body:
            table = 1 + (2 if body[0] >> 4 else 1) * 64
            if len(body) < table:
                return False
            body = body[table:]
        return True
    if not 0xE0 <= marker <= 0xEF:
        return False
    if marker == 0xE0 and body.startswith(b"JFIF"):
        return len(body) >= 7
    if marker == 0xE2:
        if body.startswith(b"MPF\0"):
            return False
        return not body.startswith(b"ICC_PROFILE\0") or len(body) >= 14
    if marker == 0xED:
        return not body.startswith(b"Photoshop 3.0\0")
    if marker == 0xEE and body.startswith(b"Adobe"):
        return len(body) >= 7
    return True


def _png(data: bytes) -> tuple[str, int, int] | None:
    end = len(data)
    if end < 33 or data[12:16] != b"IHDR" or data[8:12] != b"\0\0\0\x0d":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, _compression, filtering = data[24], data[25], data[26], data[27]
    if (depth, colour) not in _PNG_MODES or filtering or not (width and height):
        return None
    pos = 33
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if not kind.isalpha() or not kind.isascii():
            return None
        if kind == b"IDAT":
            return "png", width, height
        shortest = _PNG_SAFE.get(kind)
        if (shortest is None and kind in _PNG_HANDLED) or length < (shortest or 0):
            return None
        pos += 12 + length
    return None
