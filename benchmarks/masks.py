"""What naming a mask's classes costs ingest (annotations/classes.py): the one decode of
each new or changed class-id mask, at Pascal VOC's size (500 x 375, palette) and
Cityscapes' (2048 x 1024, grey labelIds); then whole first ingests of such pairs, the
masks' classes described and not (the rest of ingest's work: reading and hashing every
file, parsing its header, the layout rules).

    .venv/bin/python benchmarks/masks.py [--pairs 400]

Every row compares two figures of the same run (the machines are noisy: quote ratios).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import imageshelf.stages.ingest as ingest_stage  # noqa: E402
from imageshelf.annotations.classes import mask_values  # noqa: E402
from imageshelf.project.params import AnnotationsParams, IngestParams  # noqa: E402

LIMIT = IngestParams().max_pixels


def a_mask(size: tuple[int, int], mode: str, ids: list[int], seed: int) -> bytes:
    """A mask as annotators draw them: a background and a few filled polygons, each of
    one class, VOC's 255 border around them where the mode is a palette."""
    rng = random.Random(seed)
    image = Image.new(mode, size, ids[0])
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        points = [
            (
                x + rng.randrange(-width // 4, width // 4),
                y + rng.randrange(-height // 4, height // 4),
            )
            for _ in range(6)
        ]
        outline = 255 if mode == "P" else None
        draw.polygon(points, fill=rng.choice(ids[1:]), outline=outline, width=3)
    if mode == "P":
        image.putpalette([rng.randrange(256) for _ in range(768)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def per_mask(masks: list[bytes], work: Callable[[bytes], object], repeat: int = 3) -> float:
    """Milliseconds a mask: the best of `repeat` passes over different masks (one mask
    again and again sits in the CPU's caches and looks cheaper than ingest finds it)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for data in masks:
            work(data)
        best = min(best, time.perf_counter() - start)
    return best / len(masks) * 1000


def each_mask(count: int) -> None:
    print("| one mask | bytes | its classes (one decode) |")
    print("|---|---:|---:|")
    cases = (
        ("Pascal VOC, 500 x 375 palette", (500, 375), "P", [0, 8, 12, 15]),
        ("Cityscapes, 2048 x 1024 grey", (2048, 1024), "L", [7, 8, 11, 21, 23, 24, 26]),
    )
    for name, size, mode, ids in cases:
        masks = [a_mask(size, mode, ids, seed) for seed in range(count)]
        classes = per_mask(masks, lambda data: mask_values(data, LIMIT))
        print(f"| {name} | {statistics.mean(map(len, masks)):,.0f} | {classes:.2f} ms |")


def voc_pair(i: int) -> dict[str, bytes]:
    """torchvision's VOCSegmentation layout: a 500 x 375 JPEG and its palette mask."""
    out = io.BytesIO()
    Image.effect_noise((500, 375), 40).convert("RGB").save(out, "JPEG", quality=85)
    name = f"VOC2012/{{}}/2007_{i:06d}"
    mask = a_mask((500, 375), "P", [0, 8, 12, 15], seed=i)
    return {
        name.format("JPEGImages") + ".jpg": out.getvalue(),
        name.format("SegmentationClass") + ".png": mask,
    }


def cityscapes_image() -> bytes:
    """A 2048 x 1024 PNG of about 2 MB, as Cityscapes' leftImg8bit are (smooth, with
    sensor noise): one, reused (ingest hashes it each time all the same)."""
    noise = Image.effect_noise((2048, 1024), 12).convert("L")
    ramp = Image.linear_gradient("L").resize((2048, 1024))
    mirrored = ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = Image.merge(
        "RGB", (ImageChops.add(ramp, noise, 2), ramp, ImageChops.add(mirrored, noise, 2))
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def cityscapes_pair(i: int, image: bytes) -> dict[str, bytes]:
    name = f"cityscapes/{{}}/train/aachen/aachen_{i:06d}_000019_{{}}.png"
    mask = a_mask((2048, 1024), "L", [7, 8, 11, 21, 23, 24, 26], seed=i)
    return {
        name.format("leftImg8bit", "leftImg8bit"): image,
        name.format("gtFine", "gtFine_labelIds"): mask,
    }


def _not_looked_at(data: bytes, max_pixels: int) -> tuple[int, ...]:
    return ()


def whole_ingest(name: str, pairs: list[dict[str, bytes]]) -> None:
    """A first ingest of image and mask pairs, the masks' classes described and not."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # no .dvc/ here: no cache, every file probed on every run
        for pair in pairs:
            for rel, data in pair.items():
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / rel).write_bytes(data)
        params, rules = IngestParams(), AnnotationsParams()
        timings: dict[bool, list[float]] = {}
        for described in (True, False, True, False):
            if not described:  # the masks stored, their classes not looked at
                ingest_stage.mask_values = _not_looked_at
            start = time.perf_counter()
            result = ingest_stage.ingest(Path(tmp), params, rules)
            timings.setdefault(described, []).append(time.perf_counter() - start)
            ingest_stage.mask_values = mask_values
            assert len(result.staged) == len(pairs), result.summary()
        with_, without = min(timings[True]), min(timings[False])
        extra = (with_ - without) / len(pairs) * 1000
        print(
            f"| {len(pairs)} {name} pairs | {without:.2f} s | {with_:.2f} s | "
            f"{with_ / without:.2f}x | {extra:.1f} ms |"
        )
        os.chdir(PROJECT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400, help="VOC's; Cityscapes' a tenth")
    parser.add_argument("--masks", type=int, default=40, help="different masks per size")
    args = parser.parse_args()
    each_mask(args.masks)
    print("\n| a first ingest (no cache) | masks stored | and their classes | ratio | a mask |")
    print("|---|---:|---:|---:|---:|")
    whole_ingest("Pascal VOC", [voc_pair(i) for i in range(args.pairs)])
    image = cityscapes_image()
    whole_ingest("Cityscapes", [cityscapes_pair(i, image) for i in range(args.pairs // 10)])


if __name__ == "__main__":
    main()
