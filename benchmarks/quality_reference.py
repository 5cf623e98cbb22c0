"""THE PROTOTYPE of issue 40's audit, to be replaced by the library: what "ours" is in
benchmarks/quality.py until imageshelf/images/properties.py and imageshelf/quality/ land
(then quality.py's `ours_findings` reads the findings from a store built by the pipeline,
and this file goes).

    python benchmarks/quality_reference.py CORPUS OUT.json [--jobs N] [--near 8]

Per image, one reduced decode (JPEG draft to 1/2..1/8, other formats a box reduce by the
same power of 2, then an integer reduce to about 64 px on the short side), and from it,
with Pillow and the standard library: luma percentiles, mean and spread, a Laplacian and
FIND_EDGES spread, the largest channel difference, colourfulness, entropy, and a 64-bit
pHash (imagehash's algorithm, with an integer DCT). Then, from those values alone: exact
groups (SHA-256 of the bytes), near groups (pHash within --near bits, by a multi-index
over three chunks of the hash, joined by union-find), leaks (every pair of a group whose
splits differ; the split is a key's first folder, as the store's split_from_folder reads
it), and each issue type by its threshold. Findings go to OUT.json keyed as the corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import time
from itertools import combinations
from multiprocessing import Pool
from operator import mul
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter

REDUCE_TO = 64  # the reduced decode's short side, at least
HASH_IN = 32  # the pHash's input: HASH_IN x HASH_IN gray (imagehash's)
NEAR = 8  # pHash bits apart, at most, for a near duplicate
# Thresholds chosen on the 2,000-image corpus (seed 40), checked unchanged on 20,000.
THRESHOLDS = {
    "odd_size": 32,  # sqrt(width * height) below this, in pixels
    "odd_aspect_ratio": 0.35,  # min(w / h, h / w) below this
    "low_information": 0.07,  # luma std / min(mean, 1 - mean) (floor 0.02) below this
    "dark": 0.30,  # 99th percentile of luma below this
    "light": 0.75,  # 5th percentile of luma above this
    "grayscale": 3,  # mode L, or no pixel's channels more than this apart (99.9th pct)
    "blurry": (0.40, 26.0),  # Laplacian std / luma std below a AND FIND_EDGES std below b
}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


# ---------------------------------------------------------------- per image


def _cos_table(n: int) -> list[list[int]]:
    """cos((2x + 1) u pi / 2n) * 2**12, rounded: the DCT in exact integers."""
    return [
        [round(math.cos((2 * x + 1) * u * math.pi / (2 * n)) * 4096) for x in range(n)]
        for u in range(8)
    ]


_COS = _cos_table(HASH_IN)
_LAPLACE = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
_IDX = list(range(256))
_IDX2 = [i * i for i in range(256)]


def open_reduced(data: bytes) -> tuple[Image.Image, tuple[int, int], str]:
    """(a small RGB or L image, the original (width, height), the original mode)."""
    im = Image.open(io.BytesIO(data))
    size, mode = im.size, im.mode
    # one scale for every format, so that a JPEG and its PNG copy reduce alike
    s = 1
    while s < 8 and min(size) // (2 * s) >= REDUCE_TO:
        s *= 2
    if im.format in ("JPEG", "MPO"):
        im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (REDUCE_TO, REDUCE_TO))
    im.load()
    if im.mode not in ("L", "RGB"):
        flatten = "A" in im.mode or im.mode == "P"
        im = im.convert("RGBA").convert("RGB") if flatten else im.convert("RGB")
    if s > 1 and max(im.size) == max(size):  # not drafted: reduce as draft would have
        im = im.reduce(s)
    f = min(im.size) // REDUCE_TO
    if f >= 2:
        im = im.reduce(f)
    return im, size, mode


def phash(gray: Image.Image) -> int:
    """imagehash.phash's bits: the 8x8 lowest DCT-II terms of a 32x32 gray image, each
    above their median; bit i (from the top) is term (i // 8, i % 8)."""
    n = HASH_IN
    px = gray.resize((n, n), Image.Resampling.BOX).tobytes()
    rows = [px[y * n : (y + 1) * n] for y in range(n)]
    r = [[sum(map(mul, row, cu)) for cu in _COS] for row in rows]
    cols = list(zip(*r, strict=True))
    d = [sum(map(mul, cv, cols[u])) for cv in _COS for u in range(8)]
    s = sorted(d)
    twice_median = s[31] + s[32]
    bits = 0
    for c in d:
        bits = (bits << 1) | (2 * c > twice_median)
    return bits


def moments(hist: list[int]) -> tuple[float, float]:
    """(mean, std) of one band from its 256-bin histogram."""
    n = sum(hist)
    m = sum(map(mul, hist, _IDX)) / n
    v = sum(map(mul, hist, _IDX2)) / n - m * m
    return m, math.sqrt(v) if v > 0 else 0.0


def percentile(hist: list[int], total: int, q: float) -> int:
    """The smallest value with at least q of the pixels at or below it."""
    need = q * total
    acc = 0
    for v, c in enumerate(hist):
        acc += c
        if acc >= need:
            return v
    return 255


def chroma(im: Image.Image, total: int) -> int:
    """The 99.9th percentile of each pixel's largest channel difference (0 for gray)."""
    if im.mode != "RGB":
        return 0
    r, g, b = im.split()
    spread = ImageChops.lighter(
        ImageChops.lighter(ImageChops.difference(r, g), ImageChops.difference(g, b)),
        ImageChops.difference(r, b),
    )
    return percentile(spread.histogram(), total, 0.999)


def properties(path: str) -> dict:
    """What the findings need of one image, from one reduced decode of its bytes."""
    data = Path(path).read_bytes()
    im, (w, h), mode = open_reduced(data)
    gray = im if im.mode == "L" else im.convert("L")
    hist = gray.histogram()
    total = gray.width * gray.height
    mean, std = moments(hist)
    lap = moments(gray.filter(_LAPLACE).histogram())[1]
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": w,
        "height": h,
        "mode": mode,
        "brightness": mean / 255,
        "p05": percentile(hist, total, 0.05) / 255,
        "p99": percentile(hist, total, 0.99) / 255,
        "contrast": std / 255,
        "sharpness": lap / max(std, 1.0),
        "edges": moments(gray.filter(ImageFilter.FIND_EDGES).histogram())[1],
        "chroma_max": chroma(im, total),
        "phash": phash(gray),
    }


def issues(p: dict, th: dict = THRESHOLDS) -> set[str]:
    """The issue types of one image. A tiny or flat image is not also dark, light,
    grayscale or blurry, and a dark or light one not grayscale or blurry: those measures
    mean nothing there."""
    out = set()
    w, h = p["width"], p["height"]
    if (w * h) ** 0.5 < th["odd_size"]:
        out.add("odd_size")
    if min(w / h, h / w) < th["odd_aspect_ratio"]:
        out.add("odd_aspect_ratio")
    if p["mode"] in GRAY_MODES:
        out.add("grayscale")
    if "odd_size" in out:
        return out
    b = p["brightness"]
    if p["contrast"] / max(min(b, 1 - b), 0.02) < th["low_information"]:
        return out | {"low_information"}
    if p["p99"] < th["dark"]:
        out.add("dark")
    if p["p05"] > th["light"]:
        out.add("light")
    if out & {"dark", "light"}:
        return out
    if p["chroma_max"] <= th["grayscale"]:
        out.add("grayscale")
    a, e = th["blurry"]
    if "odd_aspect_ratio" not in out and p["sharpness"] < a and p["edges"] < e:
        out.add("blurry")
    return out


# ---------------------------------------------------------------- near pairs


def probes(r: int, bits: int) -> list[int]:
    """Every value of `bits` bits with at most r ones."""
    out = []
    for k in range(r + 1):
        for c in combinations(range(bits), k):
            out.append(sum(1 << b for b in c))
    return out


def near_pairs(hashes: list[int], t: int) -> set[tuple[int, int]]:
    """Every pair i < j within t bits: 64 bits as 3 chunks (22/21/21); two hashes within
    t differ by at most t // 3 bits in some chunk, so each bucket meets the buckets at
    most t // 3 bits away, and each candidate is checked on all 64 bits."""
    out: set[tuple[int, int]] = set()
    shift = 0
    for width in (22, 21, 21):
        mask = (1 << width) - 1
        buckets: dict[int, list[int]] = {}
        for i, h in enumerate(hashes):
            buckets.setdefault((h >> shift) & mask, []).append(i)
        patterns = probes(t // 3, width)[1:]  # 0 (the same bucket) is the pairs within
        for key, ids in buckets.items():
            candidates = list(combinations(ids, 2))
            for p in patterns:
                other = buckets.get(key ^ p)
                if other is not None and key ^ p > key:  # each pair of buckets once
                    candidates += [(i, j) for i in ids for j in other]
            for i, j in candidates:
                if (hashes[i] ^ hashes[j]).bit_count() <= t:
                    out.add((i, j) if i < j else (j, i))
        shift += width
    return out


def groups(n: int, pairs) -> list[list[int]]:
    """Union-find: the groups of 2+ that the pairs join."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    found: dict[int, list[int]] = {}
    for i in range(n):
        found.setdefault(root(i), []).append(i)
    return [g for g in found.values() if len(g) > 1]


# ---------------------------------------------------------------- the findings


def find(keys: list[str], props: list[dict], near: int = NEAR) -> dict:
    """Everything from the properties alone: no image is read here."""
    by_sha: dict[str, list[int]] = {}
    for i, p in enumerate(props):
        by_sha.setdefault(p["sha256"], []).append(i)
    kinds = [issues(p) for p in props]
    # a flat or tiny image's pHash is noise (they all collide): not in near groups
    blank = {i for i, k in enumerate(kinds) if k & {"low_information", "odd_size"}}
    reps = [ids[0] for ids in by_sha.values() if ids[0] not in blank]
    joined = groups(len(reps), near_pairs([props[i]["phash"] for i in reps], near))
    near_groups = [sorted(i for r in g for i in by_sha[props[reps[r]]["sha256"]]) for g in joined]
    exact = [ids for ids in by_sha.values() if len(ids) > 1]
    out: dict = {t: [keys[i] for i, k in enumerate(kinds) if t in k] for t in THRESHOLDS}
    out["exact_duplicates"] = [[keys[i] for i in g] for g in exact]
    out["near_duplicates"] = [[keys[i] for i in g] for g in near_groups]
    split = [key.split("/", 1)[0] for key in keys]
    out["leaks"] = sorted(
        [keys[a], keys[b]]
        for g in exact + near_groups
        for a, b in combinations(sorted(g), 2)
        if split[a] != split[b]
    )
    return out


def audit(corpus: Path, jobs: int, near: int = NEAR) -> dict:
    keys = sorted(json.loads((corpus / "truth.json").read_text())["images"])
    paths = [str(corpus / "images" / key) for key in keys]
    if jobs > 1:
        with Pool(jobs) as pool:
            props = pool.map(properties, paths, chunksize=64)
    else:
        props = [properties(p) for p in paths]
    return find(keys, props, near)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--near", type=int, default=NEAR)
    args = parser.parse_args()
    started = time.perf_counter()
    found = audit(args.corpus, args.jobs, args.near)
    found["tool"] = f"the prototype (benchmarks/quality_reference.py), {args.jobs} processes"
    found["seconds"] = round(time.perf_counter() - started, 3)
    args.out.write_text(json.dumps(found))


if __name__ == "__main__":
    main()
