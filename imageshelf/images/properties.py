"""PLACEHOLDER (replaced by the real module on merge): the prototype's measures in the
schema every part reads."""

from __future__ import annotations

import io
import math
from operator import mul
from typing import Any

from PIL import Image, ImageChops, ImageFilter

PROPS_VERSION = 1
REDUCE_TO = 64


def _cos_table(n: int) -> list[list[int]]:
    return [
        [round(math.cos((2 * x + 1) * u * math.pi / (2 * n)) * 4096) for x in range(n)]
        for u in range(8)
    ]


_COS = _cos_table(32)
_LAPLACE = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
_IDX = list(range(256))
_IDX2 = [i * i for i in range(256)]


def _reduced(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    im: Image.Image = Image.open(io.BytesIO(data))
    size, mode = im.size, im.mode
    if size[0] * size[1] > max_pixels:
        raise ValueError(f"{size[0]}x{size[1]} is over the pixel limit")
    s = 1
    while s < 8 and min(size) // (2 * s) >= REDUCE_TO:
        s *= 2
    if im.format in ("JPEG", "MPO"):
        im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (REDUCE_TO, REDUCE_TO))
    im.load()
    if im.mode not in ("L", "RGB"):
        im = (
            im.convert("RGBA").convert("RGB")
            if "A" in im.mode or im.mode == "P"
            else im.convert("RGB")
        )
    if s > 1 and max(im.size) == max(size):
        im = im.reduce(s)
    f = min(im.size) // REDUCE_TO
    if f >= 2:
        im = im.reduce(f)
    return im, mode


def _phash(gray: Image.Image) -> int:
    n = 32
    px = gray.resize((n, n), Image.Resampling.BOX).tobytes()
    rows = [px[y * n : (y + 1) * n] for y in range(n)]
    r = [[sum(map(mul, row, cu)) for cu in _COS] for row in rows]
    cols = list(zip(*r, strict=True))
    d = [sum(map(mul, cv, cols[u])) for cv in _COS for u in range(8)]
    s = sorted(d)
    twice_med = s[31] + s[32]
    bits = 0
    for c in d:
        bits = (bits << 1) | (2 * c > twice_med)
    return bits


def _dhash(gray: Image.Image) -> int:
    px = gray.resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for y in range(8):
        row = px[y * 9 : (y + 1) * 9]
        for x in range(8):
            bits = (bits << 1) | (row[x + 1] > row[x])
    return bits


def _moments(hist: list[int]) -> tuple[float, float]:
    n = sum(hist)
    m = sum(map(mul, hist, _IDX)) / n
    v = sum(map(mul, hist, _IDX2)) / n - m * m
    return m, math.sqrt(v) if v > 0 else 0.0


def _pct(hist: list[int], total: int, q: float) -> int:
    need, acc = q * total, 0
    for v, c in enumerate(hist):
        acc += c
        if acc >= need:
            return v
    return 255


def properties(data: bytes, max_pixels: int) -> dict[str, Any]:
    try:
        im, mode = _reduced(data, max_pixels)
        gray = im if im.mode == "L" else im.convert("L")
        hist = gray.histogram()
        total = gray.width * gray.height
        mean, std = _moments(hist)
        lap = _moments(gray.filter(_LAPLACE).histogram())[1]
        edges = _moments(gray.filter(ImageFilter.FIND_EDGES).histogram())[1]
        colour, chroma = 0.0, 0
        if im.mode == "RGB":
            opp = im.convert("RGB", (1, -1, 0, 128, 0.5, 0.5, -1, 128, 0, 0, 0, 0))
            oh = opp.histogram()
            mrg, srg = _moments(oh[0:256])
            myb, syb = _moments(oh[256:512])
            colour = math.hypot(srg, syb) + 0.3 * math.hypot(mrg - 128, myb - 128)
            r, g, b = im.split()
            d = ImageChops.lighter(
                ImageChops.lighter(ImageChops.difference(r, g), ImageChops.difference(g, b)),
                ImageChops.difference(r, b),
            )
            chroma = _pct(d.histogram(), total, 0.999)
        return {
            "v": PROPS_VERSION,
            "phash": f"{_phash(gray):016x}",
            "dhash": f"{_dhash(gray):016x}",
            "mode": mode,
            "mean": round(mean / 255, 4),
            "p05": round(_pct(hist, total, 0.05) / 255, 4),
            "p99": round(_pct(hist, total, 0.99) / 255, 4),
            "contrast": round(std / 255, 4),
            "sharpness": round(lap / max(std, 1.0), 4),
            "edges": round(edges, 4),
            "chroma": chroma,
            "colour": round(colour, 4),
            "entropy": round(gray.entropy(), 4),
        }
    except Exception as exc:  # noqa: BLE001 - placeholder
        return {"v": PROPS_VERSION, "error": f"{type(exc).__name__}: {exc}"[:300]}
