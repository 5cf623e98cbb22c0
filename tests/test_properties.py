"""An image's properties from its bytes: the hashes find its copies and nothing else, the
measures move as a person would expect, the same bytes give the same numbers anywhere,
and no file, however made, raises."""

from __future__ import annotations

import hashlib
import io
import math
import multiprocessing
import random
import struct
import zlib
from itertools import combinations
from pathlib import Path

import orjson
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from imageshelf.images.properties import COSINES, HASH_SIDE, PROPS_VERSION, SCALE, properties

LIMIT = 50_000_000  # max_pixels for every image here but the bombs
FIELDS = [
    "v", "phash", "dhash", "mode", "mean", "p05", "p99", "contrast", "sharpness", "edges",
    "chroma", "colour", "entropy",
]  # fmt: skip
NEAR = 8  # the near-duplicate threshold the findings use (Hamming distance of 64 bits)


def scene(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A synthetic photograph: 12 to 40 translucent shapes over a two-colour gradient,
    softened, with noise from a seeded generator (never Pillow's effect_noise, whose C
    rand() differs between platforms): the same seed, the same pixels."""
    rng = random.Random(seed)
    width, height = size
    ends = [Image.new("RGB", size, tuple(rng.randrange(30, 226) for _ in range(3))) for _ in "ab"]
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        ramp = ramp.transpose(Image.Transpose.ROTATE_90).resize(size, Image.Resampling.BILINEAR)
    image = Image.composite(ends[0], ends[1], ramp)
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(rng.randint(12, 40)):
        fill = (*(rng.randrange(256) for _ in range(3)), rng.randint(120, 255))
        x, y = rng.uniform(-0.2, 1) * width, rng.uniform(-0.2, 1) * height
        box = [x, y, x + rng.uniform(0.05, 0.5) * width, y + rng.uniform(0.05, 0.5) * height]
        kind = rng.random()
        if kind < 0.4:
            draw.ellipse(box, fill=fill)
        elif kind < 0.7:
            draw.rectangle(box, fill=fill)
        elif kind < 0.9:
            corners = rng.randint(3, 6)
            draw.polygon(
                [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(corners)], fill=fill
            )
        else:
            draw.line(box, fill=fill, width=rng.randint(2, 8))
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    amplitude = rng.randint(8, 20)
    noise = Image.frombytes("RGB", size, rng.randbytes(width * height * 3))
    noise = noise.point(lambda v: v * amplitude // 255)
    return ImageChops.add(image, noise, offset=-(amplitude // 2))


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def props(data: bytes) -> dict:
    """properties() of bytes that must decode: the values, checked for shape."""
    found = properties(data, LIMIT)
    assert list(found) == FIELDS, found
    return found


# --- the pHash is imagehash's ------------------------------------------------------------

# What imagehash 4.3.2 (with Pillow 13.0.0, numpy 2.4.6, scipy 1.17.1) gives for
# PNG bytes of scene(seed, size):
#   FULL: str(imagehash.phash(Image.open(io.BytesIO(png)))), on the full image;
#   ON_OUR_INPUT: str(imagehash.phash(gray)), with gray the 32x32 image our pHash reads
#     (the reduced decode, converted to L, BOX-resized to 32x32; imagehash's own resize
#     of a 32x32 image to 32x32 leaves it as it is).
IMAGEHASH = {  # seed: (size, FULL, ON_OUR_INPUT)
    0: ((256, 192), "a8a29dc3e8633cd5", "a8a29dc3e8633cd5"),
    1: ((200, 260), "877f1cd819974c58", "877f1cd819954c5c"),
    2: ((320, 240), "c0bf55296b5a5e84", "c0bf55296ada5e84"),
    3: ((640, 480), "8d2372edb5c8948d", "8d2372edb5c89685"),
    4: ((97, 300), "fee0911ec68b700f", "fee0911ec68b700f"),
    5: ((1000, 750), "9fb307c13e031f19", "9fb307c53e031f18"),
}


@pytest.mark.parametrize("seed", sorted(IMAGEHASH))
def test_the_phash_is_imagehash_s_on_the_same_input_and_within_2_bits_on_the_full_image(seed):
    size, full, on_our_input = IMAGEHASH[seed]
    found = props(encoded(scene(seed, size)))["phash"]
    assert found == on_our_input
    assert distance(found, full) <= 2


def test_the_cosine_table_is_pinned_and_no_libm_can_change_it():
    """The integer DCT is exact only if every machine rounds the same cosines the same
    way: each entry is at least 0.04 from a rounding edge, where cos() errs by 1e-16."""
    table = repr(COSINES).encode()
    assert hashlib.sha256(table).hexdigest() == (
        "f591ec0005f683fba04d602bb151b0ccb8992622ef10480e9df632fb02236a3a"
    )
    for u, row in enumerate(COSINES):
        for x, entry in enumerate(row):
            exact = math.cos((2 * x + 1) * u * math.pi / (2 * HASH_SIDE)) * SCALE
            assert abs(exact - entry) < 0.5 - 0.04, (u, x)


# --- the hashes find copies, and only copies ---------------------------------------------


def _copies(image: Image.Image) -> dict[str, bytes]:
    """What people do to an image they keep twice: re-save, convert, resize, retouch."""
    width, height = image.size
    shrunk = {
        f"resized to {f}": image.resize(
            (round(width * f), round(height * f)), Image.Resampling.LANCZOS
        )
        for f in (0.5, 0.75)
    }
    retouched = {
        f"{kind.__name__.lower()} x{f}": kind(image).enhance(f)
        for kind in (ImageEnhance.Brightness, ImageEnhance.Contrast)
        for f in (0.85, 1.15)
    }
    copies = {f"JPEG quality {q}": encoded(image, "JPEG", quality=q) for q in (50, 75, 95)}
    copies["PNG"] = encoded(image)
    for name, changed in {**shrunk, **retouched}.items():
        copies[f"{name}, JPEG"] = encoded(changed, "JPEG", quality=90)
        copies[f"{name}, PNG"] = encoded(changed)
    return copies


@pytest.mark.parametrize("original_format", ["JPEG", "PNG"])
def test_a_re_encoded_resized_or_retouched_copy_is_within_the_near_threshold(original_format):
    for seed in (10, 11):
        original = encoded(
            scene(seed), original_format, **({"quality": 90} if original_format == "JPEG" else {})
        )
        mine = props(original)
        far = {
            name: distance(mine["phash"], props(copy)["phash"])
            for name, copy in _copies(decoded(original).convert("RGB")).items()
        }
        assert max(far.values()) <= NEAR, far


def test_unrelated_images_are_all_further_apart_than_the_threshold():
    sizes = [(256, 192), (192, 256), (300, 200), (240, 240)]
    hashes = [props(encoded(scene(20 + i, sizes[i % 4])))["phash"] for i in range(12)]
    closest = min(distance(a, b) for a, b in combinations(hashes, 2))
    assert closest > NEAR


# --- the measures move as a person would expect ------------------------------------------


def test_a_darkened_image_is_dark_and_a_whitened_one_light():
    photo = scene(30)
    dark = props(encoded(ImageEnhance.Brightness(photo).enhance(0.2), "JPEG"))
    light = props(encoded(Image.blend(photo, Image.new("RGB", photo.size, "white"), 0.85)))
    usual = props(encoded(photo))
    assert dark["p99"] < 0.30 < usual["p99"]
    assert light["p05"] > 0.75 > usual["p05"]
    assert dark["mean"] < usual["mean"] < light["mean"]


def relative_contrast(found: dict) -> float:
    return found["contrast"] / max(min(found["mean"], 1 - found["mean"]), 0.02)


def test_a_flat_colour_has_low_relative_contrast_and_a_photograph_not():
    faint = Image.frombytes("L", (200, 150), random.Random(1).randbytes(200 * 150))
    flat = ImageChops.add(
        Image.new("RGB", (200, 150), (90, 140, 200)), faint.point(lambda v: v // 64).convert("RGB")
    )
    for data in (encoded(flat), encoded(flat, "JPEG"), encoded(Image.new("L", (64, 64), 250))):
        assert relative_contrast(props(data)) < 0.07
    assert relative_contrast(props(encoded(scene(31)))) > 0.1


def test_a_blurred_copy_is_less_sharp_and_has_fewer_edges():
    for seed in (32, 33):
        photo = scene(seed)
        sharp = props(encoded(photo, "JPEG", quality=90))
        soft = props(encoded(photo.filter(ImageFilter.GaussianBlur(3)), "JPEG", quality=90))
        assert soft["sharpness"] < sharp["sharpness"]
        assert soft["edges"] < sharp["edges"]


def test_gray_pictures_have_no_chroma_whether_stored_as_l_or_as_rgb():
    gray = scene(34).convert("L")
    as_l = props(encoded(gray))
    assert (as_l["mode"], as_l["chroma"], as_l["colour"]) == ("L", 0, 0.0)
    for data in (encoded(gray.convert("RGB")), encoded(gray.convert("RGB"), "JPEG", quality=85)):
        as_rgb = props(data)
        assert as_rgb["mode"] == "RGB"
        assert as_rgb["chroma"] <= 3  # JPEG's chroma rounding leaves 0..2
    assert props(encoded(scene(34)))["chroma"] > 3


def test_a_colourful_image_is_more_colourful_than_its_gray_copy_or_a_dull_one():
    photo = scene(35)
    colourful = props(encoded(photo))["colour"]
    dull = props(encoded(ImageEnhance.Color(photo).enhance(0.3)))["colour"]
    gray = props(encoded(photo.convert("L").convert("RGB")))["colour"]
    assert colourful > dull > gray == 0.0


# --- every mode a file can decode to -----------------------------------------------------


def _gray_scene() -> Image.Image:
    return ImageOps.autocontrast(scene(40).convert("L"))  # levels 0 to 255, both used


def _in_mode(mode: str) -> bytes:
    gray, colour = _gray_scene(), scene(40)
    made = {
        "1": lambda: encoded(gray.convert("1")),
        "LA": lambda: encoded(Image.merge("LA", (gray, gray.point(lambda v: 255 - v)))),
        "P": lambda: encoded(colour.quantize(64)),
        "RGBA": lambda: encoded(Image.merge("RGBA", (*colour.split(), gray))),
        "CMYK": lambda: encoded(colour.convert("CMYK"), "TIFF"),
        "I;16": lambda: encoded(gray.convert("I").point(lambda v: v * 257).convert("I;16")),
        "I": lambda: encoded(gray.convert("I").point(lambda v: v * 1000 - 7000), "TIFF"),
        "F": lambda: encoded(gray.convert("F").point(lambda v: v / 255), "TIFF"),
    }
    return made[mode]()


def _same_but_mode(found: dict, expected: dict) -> bool:
    return {**found, "mode": ""} == {**expected, "mode": ""}


@pytest.mark.parametrize("mode", ["1", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_gives_values_as_its_8_bit_picture_would(mode):
    found = props(_in_mode(mode))
    assert found["mode"] == mode
    gray, colour = props(encoded(_gray_scene())), props(encoded(scene(40)))
    if mode in ("LA", "I;16"):  # alpha dropped; 16 bits read at their own scale
        assert _same_but_mode(found, gray)
    elif mode in ("RGBA", "CMYK"):  # alpha dropped; CMYK back to the same RGB
        assert _same_but_mode(found, colour)
    elif mode == "P":  # its palette's colours
        expected = props(encoded(decoded(_in_mode("P")).convert("RGB")))
        assert _same_but_mode(found, expected)
    else:  # dithered, or stretched over its own range: still the same picture
        assert distance(found["phash"], gray["phash"]) <= NEAR
        assert abs(found["mean"] - gray["mean"]) < 0.05
    if mode not in ("P", "RGBA", "CMYK"):
        assert (found["chroma"], found["colour"]) == (0, 0.0)


def test_a_dark_16_bit_image_is_dark():
    """16-bit pixels are read at their own scale (their top 8 bits): a picture using the
    lowest 1/8 of the range is dark, as a viewer at 16 bits shows it."""
    low = _gray_scene().convert("I").point(lambda v: v * 32).convert("I;16")
    assert props(encoded(low))["p99"] < 0.15


def test_a_cmyk_jpeg_is_read():
    found = props(encoded(scene(41).convert("CMYK"), "JPEG", quality=90))
    assert found["mode"] == "CMYK"
    assert distance(found["phash"], props(encoded(scene(41)))["phash"]) <= NEAR


# --- the same bytes, the same numbers ----------------------------------------------------


def _samples() -> list[bytes]:
    photo = scene(50)
    return [
        encoded(photo, "JPEG", quality=88),
        encoded(photo, "PNG"),
        encoded(photo.convert("L"), "WEBP", lossless=True),
        encoded(photo.quantize(32), "GIF"),
    ]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_the_same_bytes_give_the_same_properties_in_another_process(start):
    samples = _samples()
    here = [properties(data, LIMIT) for data in samples]
    assert here == [properties(data, LIMIT) for data in samples]
    with multiprocessing.get_context(start).Pool(1) as pool:
        there = pool.starmap(properties, [(data, LIMIT) for data in samples])
    assert there == here
    assert [orjson.loads(orjson.dumps(found)) for found in here] == here


RECORDED = Path(__file__).parent / "fixtures" / "props"


def test_committed_bytes_give_the_properties_recorded_when_they_were_made():
    """The same bytes, the same numbers on every machine and release: a JPEG decoded at
    full size, one decoded at half size by libjpeg's DCT scaling, and a PNG, measured
    when they were committed (PROPS_VERSION 1; Pillow and libjpeg-turbo as pinned).
    A difference here changes every store's records, so their DVC hashes."""
    recorded = orjson.loads((RECORDED / "properties.json").read_bytes())
    assert len(recorded) == 3
    for name, values in recorded.items():
        assert properties((RECORDED / name).read_bytes(), LIMIT) == values, name


def test_values_have_the_record_s_types():
    found = props(_samples()[0])
    assert found["v"] == PROPS_VERSION
    for name in ("phash", "dhash"):
        assert len(found[name]) == 16 and int(found[name], 16) >= 0
        assert found[name] == found[name].lower()
    assert isinstance(found["chroma"], int)
    rounded = [found[name] for name in FIELDS[4:] if name != "chroma"]
    assert all(isinstance(value, float) and round(value, 4) == value for value in rounded)
    flat = props(encoded(Image.new("L", (80, 80), 0)))
    assert math.copysign(1, flat["entropy"]) == 1  # 0.0, never -0.0


# --- hostile bytes: a reason, never an exception -----------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header declaring any size, with a few bytes of pixels behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _failed(data: bytes, max_pixels: int = LIMIT) -> str:
    found = properties(data, max_pixels)
    assert set(found) == {"v", "error"}, found
    assert found["v"] == PROPS_VERSION
    reason = found["error"]
    assert reason and "\n" not in reason and len(reason) <= 300
    return reason


def test_a_declared_size_over_the_limit_is_refused_before_any_pixel():
    assert _failed(png_declaring(20_000, 5_000), max_pixels=1_000_000).startswith("too_large")
    assert _failed(png_declaring(1_000_000, 1_000_000), max_pixels=1_000_000)


def test_a_jpeg_whose_decode_would_not_end_is_refused():
    endless = encoded(scene(60), "JPEG") + b"\xff\xda" * 101
    assert _failed(endless).startswith("too_costly")


def test_truncated_garbage_and_empty_bytes_give_a_reason():
    photo = scene(61)
    for data in (encoded(photo, "JPEG"), encoded(photo, "PNG")):
        assert _failed(data[: len(data) // 2]).startswith("undecodable")
    assert _failed(bytes(random.Random(2).randbytes(5000)))
    assert _failed(b"")


@pytest.mark.parametrize("size", [(1, 1), (10_000, 1), (1, 10_000), (2, 3)])
def test_the_smallest_and_thinnest_images_still_give_values(size):
    found = props(encoded(scene(62, (64, 64)).resize(size)))
    assert found["mode"] == "RGB"
