"""Pictures for the browser, made on demand from stored bytes: thumbnails (cached on
disk by the SHA-256 of the bytes they were made from, so a version or a store that
holds the same image shares them) and PNG renderings of formats browsers cannot show.
Decoding is bounded as ingest bounds it; an image that will not decode is a "?" tile.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from ..atomic import write_bytes
from ..images import DEFAULT_MAX_PIXELS, NotAnImageError, picture

EDGE = 256  # a thumbnail's longer side, in pixels
RENDER_EDGE = 4096  # a rendering's (a TIFF scan of 10,000 pixels is shown at this size)
# What Chromium, Firefox and Safari all show in an <img>; the rest is rendered as PNG.
BROWSER_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "ico": "image/x-icon",
    "avif": "image/avif",
}
# Decoding takes memory and a core: at most this many at once; other requests wait.
_DECODING = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))


# Shown for an image that will not decode; the page says why beside it.
UNKNOWN_TILE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="256" '
    b'height="256"><rect width="64" height="64" fill="#eee"/><text x="32" y="44" '
    b'font-size="36" text-anchor="middle" fill="#b00" font-family="sans-serif">?</text>'
    b"</svg>"
)


def default_cache() -> Path:
    """$XDG_CACHE_HOME/imageshelf/thumbnails (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imageshelf" / "thumbnails"


class Thumbnails:
    """Thumbnails under `folder`, one WebP file per content hash and edge."""

    def __init__(self, folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.folder = folder
        self.max_pixels = max_pixels

    def thumbnail(self, data: bytes) -> tuple[bytes, str]:
        """(WebP bytes, "image/webp") of `data`'s thumbnail; NotAnImageError if it
        will not decode within the bounds."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.folder / str(EDGE) / digest[:2] / f"{digest}.webp"
        try:
            return path.read_bytes(), "image/webp"
        except OSError:
            pass
        made = self._encode(data, EDGE, "WEBP")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, made)  # whole or not at all: another reader never sees half
        except OSError:
            pass  # a cache that cannot be written only costs the next request the work
        return made, "image/webp"

    def rendering(self, data: bytes) -> tuple[bytes, str]:
        """(PNG bytes, "image/png"): the image as a browser can show it."""
        return self._encode(data, RENDER_EDGE, "PNG"), "image/png"

    def _encode(self, data: bytes, edge: int, fmt: str) -> bytes:
        with _DECODING:
            small = picture(data, edge, self.max_pixels)
            out = io.BytesIO()
            options = {"quality": 80, "method": 4} if fmt == "WEBP" else {"compress_level": 1}
            small.save(out, fmt, **options)
            return out.getvalue()


__all__ = ["BROWSER_TYPES", "UNKNOWN_TILE", "NotAnImageError", "Thumbnails", "default_cache"]
