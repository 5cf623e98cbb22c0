"""Helpers every test uses: small real images, made on the spot, and real stores."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.images import describe
from pipeline.store import Item, rebuild

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "TIFF": "tif",
              "BMP": "bmp"}


def make_image(fmt: str = "PNG", size: tuple[int, int] = (32, 24), seed: int = 0) -> bytes:
    """A small real image in `fmt`, the same bytes for the same arguments."""
    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(out, fmt)
    return out.getvalue()


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def items_for(images: Mapping[str, bytes], metadata: Mapping[str, dict[str, Any]] | None = None
              ) -> list[Item]:
    metadata = metadata or {}
    return [
        Item(describe(key, data, metadata.get(key, {})), lambda data=data: data)
        for key, data in images.items()
    ]


def build_store(path: Path, images: Mapping[str, bytes],
                metadata: Mapping[str, dict[str, Any]] | None = None) -> Path:
    rebuild(path, items_for(images, metadata))
    return path


@pytest.fixture
def six_formats() -> dict[str, bytes]:
    """One image per supported format, keyed like files in nested folders."""
    return {f"{fmt.lower()}/img_{i}.{EXTENSIONS[fmt]}": make_image(fmt, (40 + i, 30), seed=i)
            for i, fmt in enumerate(FORMATS)}
