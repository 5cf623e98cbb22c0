"""Built-in sample images for the demo: the same bytes on every run.

Shapes for classification (labels in a labels.csv, boxes in sidecars), rendered words
for OCR (text in a metadata.jsonl), every supported format, nested folders, and a few
broken files that ingest must reject with a reason.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..base.atomic import write_bytes

SHAPES = ("circle", "square", "triangle")
PER_SHAPE = 8
FORMATS = (
    ("PNG", "png"),
    ("JPEG", "jpg"),
    ("WEBP", "webp"),
    ("GIF", "gif"),
    ("TIFF", "tif"),
    ("BMP", "bmp"),
)
WORDS = ("invoice", "total", "date", "amount", "paid", "receipt", "tax", "cash")


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    image.save(out, fmt, **options)
    return out.getvalue()


def _shape(label: str, rng: random.Random) -> tuple[Image.Image, list[int]]:
    size = rng.choice((64, 80, 96))
    background = tuple(rng.randrange(150, 256) for _ in range(3))
    colour = tuple(rng.randrange(0, 120) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    x0, y0 = rng.randrange(4, size // 3), rng.randrange(4, size // 3)
    x1, y1 = rng.randrange(2 * size // 3, size - 4), rng.randrange(2 * size // 3, size - 4)
    if label == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif label == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:
        draw.polygon(((x0 + x1) // 2, y0, x1, y1, x0, y1), fill=colour)
    return image, [x0, y0, x1, y1]


def _word(text: str) -> Image.Image:
    image = Image.new("L", (120, 32), 255)
    ImageDraw.Draw(image).text((8, 10), text, fill=0, font=ImageFont.load_default())
    return image


def sample_files() -> dict[str, bytes]:
    """Relative path -> bytes of every sample file, good and broken."""
    rng = random.Random(2026)
    files: dict[str, bytes] = {}
    csv_rows = ["path,label"]
    for label in SHAPES:
        for i in range(PER_SHAPE):
            fmt, ext = FORMATS[(i + SHAPES.index(label)) % len(FORMATS)]
            image, box = _shape(label, rng)
            name = f"{label}/{label}_{i:02d}.{ext}"
            files[f"shapes/{name}"] = _encode(image, fmt)
            csv_rows.append(f"{name},{label}")
            if i % 2 == 0:  # boxes for half of them, in sidecars, as COCO's objects
                x0, y0, x1, y1 = box
                shape = {"bbox": [x0, y0, x1 - x0, y1 - y0], "category": label}
                files[f"shapes/{name}.json"] = json.dumps({"objects": [shape]}).encode()
    files["shapes/labels.csv"] = ("\n".join(csv_rows) + "\n").encode()

    lines = []
    for i, word in enumerate(WORDS):
        files[f"words/word_{i:02d}.png"] = _encode(_word(word), "PNG")
        lines.append(json.dumps({"path": f"word_{i:02d}.png", "label": "word", "text": word}))
    files["words/metadata.jsonl"] = ("\n".join(lines) + "\n").encode()

    good_png = files["shapes/circle/circle_00.png"]
    files["broken/empty.jpg"] = b""
    files["broken/truncated.png"] = good_png[: len(good_png) // 2]
    files["broken/notes.jpg"] = b"This is a text file with an image's name.\n"
    files["broken/bad_metadata.png"] = _encode(_shape("square", rng)[0], "PNG")
    files["broken/bad_metadata.png.json"] = b'{"label": "square",'
    return files


def write_samples(folder: Path) -> dict[str, int]:
    """Write the samples under `folder`; files already there with the same bytes are kept."""
    written = kept = 0
    for rel, data in sample_files().items():
        path = folder / rel
        if path.exists() and path.read_bytes() == data:
            kept += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
        written += 1
    return {"written": written, "kept": kept}
