"""What an image looks like, from its bytes: the numbers data-quality findings read.

`properties(data, max_pixels)` decodes the image once, small, and measures it: a pHash
and a dHash for near duplicates, luma percentiles, mean and spread for dark, light and
flat images, two edge spreads for blur, the largest channel difference for grayscale
stored as RGB, colourfulness and entropy. A finding is then a comparison of numbers
kept in the record, never a second decode.

Why one reduced decode: every measure needs only about 64 pixels a side. A JPEG is
decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling (`draft`), the smallest scale
whose short side stays >= 64 px; any other format decodes fully, then is box-reduced by
the same power of 2, so a JPEG and its PNG copy are measured at the same scale (before
that, they were up to 6 pHash bits apart; after, at most 2). Then one integer `reduce`
brings the short side to 64..127 px.

Why no numpy and an integer DCT: the values are kept in the store, so the same bytes
must give the same numbers on every machine. Every measure is integer histogram sums
and Pillow's C code; the pHash's DCT is integer arithmetic over a cosine table whose
rounded entries no libm can change (none lies within 0.04 of .5: tested). What remains
is the decoder: Pillow and libjpeg-turbo are pinned, and PROPS_VERSION names the
algorithm.

Cost: 1.15 ms of CPU per image of 192..320 px (JPEG 0.85, PNG 1.8: PNG decodes in
full), of which the pure-Python DCT is about 0.3.
"""

from __future__ import annotations

import math
from operator import mul
from typing import Any

from PIL import Image, ImageChops, ImageFilter

from .decoding import NotDecodedError, bounded

PROPS_VERSION = 1  # bump whenever any value for the same bytes would change

REDUCE_TO = 64  # the reduced decode's short side, at least
HASH_SIDE = 32  # the pHash's input: a 32x32 gray image, as imagehash's
LOW = 8  # the pHash keeps the 8x8 lowest DCT terms: 64 bits
# The cosine table's fixed point. With 12 bits, 6 of 2,000 images had
# a term so near the median that the table's rounding flipped 2 bits against imagehash;
# with 16 bits, none of 22,000 did, at the same cost.
SCALE = 1 << 16
MOST_ERROR = 300  # characters of an error kept in the record


def _cosine_table(n: int) -> tuple[tuple[int, ...], ...]:
    """cos((2x + 1) u pi / 2n) * SCALE, rounded, for the LOW lowest terms u: the DCT-II
    basis as integers, so the transform is exact arithmetic."""
    return tuple(
        tuple(round(math.cos((2 * x + 1) * u * math.pi / (2 * n)) * SCALE) for x in range(n))
        for u in range(LOW)
    )


COSINES = _cosine_table(HASH_SIDE)

# The 4-neighbour Laplacian, shifted by 128 to fit 8 bits: its spread falls with blur.
_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
# R - G and (R + G) / 2 - B, each + 128: Hasler and Suesstrunk's opponent channels.
_OPPONENT = (1, -1, 0, 128, 0.5, 0.5, -1, 128, 0, 0, 0, 0)
_LEVELS = list(range(256))
_SQUARES = [v * v for v in range(256)]


def properties(data: bytes, max_pixels: int) -> dict[str, Any]:
    """The image's properties (PROPS_VERSION's), or {"v": ..., "error": why} for bytes
    that do not decode within `max_pixels` and the decode-cost bounds: never raises on
    any bytes, since one bad file must never stop a run. `why` is one line of at most
    300 characters: "too_large: ...", "too_costly: ...", "undecodable: ..." (the codes
    of decoding.bounded), or "<exception type>: <message>" for anything else."""
    try:
        with bounded(data, max_pixels) as image:
            mode = image.mode
            small = reduced(image)
        return {"v": PROPS_VERSION, **_measures(small, mode)}
    except NotDecodedError as exc:
        return _failure(f"{exc.code}: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - whatever a crafted file provokes is its reason
        return _failure(f"{type(exc).__name__}: {exc}")


def _failure(reason: str) -> dict[str, Any]:
    return {"v": PROPS_VERSION, "error": " ".join(reason.split())[:MOST_ERROR]}


def reduced(image: Image.Image) -> Image.Image:
    """The reduced decode of an opened image, in mode L or RGB, short side REDUCE_TO
    to 2 * REDUCE_TO - 1 px (or the original's, when smaller)."""
    size = image.size
    factor = 1  # the power of 2 JPEG's draft picks: the largest keeping short side >= 64
    while factor < 8 and min(size) // (2 * factor) >= REDUCE_TO:
        factor *= 2
    image.draft(image.mode if image.mode in ("L", "RGB") else "RGB", (REDUCE_TO, REDUCE_TO))
    image.load()
    small = eight_bit(image)
    if factor > 1 and small.size == size:  # not drafted: reduce as the draft would have
        small = small.reduce(factor)
    rest = min(small.size) // REDUCE_TO
    if rest >= 2:
        return small.reduce(rest)
    # a new image, not the opened one: closing the file would take its pixels with it
    return small.copy() if small is image else small


def eight_bit(image: Image.Image) -> Image.Image:
    """The image in mode L (one channel) or RGB. Alpha is dropped, a palette expanded,
    CMYK and the like converted; 16-bit gray keeps its scale (its top 8 bits), so a dark
    16-bit image stays dark; 32-bit integers and floats have no scale of their own and
    are stretched over their range, as the viewer shows them."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("1", "LA"):
        return image.convert("L")
    if mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v / 256).convert("L")  # exact: v >> 8
    if mode in ("I", "F"):
        return _stretched(image)
    if "A" in mode or mode == "P":
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def _stretched(image: Image.Image) -> Image.Image:
    """32-bit pixels mapped linearly from their own least..most onto 0..255."""
    wide = image.convert("F")
    low, high = wide.getextrema()
    if not (isinstance(low, float | int) and isinstance(high, float | int)):
        raise ValueError(f"no range for {image.mode} pixels")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{image.mode} pixels from {low} to {high}: no finite range")
    if high <= low:
        return Image.new("L", image.size, 0)
    scale = 255.0 / (high - low)
    return wide.point(lambda v: (v - low) * scale).convert("L")


def _measures(small: Image.Image, mode: str) -> dict[str, Any]:
    """Every property of the reduced decode, in the record's order."""
    gray = small if small.mode == "L" else small.convert("L")
    hist = gray.histogram()
    total = gray.width * gray.height
    mean, spread = moments(hist)
    # Pillow's 3x3 filters leave the 1-px border unfiltered: those pixels are part of
    # both spreads, as they were when the blur thresholds were chosen.
    laplacian = moments(gray.filter(_LAPLACIAN).histogram())[1]
    edges = moments(gray.filter(ImageFilter.FIND_EDGES).histogram())[1]
    chroma, colour = _colour(small, total)
    return {
        "phash": phash(gray),
        "dhash": dhash(gray),
        "mode": mode,
        "mean": _rounded(mean / 255),
        "p05": _rounded(percentile(hist, total, 0.05) / 255),
        "p99": _rounded(percentile(hist, total, 0.99) / 255),
        "contrast": _rounded(spread / 255),
        # relative to the luma spread, so a sharp photograph of low contrast is not blurry
        "sharpness": _rounded(laplacian / max(spread, 1.0)),
        "edges": _rounded(edges),
        "chroma": chroma,
        "colour": _rounded(colour),
        "entropy": _rounded(gray.entropy()),
    }


def _rounded(value: float) -> float:
    """4 decimals (the finest a threshold needs), and never -0.0 (Pillow's entropy of a
    flat image), which would print apart from 0.0."""
    return round(value, 4) + 0.0


def _colour(small: Image.Image, total: int) -> tuple[int, float]:
    """(chroma, colourfulness). Chroma is the 99.9th percentile of each pixel's largest
    channel difference: 0..2 on a gray image stored as RGB (JPEG's rounding), so a
    threshold of 3 finds it where `mode` cannot. Colourfulness is Hasler and
    Suesstrunk's (2003): the spread and distance from gray of two opponent channels."""
    if small.mode != "RGB":
        return 0, 0.0
    red, green, blue = small.split()
    largest = ImageChops.lighter(
        ImageChops.lighter(ImageChops.difference(red, green), ImageChops.difference(green, blue)),
        ImageChops.difference(red, blue),
    )
    chroma = percentile(largest.histogram(), total, 0.999)
    opponent = small.convert("RGB", _OPPONENT).histogram()
    mean_rg, spread_rg = moments(opponent[0:256])
    mean_yb, spread_yb = moments(opponent[256:512])
    mean_rg, mean_yb = mean_rg - 128, mean_yb - 128
    # sqrt rather than hypot: correctly rounded by IEEE 754 on every machine
    spread = math.sqrt(spread_rg * spread_rg + spread_yb * spread_yb)
    distance = math.sqrt(mean_rg * mean_rg + mean_yb * mean_yb)
    return chroma, spread + 0.3 * distance


def moments(hist: list[int]) -> tuple[float, float]:
    """(mean, standard deviation) of one band from its 256-bin histogram: integer sums
    at C speed (ImageStat loops in Python per bin), so exact up to the last division."""
    count = sum(hist)
    mean = sum(map(mul, hist, _LEVELS)) / count
    variance = sum(map(mul, hist, _SQUARES)) / count - mean * mean
    return mean, math.sqrt(variance) if variance > 0 else 0.0


def percentile(hist: list[int], total: int, share: float) -> int:
    """The least level with at least `share` of the pixels at or below it."""
    need = share * total
    seen = 0
    for level, count in enumerate(hist):
        seen += count
        if seen >= need:
            return level
    return 255


def phash(gray: Image.Image) -> str:
    """imagehash.phash's 64 bits as its 16 hex digits: the 8x8 lowest DCT-II terms of a
    32x32 gray image, each above their median or not; the bits row by row (term (v, u),
    v along y, first bit most significant). The terms are exact integers (SCALE^2 times
    imagehash's, rounded in the table only), so no float sum can flip a bit near the
    median; on the same 32x32 input imagehash gives the same bits."""
    pixels = gray.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX).tobytes()
    rows = [pixels[y * HASH_SIDE : (y + 1) * HASH_SIDE] for y in range(HASH_SIDE)]
    # along each row: along_x[y][u] = sum_x pixel[y][x] cos_u(x)
    along_x = [[sum(map(mul, row, cos_u)) for cos_u in COSINES] for row in rows]
    columns = list(zip(*along_x, strict=True))  # columns[u][y]
    # then along each column: term (v, u) = sum_y cos_v(y) along_x[y][u]
    terms = [sum(map(mul, cos_v, columns[u])) for cos_v in COSINES for u in range(LOW)]
    ordered = sorted(terms)
    middle = LOW * LOW // 2
    twice_median = ordered[middle - 1] + ordered[middle]
    bits = 0
    for term in terms:
        bits = (bits << 1) | (2 * term > twice_median)
    return f"{bits:016x}"


def dhash(gray: Image.Image) -> str:
    """imagehash.dhash's 64 bits as 16 hex digits: on a 9x8 gray image, whether each
    pixel is brighter than its left neighbour. Kept beside the pHash as a cheap second
    opinion, should a larger near-duplicate threshold ever need one."""
    pixels = gray.resize((LOW + 1, LOW), Image.Resampling.BOX).tobytes()
    bits = 0
    for y in range(LOW):
        row = pixels[y * (LOW + 1) : (y + 1) * (LOW + 1)]
        for x in range(LOW):
            bits = (bits << 1) | (row[x + 1] > row[x])
    return f"{bits:016x}"
