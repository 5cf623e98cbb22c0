"""A corpus of images with planted problems, and the truth kept beside it (issue 40).

    python benchmarks/quality_corpus.py --images 2000 --out DIR [--seed 40]

Base images are crops of untouched photographs that packages ship: the colour
photographs of scikit-image's `skimage/data` (in its wheel) and twelve photographs of
Pillow's `Tests/images` (only in Pillow's source distribution). Both are fetched once with
pip (`pip download`, pinned versions below) into benchmarks/.quality-cache/, which git
ignores. Crops are taken at random places and scales; any two crops of one photograph
overlap with IoU < 0.3, so no base image is a near copy of another (a crop of 10% off an
edge has IoU 0.9). Crops are resized to a long side of 192..320 px (upscaled at most
1.6x) and kept only if plainly usable (luma mean 0.15..0.85, std >= 0.07, 99th
percentile >= 0.45, 5th <= 0.85, sharp enough): the clean set must be clean, or every
tool's precision measures the sources.

The photographs hold about 2,300 to 2,600 distinct crops at these settings; past that
(or when they cannot be fetched) base images are synthetic scenes (shapes over a
gradient, blurred, with noise), marked `source: synthetic` in the truth.

Planted, each kind 1% of N, each from its own base image:
  copies of a base image that stays in the corpus (a truth pair each), in another split
  80% of the time (leakage), the same split otherwise: exact, jpeg_requality (q 50..95),
  png_to_jpeg, jpeg_to_png, resize_half, resize_075, crop_5, crop_10 (off one edge),
  brightness, contrast, hue;
  images no model should see, each from a crop not otherwise in the corpus: dark, light,
  blurry, uniform (low information, mid-tones), grayscale (half saved as mode L, half as RGB with
  R = G = B), odd_aspect (a 10:1 crop), tiny (8x8).

Splits train/val/test 80/10/10, 75% of files JPEG; keys `split/<16 hex>.jpg|png`, so no
name gives a kind away. One seed drives `random.Random` and numpy's PCG64: the same seed,
sources, Pillow and numpy give the same bytes. Output: OUT/images/<split>/* and
OUT/truth.json (per image its split, kind, source, crop, format, size, mode and
parameters; the pairs [original, copy, kind, crosses_splits]; the issue lists; in `meta`
the sources' SHA-256 and what could not be fetched).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import click
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

CACHE = Path(__file__).resolve().parent / ".quality-cache"
SKIMAGE_VERSION = "0.26.0"  # its wheel holds skimage/data/
PILLOW_VERSION = "13.0.0"  # its sdist holds Tests/images/
SKIMAGE_PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
]
PILLOW_PHOTOS = [
    "fujifilm.mpo",
    "xmp_test.jpg",
    "exif_typeerror.jpg",
    "frozenpond.mpo",
    "sugarshack.mpo",
    "flower.jpg",
    "flower2.jpg",
    "exif-72dpi-int.jpg",
    "junk_jpeg_header.jpg",
    "iptc.jpg",
    "icc_profile_big.jpg",
    "app13-multiple.jpg",
]
COPY_KINDS = [
    "exact",
    "jpeg_requality",
    "png_to_jpeg",
    "jpeg_to_png",
    "resize_half",
    "resize_075",
    "crop_5",
    "crop_10",
    "brightness",
    "contrast",
    "hue",
]
ISSUE_KINDS = ["dark", "light", "blurry", "uniform", "grayscale", "odd_aspect", "tiny"]
SPLITS = [("train", 0.8), ("val", 0.1), ("test", 0.1)]
ASPECTS = [1.0, 4 / 3, 3 / 2, 3 / 4, 2 / 3]
MAX_IOU = 0.3
LEAK_P = 0.8

Crop = dict[str, Any]  # {"image": Image, "source": name, "rect": [x0, y0, x1, y1] | None}


# ------------------------------------------------------------------ the photographs


def _pip_download(spec: str, folder: Path, *options: str) -> Path:
    """One distribution file fetched by pip into `folder`; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder)]
        + [*options, spec],
        check=True,
        capture_output=True,
        text=True,
    )
    name = spec.split("==")[0].replace("-", "_").lower()
    new = [p for p in folder.iterdir() if p.name.replace("-", "_").lower().startswith(name)]
    return max(new, key=lambda p: (p not in before, p.stat().st_mtime))


def _unpack(archive: Path, members: dict[str, str], target: Path) -> None:
    """Copy the archive's `members` (member path -> file name) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as whl:
            for member, name in members.items():
                (target / name).write_bytes(whl.read(member))
        return
    with tarfile.open(archive) as sdist:
        for member, name in members.items():
            extracted = sdist.extractfile(member)
            if extracted is None:
                raise FileNotFoundError(member)
            (target / name).write_bytes(extracted.read())


def fetch_photographs(cache: Path = CACHE) -> tuple[list[tuple[str, Path]], list[str]]:
    """The photographs' (name, path), fetched into `cache` once; and a note for each
    package that could not be fetched (its photographs are then left out)."""
    wanted = [
        ("skimage", SKIMAGE_VERSION, SKIMAGE_PHOTOS, "scikit-image", "skimage/data/{}"),
        ("pillow", PILLOW_VERSION, PILLOW_PHOTOS, "pillow", "pillow-{v}/Tests/images/{}"),
    ]
    found, notes = [], []
    for short, version, names, package, member in wanted:
        target = cache / f"{short}-{version}"
        if not all((target / n).exists() for n in names):
            options = ["--only-binary", ":all:"] if short == "skimage" else ["--no-binary", ":all:"]
            try:
                archive = _pip_download(f"{package}=={version}", cache / "downloads", *options)
                _unpack(archive, {member.format(n, v=version): n for n in names}, target)
                archive.unlink()  # the photographs are what is kept (the wheel is 14 MB)
            except (subprocess.CalledProcessError, OSError, KeyError, tarfile.TarError) as e:
                said = (getattr(e, "stderr", "") or str(e)).strip().splitlines() or [""]
                notes.append(f"{package}=={version}: not fetched ({said[-1][:200]})")
                continue
        found += [(f"{short}/{n}", target / n) for n in names]
    return found, notes


def load_sources(paths: list[tuple[str, Path]]) -> list[tuple[str, Image.Image, str]]:
    """(name, RGB image, SHA-256 of the file) per photograph; an MPO's first frame."""
    out = []
    for name, path in paths:
        raw = path.read_bytes()
        image = Image.open(io.BytesIO(raw))
        image.seek(0)
        out.append((name, image.convert("RGB"), hashlib.sha256(raw).hexdigest()))
    return out


# ------------------------------------------------------------------ the base images


def iou(rects: np.ndarray, r: tuple[int, int, int, int]) -> np.ndarray:
    if len(rects) == 0:
        return np.zeros(0)
    x0 = np.maximum(rects[:, 0], r[0])
    y0 = np.maximum(rects[:, 1], r[1])
    x1 = np.minimum(rects[:, 2], r[2])
    y1 = np.minimum(rects[:, 3], r[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    a = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    b = (r[2] - r[0]) * (r[3] - r[1])
    return inter / (a + b - inter)


def usable(im: Image.Image) -> bool:
    """The clean set's filter: not dark, light, flat or soft (measured with neither tool)."""
    g = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    if not (0.15 <= g.mean() <= 0.85 and g.std() >= 0.07):
        return False
    p5, p99 = np.percentile(g, [5, 99])
    if p99 < 0.45 or p5 > 0.85:
        return False
    # mean |Laplacian| at 128 px; the floor drops the softest few percent
    s = im.convert("L")
    s.thumbnail((128, 128), Image.Resampling.BOX)
    a = np.asarray(s, dtype=np.float32)
    lap = np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])
    return float(lap.mean()) >= 6.0


def out_size(aspect: float, long_out: int) -> tuple[int, int]:
    if aspect >= 1:
        return long_out, round(long_out / aspect)
    return round(long_out * aspect), long_out


class Cropper:
    """New crops of the photographs, each with IoU < MAX_IOU against every earlier one."""

    def __init__(self, sources: list[tuple[str, Image.Image, str]], rng: random.Random) -> None:
        self.sources = sources
        self.rng = rng
        self.rects = {name: np.zeros((0, 4)) for name, _, _ in sources}
        self.weights = [math.sqrt(im.width * im.height) for _, im, _ in sources]
        self.failures = 0
        self.rejected = 0

    def _rect(self, src: Image.Image, a: float, long_out: int) -> tuple[int, int, int, int] | None:
        rng = self.rng
        lo = max(long_out / 1.6, 120)
        hi = min(src.width, src.height * a) if a >= 1 else min(src.height, src.width / a)
        if hi < lo:
            return None
        long_crop = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        cw, ch = (long_crop, long_crop / a) if a >= 1 else (long_crop * a, long_crop)
        cw, ch = int(cw), int(ch)
        if cw > src.width or ch > src.height or min(cw, ch) < 8:
            return None
        x0 = rng.randint(0, src.width - cw)
        y0 = rng.randint(0, src.height - ch)
        return (x0, y0, x0 + cw, y0 + ch)

    def crop(self, aspect: float | None = None, long_range=(192, 320)) -> Crop | None:
        """A new usable crop, or None after 400 tries (the photographs are full)."""
        if not self.sources:
            return None
        rng = self.rng
        for _ in range(400):
            name, src, _ = rng.choices(self.sources, weights=self.weights)[0]
            a = aspect or rng.choice(ASPECTS)
            long_out = rng.randint(*long_range)
            r = self._rect(src, a, long_out)
            if r is None or (iou(self.rects[name], r) >= MAX_IOU).any():
                continue
            im = src.crop(r).resize(out_size(a, long_out), Image.Resampling.LANCZOS)
            self.rects[name] = np.vstack([self.rects[name], r])  # never tried again
            if not usable(im):
                self.rejected += 1
                continue
            self.failures = 0
            return {"image": im, "source": name, "rect": list(r)}
        self.failures += 1
        return None


def synthetic(rng: random.Random, nrng: np.random.Generator) -> Crop:
    """A scene of shapes over a gradient, with texture noise: distinct by construction."""
    w, h = out_size(rng.choice(ASPECTS), rng.randint(192, 320))
    c0 = np.array([rng.randint(30, 225) for _ in range(3)], dtype=np.float32)
    c1 = np.array([rng.randint(30, 225) for _ in range(3)], dtype=np.float32)
    t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
    grad = c0[None, :] * (1 - t[:, None]) + c1[None, :] * t[:, None]
    if len(t) == w:
        arr = np.broadcast_to(grad[None, :, :], (h, w, 3))
    else:
        arr = np.broadcast_to(grad[:, None, :], (h, w, 3))
    im = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im, "RGBA")
    for _ in range(rng.randint(12, 40)):
        col = tuple(rng.randint(0, 255) for _ in range(3)) + (rng.randint(120, 255),)
        x0, y0 = rng.uniform(-0.2, 1) * w, rng.uniform(-0.2, 1) * h
        sw, sh = rng.uniform(0.05, 0.5) * w, rng.uniform(0.05, 0.5) * h
        kind = rng.random()
        if kind < 0.4:
            d.ellipse([x0, y0, x0 + sw, y0 + sh], fill=col)
        elif kind < 0.7:
            d.rectangle([x0, y0, x0 + sw, y0 + sh], fill=col)
        elif kind < 0.9:
            pts = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(rng.randint(3, 6))]
            d.polygon(pts, fill=col)
        else:
            d.line([x0, y0, x0 + sw, y0 + sh], fill=col, width=rng.randint(2, 8))
    im = im.filter(ImageFilter.GaussianBlur(0.7))
    noise = nrng.normal(0, rng.uniform(4, 10), (h, w, 1)).astype(np.float32)
    arr = np.clip(np.asarray(im, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return {"image": Image.fromarray(arr, "RGB"), "source": "synthetic", "rect": None}


# ------------------------------------------------------------------ planted images


def encode(im: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, "JPEG", quality=quality)
    else:
        im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def hue_shift(im: Image.Image, shift: int) -> Image.Image:
    h, s, v = im.convert("HSV").split()
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _changed(kind: str, im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict]:
    """A resized, cropped or recoloured copy of `im` and its parameters."""
    w, h = im.size
    if kind in ("resize_half", "resize_075"):
        f = 0.5 if kind == "resize_half" else 0.75
        size = (max(1, round(w * f)), max(1, round(h * f)))
        return im.resize(size, Image.Resampling.LANCZOS), {}
    if kind in ("crop_5", "crop_10"):
        f = 0.05 if kind == "crop_5" else 0.10
        edge = rng.choice(["left", "right", "top", "bottom"])
        dx, dy = round(w * f), round(h * f)
        box = {
            "left": (dx, 0, w, h),
            "right": (0, 0, w - dx, h),
            "top": (0, dy, w, h),
            "bottom": (0, 0, w, h - dy),
        }[edge]
        return im.crop(box), {"edge": edge}
    if kind in ("brightness", "contrast"):
        f = rng.choice([rng.uniform(0.75, 0.9), rng.uniform(1.1, 1.25)])
        enhancer = ImageEnhance.Brightness if kind == "brightness" else ImageEnhance.Contrast
        return enhancer(im).enhance(f), {"factor": round(f, 3)}
    if kind == "hue":
        s = rng.choice([-1, 1]) * rng.randint(7, 21)  # 10..30 degrees
        return hue_shift(im, s), {"shift_degrees": round(s * 360 / 256, 1)}
    raise ValueError(kind)


def make_copy(kind: str, data: bytes, fmt: str, rng: random.Random) -> tuple[bytes, str, dict]:
    """The planted copy's bytes, format and parameters."""
    if kind == "exact":
        return data, fmt, {}
    im = decode(data).convert("RGB")
    if kind == "jpeg_requality":
        q = rng.randint(50, 95)
        return encode(im, "jpeg", q), "jpeg", {"quality": q}
    if kind == "png_to_jpeg":
        return encode(im, "jpeg", 90), "jpeg", {"quality": 90}
    if kind == "jpeg_to_png":
        return encode(im, "png"), "png", {}
    im, params = _changed(kind, im, rng)
    return encode(im, fmt, 90), fmt, params


def uniform(rng: random.Random, nrng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A flat colour or a faint gradient, with at most faint noise: nothing to learn.
    Mid-tones only (each channel 90..170, the gradient +-20): a black or white flat
    image is also dark or light, two problems where the truth names one (both tools
    flagged such images, and were counted wrong for it)."""
    w, h = out_size(rng.choice([1.0, 4 / 3, 3 / 4]), rng.randint(192, 320))
    c0 = np.array([rng.randint(90, 170) for _ in range(3)], dtype=np.float32)
    sigma = rng.choice([0.0, rng.uniform(0.5, 2.5)])
    if rng.random() < 0.5:
        arr = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
        variant = "flat"
    else:
        c1 = np.clip(c0 + np.array([rng.randint(-20, 20) for _ in range(3)]), 0, 255)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        arr = np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3)).astype(np.float32)
        variant = "gradient"
    if sigma:
        arr = arr + nrng.normal(0, sigma, (h, w, 3))
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return im, {"variant": variant, "noise_sigma": round(sigma, 2)}


def make_issue(kind: str, im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict]:
    """An image no model should see, made from the crop `im`, and its parameters."""
    if kind == "dark":
        f = rng.uniform(0.08, 0.3)
        return ImageEnhance.Brightness(im).enhance(f), {"factor": round(f, 3)}
    if kind == "light":
        f = rng.uniform(0.75, 0.95)
        white = Image.new("RGB", im.size, "white")
        return Image.blend(im, white, f), {"white_blend": round(f, 3)}
    if kind == "blurry":
        r = rng.uniform(1.5, 4.0) * max(im.size) / 256
        return im.filter(ImageFilter.GaussianBlur(r)), {"radius_px": round(r, 2)}
    if kind == "grayscale":
        g = im.convert("L")
        if rng.random() < 0.5:
            return g, {"mode": "L"}
        return g.convert("RGB"), {"mode": "RGB"}
    if kind == "odd_aspect":
        return im, {"aspect": "10:1"}
    if kind == "tiny":
        return im.resize((8, 8), Image.Resampling.LANCZOS), {"size": [8, 8]}
    raise ValueError(kind)


def pick_split(rng: random.Random, avoid: str | None = None) -> str:
    names = [s for s, _ in SPLITS if s != avoid]
    weights = [w for s, w in SPLITS if s != avoid]
    return rng.choices(names, weights=weights)[0]


# ------------------------------------------------------------------ the corpus


class Corpus:
    """The images, their bytes and the truth, built in a fixed order from one seed."""

    def __init__(self, seed: int, sources: list[tuple[str, Image.Image, str]]) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.nrng = np.random.Generator(np.random.PCG64(seed))
        self.cropper = Cropper(sources, self.rng)
        self.images: dict[str, dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.pairs: list[list] = []
        self.issues: dict[str, list[str]] = {k: [] for k in ISSUE_KINDS}
        self.count = 0

    def new_key(self, split: str, fmt: str) -> str:
        self.count += 1
        name = hashlib.sha256(f"{self.seed}:{self.count}".encode()).hexdigest()[:16]
        return f"{split}/{name}.{'jpg' if fmt == 'jpeg' else 'png'}"

    def photo_or_synthetic(self) -> Crop:
        c = self.cropper.crop() if self.cropper.failures < 50 else None
        return c if c is not None else synthetic(self.rng, self.nrng)

    def odd_aspect_crop(self) -> Crop:
        """A 10:1 crop of a photograph, or a strip of a synthetic scene when none is left."""
        a = self.rng.choice([10.0, 0.1])
        crop = self.cropper.crop(aspect=a, long_range=(300, 500))
        if crop is None:
            crop = synthetic(self.rng, self.nrng)
            w, h = crop["image"].size
            size = (w, max(1, w // 10)) if a > 1 else (max(1, h // 10), h)
            crop["image"] = crop["image"].resize(size, Image.Resampling.LANCZOS)
        return crop

    def add_issues(self, per_kind: int) -> None:
        """The issue images first, so that photographs' crops are spent on them."""
        rng = self.rng
        for kind in ISSUE_KINDS:
            for _ in range(per_kind):
                crop: Crop | None = None
                if kind == "uniform":
                    im, params = uniform(rng, self.nrng)
                else:
                    crop = self.odd_aspect_crop() if kind == "odd_aspect" else None
                    crop = crop or self.photo_or_synthetic()
                    im, params = make_issue(kind, crop["image"], rng)
                fmt = "jpeg" if rng.random() < 0.75 else "png"
                if kind == "uniform" and params["noise_sigma"] == 0 and rng.random() < 0.5:
                    fmt = "png"
                split = pick_split(rng)
                key = self.new_key(split, fmt)
                self.blobs[key] = encode(im, fmt, rng.randint(80, 95))
                self.images[key] = {
                    "split": split,
                    "kind": kind,
                    "format": fmt,
                    "size": list(im.size),
                    "mode": im.mode,
                    "params": params,
                    "source": crop["source"] if crop else "synthetic",
                    "rect": crop["rect"] if crop else None,
                }
                self.issues[kind].append(key)

    def add_bases(self, n_base: int, started: float) -> list[str]:
        rng = self.rng
        keys = []
        for i in range(n_base):
            c = self.photo_or_synthetic()
            fmt = "jpeg" if rng.random() < 0.75 else "png"
            q = rng.randint(80, 95)
            split = pick_split(rng)
            key = self.new_key(split, fmt)
            self.blobs[key] = encode(c["image"], fmt, q)
            self.images[key] = {
                "split": split,
                "kind": "base",
                "format": fmt,
                "size": list(c["image"].size),
                "mode": "RGB",
                "source": c["source"],
                "rect": c["rect"],
                "params": {"quality": q} if fmt == "jpeg" else {},
            }
            keys.append(key)
            if i % 2000 == 1999:
                click.echo(f"  {i + 1} base images, {time.time() - started:.0f} s", err=True)
        return keys

    def add_copies(self, per_kind: int, base_keys: list[str]) -> None:
        """Copies of distinct base images; the original stays in the corpus."""
        rng = self.rng
        jpeg = [k for k in base_keys if self.images[k]["format"] == "jpeg"]
        png = [k for k in base_keys if self.images[k]["format"] == "png"]
        rng.shuffle(jpeg)
        rng.shuffle(png)
        fixed = {"png_to_jpeg": png, "jpeg_to_png": jpeg, "jpeg_requality": jpeg}
        used: set[str] = set()
        for kind in COPY_KINDS:
            # (a draw for the kinds that pick a pool per copy too: it keeps the seed's bytes)
            pool = fixed[kind] if kind in fixed else (jpeg if rng.random() < 0.75 else png)
            for _ in range(per_kind):
                if kind not in fixed:
                    pool = jpeg if rng.random() < 0.75 else png
                src = next(k for k in pool if k not in used)
                used.add(src)
                self.add_copy(kind, src)

    def add_copy(self, kind: str, src: str) -> None:
        rng = self.rng
        data, fmt, params = make_copy(kind, self.blobs[src], self.images[src]["format"], rng)
        leak = rng.random() < LEAK_P
        split = pick_split(rng, avoid=self.images[src]["split"]) if leak else None
        split = split or self.images[src]["split"]
        key = self.new_key(split, fmt)
        self.blobs[key] = data
        im = decode(data)
        self.images[key] = {
            "split": split,
            "kind": kind,
            "format": fmt,
            "size": list(im.size),
            "mode": im.mode,
            "of": src,
            "params": params,
            "source": self.images[src]["source"],
            "rect": self.images[src]["rect"],
        }
        self.pairs.append([src, key, kind, split != self.images[src]["split"]])


def build(n: int, out: Path, seed: int = 40, cache: Path = CACHE, frac: float = 0.01) -> dict:
    """Write the corpus of `n` images into `out`; return the truth's `meta`."""
    started = time.time()
    paths, notes = fetch_photographs(cache)
    sources = load_sources(paths)
    corpus = Corpus(seed, sources)
    per_kind = max(1, round(n * frac))
    n_base = n - per_kind * (len(COPY_KINDS) + len(ISSUE_KINDS))
    corpus.add_issues(per_kind)
    base_keys = corpus.add_bases(n_base, started)
    corpus.add_copies(per_kind, base_keys)
    for key, data in corpus.blobs.items():
        path = out / "images" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    images = corpus.images
    n_photo = sum(1 for v in images.values() if v["source"] != "synthetic")
    cropper = corpus.cropper
    meta = {
        "seed": seed,
        "n": len(images),
        "per_kind": per_kind,
        "leak_p": LEAK_P,
        "max_iou": MAX_IOU,
        "pillow": Image.__version__,
        "numpy": np.__version__,
        "sources": [{"name": nm, "sha256": h, "size": list(im.size)} for nm, im, h in sources],
        "sources_missing": notes,
        "photo_crops": sum(len(r) for r in cropper.rects.values()) - cropper.rejected,
        "photo_crops_rejected_as_unusable": cropper.rejected,
        "images_from_photos": n_photo,
        "images_synthetic": len(images) - n_photo,
        "bytes": sum(len(b) for b in corpus.blobs.values()),
        "build_seconds": round(time.time() - started, 1),
    }
    truth = {
        "meta": meta,
        "images": dict(sorted(images.items())),
        "pairs": corpus.pairs,
        "issues": corpus.issues,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return meta


@click.command()
@click.option("--images", "n", default=2000, show_default=True, help="How many images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", default=40, show_default=True)
def cli(n: int, out: Path, seed: int) -> None:
    """Build the planted corpus into OUT (OUT/images/ and OUT/truth.json)."""
    if (out / "images").exists():
        raise click.ClickException(f"{out}/images exists: remove it first")
    meta = build(n, out, seed)
    click.echo(json.dumps({k: v for k, v in meta.items() if k != "sources"}, indent=1))


if __name__ == "__main__":
    cli()
