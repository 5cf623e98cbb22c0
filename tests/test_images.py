"""Recognising images from their bytes, without decoding pixels."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from imageshelf.images.recognise import NotAnImageError, describe, probe

from conftest import FORMATS, make_image


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_format_and_size_from_the_header(fmt):
    header = probe(make_image(fmt, (37, 21)))
    assert (header.format, header.width, header.height) == (fmt.lower(), 37, 21)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_image_is_rejected_as_truncated(fmt):
    data = make_image(fmt, (64, 48), seed=3)
    for cut in (len(data) // 2, len(data) - 1 if fmt != "JPEG" else len(data) - 2):
        with pytest.raises(NotAnImageError) as caught:
            probe(data[:cut])
        assert caught.value.code == "truncated", caught.value.reason


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty"),
        (b"just some text, named .jpg", "not_image"),
        (png_declaring(100_000, 100_000), "too_large"),
        (png_declaring(0, 10), "bad_header"),
    ],
)
def test_unusable_bytes_get_a_code_and_a_reason(data, code):
    with pytest.raises(NotAnImageError) as caught:
        probe(data)
    assert caught.value.code == code
    assert caught.value.reason and "\n" not in caught.value.reason


def test_the_pixel_limit_is_a_setting():
    data = make_image("PNG", (100, 100))
    assert probe(data, max_pixels=10_000).width == 100
    with pytest.raises(NotAnImageError, match="100x100 pixels, over the limit of 9999"):
        probe(data, max_pixels=9_999)


def test_describe_hashes_the_bytes_as_they_are():
    data = make_image("JPEG")
    record = describe("a/b.jpg", data, {"label": "x"})
    assert record.info.sha256 == hashlib.sha256(data).hexdigest()
    assert record.info.size == len(data) and record.metadata == {"label": "x"}


MORE_FORMATS = (
    "AVIF", "DDS", "DIB", "ICO", "IM", "JPEG2000", "MSP", "PCX", "PPM", "QOI", "SGI",
    "SPIDER", "TGA", "XBM",
    "HEIF", "JXL",  # the `formats` extra (pillow-heif, pillow-jxl-plugin), which the tests install
)  # fmt: skip


def _saved(fmt: str) -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (40, 30), (200, 30, 60))
    if fmt in ("XBM", "MSP"):
        image = image.convert("1")
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", MORE_FORMATS)
def test_every_raster_format_pillow_reads_is_stored_byte_identical(workspace, fmt):
    from imageshelf.store import ImageStore

    from conftest import put, stage

    data = _saved(fmt)
    put(workspace / "data" / "incoming", {f"x.{fmt.lower()}": data})
    assert stage("ingest").exit_code == 0 and stage("pack").exit_code == 0
    with ImageStore(workspace / "data" / "images.lmdb") as store:
        assert store.get(f"x.{fmt.lower()}") == data
        info = store.info(f"x.{fmt.lower()}")
    assert info.format == fmt.lower() and (info.width, info.height)[0] > 0


def test_a_vector_format_pillow_identifies_is_refused_with_a_reason():
    with pytest.raises(NotAnImageError, match="EPS is a format Pillow identifies but does not"):
        probe(_saved("EPS"))


def test_verify_decode_proves_what_a_header_read_cannot(workspace):
    from conftest import put, report, stage

    whole = _saved("PPM")
    put(workspace / "data" / "incoming", {"cut.ppm": whole[: len(whole) - 500]})
    assert stage("ingest").exit_code == 0
    assert report("ingest")["staged"] == 1  # a PPM gets a header read only by default
    params = workspace / "params.yaml"
    params.write_text(params.read_text().replace("verify: header", "verify: decode"))
    assert stage("ingest").exit_code == 0
    found = report("ingest")
    assert found["staged"] == 0 and found["rejects"][0]["code"] == "undecodable"


def test_decoder_messages_go_into_the_report_not_through_the_progress_bar(workspace):
    import io
    import random
    import subprocess

    from PIL import Image

    from conftest import command_line, put, report

    rng = random.Random(1)
    noise = bytes(rng.randrange(256) for _ in range(64 * 64 * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (64, 64), noise).save(out, "TIFF", compression="tiff_lzw")
    damaged = bytearray(out.getvalue())
    damaged[200:400] = b"\xff" * 200  # inside the LZW strip: libtiff complains on stderr
    put(workspace / "data" / "incoming", {"bad.tif": bytes(damaged)})
    params = workspace / "params.yaml"
    params.write_text(params.read_text().replace("verify: header", "verify: decode"))
    result = subprocess.run(command_line("ingest"), cwd=workspace, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    reject = report("ingest")["rejects"][0]
    assert reject["code"] == "undecodable" and "Using code not yet in table" in reject["reason"]
    raw = [line for line in result.stderr.splitlines() if line.startswith("tempfile.tif:")]
    assert raw == []  # libtiff's own line never reaches the terminal


def _variants() -> list[bytes]:
    """JPEG and PNG files as tools write them: every mode, progressive, interlaced,
    with EXIF, ICC, DPI, text, palettes and transparency."""
    import io

    from PIL import Image, PngImagePlugin

    base = Image.radial_gradient("L").resize((33, 20))
    out = []

    def save(im: Image.Image, fmt: str, **options) -> None:
        buffer = io.BytesIO()
        im.save(buffer, fmt, **options)
        out.append(buffer.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    for mode in ("L", "RGB", "CMYK"):
        im = base.convert(mode)
        save(im, "JPEG")
        save(im, "JPEG", progressive=True, optimize=True, dpi=(300, 300))
        save(im, "JPEG", exif=exif.tobytes(), icc_profile=b"x" * 300, comment=b"hello")
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "a tool")
    text.add_text("Comment", "zipped", zip=True)
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        im = base.convert(mode)
        save(im, "PNG")
        save(im, "PNG", pnginfo=text, dpi=(72, 72))
    save(base.convert("P"), "PNG", transparency=0)
    return out


def _crafted(variants: list[bytes]) -> list[bytes]:
    """Segments and chunks Pillow reads before the pixels, each shorter than it reads or
    changing what the file is: inserted into a JPEG after its start, a PNG after IHDR."""
    jpeg = next(v for v in variants if v.startswith(b"\xff\xd8"))
    png = next(v for v in variants if v.startswith(b"\x89PNG"))

    def segment(marker: int, body: bytes) -> bytes:
        return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body + jpeg[2:]

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return png[:33] + struct.pack(">I", len(body)) + kind + body + crc + png[33:]

    return [
        segment(0xE0, b"JFIF\0"),
        segment(0xE2, b"ICC_PROFILE\0\1"),
        segment(0xE2, b"MPF\0II*\0\x08\0\0\0"),
        segment(0xED, b"Photoshop 3.0\x008BIM\x03\xed"),
        segment(0xEE, b"Adobe"),
        segment(0xDB, b"\x10" + b"\1" * 64),
        segment(0xC3, b"\x08\0\1\0\1\1\1\x11\0"),
        segment(0xDD, b"\0"),
        *(chunk(kind, b"\1") for kind in (b"pHYs", b"gAMA", b"tRNS", b"cHRM", b"iCCP", b"zTXt")),
        chunk(b"sRGB", b""),
        chunk(b"acTL", b"\0\0\0\2\0\0\0\0"),
        chunk(b"b@d!", b""),
    ]


def _outcome(data: bytes):
    try:
        header = probe(data)
    except NotAnImageError as exc:
        return exc.code, exc.reason
    return header.format, header.width, header.height


def test_the_plain_header_walk_says_what_pillow_says(monkeypatch):
    """images/headers.py reads plain JPEG and PNG headers without Pillow: on every variant a
    tool writes, and on each of them cut short or with one byte of its header changed,
    probing gives the same verdict, word for word, as asking Pillow."""
    import imageshelf.images.recognise as images
    from imageshelf.images.headers import plain_header

    variants = _variants()
    assert sum(plain_header(data) is not None for data in variants) >= len(variants) // 2
    cases = variants + _crafted(variants)
    for data in variants:
        head = min(len(data), 160)
        cases += [data[:cut] for cut in range(2, head, 3)]
        for at in range(2, head):
            for value in (0x00, 0xFF, data[at] ^ 0x10):
                cases.append(data[:at] + bytes([value]) + data[at + 1 :])
    walked = [_outcome(data) for data in cases]
    monkeypatch.setattr(images, "plain_header", lambda data: None)
    for data, ours in zip(cases, walked, strict=True):
        assert ours == _outcome(data), data[:48]
