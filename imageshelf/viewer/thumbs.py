"""Pictures for the browser, made on demand from stored bytes: thumbnails (cached on
disk by the SHA-256 of the bytes they were made from, so a version or a store that
holds the same image shares them) and PNG renderings of formats browsers cannot show.
Decoding is bounded as ingest bounds it; an image that will not decode is a "?" tile.

A cache entry is read only if it is what this module writes: a regular file, not a link
(opened with O_NOFOLLOW, and non-blocking, so a FIFO cannot make a request wait), of at
most MAX_ENTRY bytes, in folders that are not links, and a whole WebP file. Anything else
put there (a FIFO, a link to /dev/zero or elsewhere, a huge or damaged file) is made
again and written over, never followed. The mask overlays (masks.py) are cached the same
way, through `read_entry` and `keep`, as whole PNG files.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from ..base.atomic import WriteError, write_bytes
from ..images.recognise import DEFAULT_MAX_PIXELS, NotAnImageError, picture

EDGE = 256  # a thumbnail's longer side, in pixels
RENDER_EDGE = 4096  # a rendering's (a TIFF scan of 10,000 pixels is shown at this size)
# A 256-pixel WebP at quality 80 is tens of KB: an entry larger than this is not ours.
MAX_ENTRY = 1 << 20
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
DECODING = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))


# Shown for an image that will not decode; the page says why beside it.
UNKNOWN_TILE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="256" '
    b'height="256"><rect width="64" height="64" fill="#eee"/><text x="32" y="44" '
    b'font-size="36" text-anchor="middle" fill="#b00" font-family="sans-serif">?</text>'
    b"</svg>"
)


def whole_webp(data: bytes) -> bool:
    """Whether `data` is a whole WebP file: its RIFF size is its length."""
    return (
        data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and int.from_bytes(data[4:8], "little") + 8 == len(data)
    )


def read_entry(
    path: Path, whole: Callable[[bytes], bool] = whole_webp, limit: int = MAX_ENTRY
) -> bytes | None:
    """The cached picture at `path`, or None where there is none that can be trusted
    to be one (see the module's docstring): the caller makes it again. `whole`: whether
    the bytes are a whole file of the kind cached there; `limit`: the most it may be."""
    if not real_folders(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # none yet, or a link (ELOOP)
        return None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size > limit:
            return None
        data = b""
        while len(data) <= found.st_size and (more := os.read(fd, limit + 1 - len(data))):
            data += more
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > limit or not whole(data):
        return None  # damaged, cut short, or not a file of this kind
    return data


def keep(path: Path, data: bytes) -> None:
    """Write `data` at `path` in the cache, whole or not at all: another reader never
    sees half; a bad entry (a FIFO, a link) is renamed over, what it pointed to left
    untouched. A cache that cannot be written only costs the next request the work."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if real_folders(path):
            write_bytes(path, data)
    except (OSError, WriteError):  # WriteError: a full disk, the temporary file taken...
        pass


def real_folders(path: Path) -> bool:
    """Whether the folders from the cache's own down to `path`'s are folders, not
    links to somewhere else (the cache folder itself may be a link: the user's)."""
    for folder in (path.parent.parent, path.parent):
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return False
        except FileNotFoundError:
            return True  # made by mkdir, as a folder
        except OSError:
            return False
    return True


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
        cached = read_entry(path)
        if cached is not None:
            return cached, "image/webp"
        made = self._encode(data, EDGE, "WEBP")
        keep(path, made)
        return made, "image/webp"

    def rendering(self, data: bytes) -> tuple[bytes, str]:
        """(PNG bytes, "image/png"): the image as a browser can show it."""
        return self._encode(data, RENDER_EDGE, "PNG"), "image/png"

    def _encode(self, data: bytes, edge: int, fmt: str) -> bytes:
        with DECODING:
            small = picture(data, edge, self.max_pixels)
            out = io.BytesIO()
            options = {"quality": 80, "method": 4} if fmt == "WEBP" else {"compress_level": 1}
            small.save(out, fmt, **options)
            return out.getvalue()


__all__ = [
    "BROWSER_TYPES",
    "DECODING",
    "UNKNOWN_TILE",
    "NotAnImageError",
    "Thumbnails",
    "default_cache",
    "keep",
    "read_entry",
]
