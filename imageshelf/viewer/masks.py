"""Paired images drawn over their image: a mask (an instance map, a colour rendering, a
COCO panoptic PNG) turned into a PNG overlay with transparency, and what it holds, for
the legend. How each mask is drawn depends on its pixels, not on its role:

- a palette mask (mode P: VOC's `SegmentationClass`): each index in its own palette's
  colour (an index past the palette's end through the colour map below);
- a class-id mask (modes L, I;16, I, 1: VOC's `SegmentationClassAug`, Cityscapes'
  labelIds and instanceIds, ADE20K): each id through a fixed colour map, Pascal VOC's
  (id 15 is VOC's person whether the PNG has a palette or not), extended to 24 bits;
- an RGB-coded mask (RGB, RGBA and the rest: CamVid, Cityscapes' `color`, COCO
  panoptic): as it is.

Left clear, so the image shows through: id 0 (background in VOC, unlabeled in Cityscapes
and ADE20K), the palette entries the PNG itself makes transparent, and black in an RGB
mask (CamVid's Void, Cityscapes' unlabeled, panoptic's no segment).

Rendered here, on the server, rather than in the browser from the original PNG: class
ids must be read exactly, and a browser reduces a 16-bit PNG (Cityscapes' instance ids)
to 8 bits and colour-manages what a canvas reads back (gAMA, iCCP); decoding here is
bounded as ingest's is (the decode cost read off the bytes, the pixel limit from the
header before any pixel, and thumbs.py's count of decodings at once); any format Pillow
reads is drawn, a TIFF mask too; and the page needs no script to show it (the page
policy allows none inline). An overlay is at most RENDER_EDGE pixels a side, scaled
with the nearest pixel (never a colour between two classes), cached on disk by the
SHA-256 of the mask's bytes as thumbnails are (thumbs.py: read only if it is a whole
PNG this module could have written), and what a mask holds is remembered in memory by
the same hash, for the page's legend.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from PIL import Image, ImageChops

from ..images.decoding import NotDecodedError, bounded
from ..images.recognise import DEFAULT_MAX_PIXELS, NotAnImageError
from ..store import ImageStore, Record, StoreError
from ..store.values import Paired
from .thumbs import DECODING, EDGE, RENDER_EDGE, keep, read_entry

OPACITY = 0.6  # of an overlay when the page opens: the image shows through its colours
MAX_VALUES = 4096  # distinct ids or colours counted in a mask; beyond, not a class mask
MAX_ID = 0xFFFF  # the largest class id drawn (Cityscapes' instance ids reach 33,999)
MAX_LEGEND = 100  # legend entries shown per mask; the others are counted
MAX_OVERLAY = 1 << 26  # bytes of a cached overlay; a larger entry is not one of ours
MAX_DRAWN = 16  # paired images drawn per image (a store may list any number of roles)
NAMED_ROLES = ("mask", "coarse_mask")  # the roles whose ids `mask_classes` names
REMEMBERED = 1024  # masks whose contents are kept in memory (a few KB each)
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# The version of the drawing rules: a change to them names other cache entries.
_RULES = "overlay1"


def colour_of(class_id: int) -> tuple[int, int, int]:
    """Pascal VOC's colour map (its devkit's `labelcolormap`): the id's bits, three at a
    time, spread over red, green and blue from their top bit down. 15 is (192, 128, 128);
    ids up to 2^24 each get their own colour."""
    red = green = blue = 0
    for shift in range(7, -1, -1):
        red |= (class_id & 1) << shift
        green |= (class_id >> 1 & 1) << shift
        blue |= (class_id >> 2 & 1) << shift
        class_id >>= 3
    return red, green, blue


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Value:
    """One class (an id, or a colour of an RGB mask) a mask holds."""

    value: str  # "15", or "#rrggbb" in an RGB mask: as `mask_classes` names it
    colour: str  # "#rrggbb", as drawn
    clear: bool  # not drawn: the image shows through
    pixels: int


@dataclass(frozen=True)
class Contents:
    """What a mask holds: how it is drawn, its size and its values (in id or colour
    order; `values` None where it holds more than MAX_VALUES: not a class mask)."""

    kind: str  # palette | ids | rgb
    width: int
    height: int
    values: tuple[Value, ...] | None


@dataclass(frozen=True)
class Entry:
    """A line of the legend: a value the mask holds, its name if the dataset gives one."""

    value: str
    name: str | None
    colour: str
    clear: bool


def legend(contents: Contents, names: object) -> tuple[list[Entry], int]:
    """The legend of a mask: (entries, how many more values there are). `names`: the
    record's `mask_classes` ({value as text: name}; a value it does not name, or a name
    that is not text or a number, is shown by its value)."""
    named = names if isinstance(names, dict) else {}
    values = contents.values or ()
    entries = [
        Entry(v.value, _name(named.get(v.value)), v.colour, v.clear) for v in values[:MAX_LEGEND]
    ]
    return entries, max(0, len(values) - MAX_LEGEND)


def _name(name: object) -> str | None:
    if isinstance(name, str) and name:
        return name
    if isinstance(name, int | float) and not isinstance(name, bool):
        return str(name)
    return None


class Overlays:
    """Mask overlays under `folder` (the thumbnails' cache), one PNG per content hash
    and size, and the contents of the masks drawn lately."""

    def __init__(self, folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.folder = folder
        self.max_pixels = max_pixels
        self._known: OrderedDict[str, Contents | str] = OrderedDict()
        self._lock = threading.Lock()

    def overlay(self, data: bytes, small: bool = False) -> bytes:
        """The PNG drawn over the image (at most EDGE pixels a side if `small`, for a
        thumbnail; else RENDER_EDGE); NotAnImageError if the mask will not decode
        within the bounds or holds what cannot be drawn."""
        digest = hashlib.sha256(data).hexdigest()
        edge = EDGE if small else RENDER_EDGE
        path = self._path(digest, edge)
        cached = read_entry(path, _whole_png, MAX_OVERLAY)
        if cached is not None:
            return cached
        made, contents = self._render(data, edge)
        self._remember(digest, contents)
        keep(path, made)
        return made

    def contents(self, data: bytes) -> Contents:
        """What the mask `data` holds; NotAnImageError as `overlay`. Drawn (and its
        full-size overlay cached) the first time, remembered after."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            known = self._known.get(digest)
            if known is not None:
                self._known.move_to_end(digest)
        if known is None:
            try:
                made, known = self._render(data, RENDER_EDGE)
                keep(self._path(digest, RENDER_EDGE), made)  # the page asks for it next
            except NotAnImageError as exc:
                known = exc.reason
            self._remember(digest, known)
        if isinstance(known, str):
            raise NotAnImageError("not_drawn", known)
        return known

    def _path(self, digest: str, edge: int) -> Path:
        return self.folder / f"{_RULES}-{edge}" / digest[:2] / f"{digest}.png"

    def _remember(self, digest: str, contents: Contents | str) -> None:
        with self._lock:
            self._known[digest] = contents
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)

    def _render(self, data: bytes, edge: int) -> tuple[bytes, Contents]:
        with DECODING:
            mask = _decoded(data, self.max_pixels)
            drawn, contents = draw(mask, edge)
            out = io.BytesIO()
            drawn.save(out, "PNG", compress_level=6)
            return out.getvalue(), contents


def _whole_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(_PNG_END)


def _decoded(data: bytes, max_pixels: int) -> Image.Image:
    """The mask's first frame, decoded within ingest's bounds; NotAnImageError if not."""
    try:
        with bounded(data, max_pixels) as im:
            im.load()
            return im.copy()
    except NotDecodedError as exc:
        raise NotAnImageError(exc.code, exc.reason) from None


def draw(mask: Image.Image, edge: int) -> tuple[Image.Image, Contents]:
    """The overlay of `mask` (RGBA, at most `edge` pixels a side) and what it holds."""
    if mask.mode == "P":
        ids = Image.frombytes("L", mask.size, mask.tobytes())  # the indices, not colours
        return _draw_ids(ids, edge, "palette", _palette_colours(mask))
    if mask.mode == "1":
        return _draw_ids(mask.convert("L").point(lambda v: 1 if v else 0), edge, "ids", {})
    if mask.mode in ("L", "LA"):
        return _draw_ids(mask.getchannel(0), edge, "ids", {})
    if mask.mode == "I" or mask.mode.startswith("I;16"):
        return _draw_ids(mask.convert("I"), edge, "ids", {})
    if mask.mode == "F":
        raise NotAnImageError(
            "not_a_mask", "its pixels are floating-point numbers (a depth map?), not class ids"
        )
    return _draw_rgb(mask.convert("RGBA"), edge)


def _palette_colours(mask: Image.Image) -> dict[int, tuple[int, tuple[int, int, int]]]:
    """index -> (alpha, colour) of each entry of a palette mask's own palette."""
    palette = mask.getpalette("RGB") or []
    transparency = mask.info.get("transparency")
    alphas = {}
    if isinstance(transparency, int):
        alphas[transparency] = 0
    elif isinstance(transparency, bytes):
        alphas = dict(enumerate(transparency))
    return {
        index: (
            alphas.get(index, 255),
            (palette[3 * index], palette[3 * index + 1], palette[3 * index + 2]),
        )
        for index in range(len(palette) // 3)
    }


def _draw_ids(
    ids: Image.Image,
    edge: int,
    kind: str,
    own: dict[int, tuple[int, tuple[int, int, int]]],
) -> tuple[Image.Image, Contents]:
    """A mask of class ids (mode L or I) coloured by `own` (a palette: index -> alpha,
    colour) or else by the colour map; id 0 clear."""
    found = ids.getcolors(MAX_VALUES)
    if found is None:
        raise NotAnImageError(
            "not_a_mask", f"more than {MAX_VALUES:,} distinct values: not class ids"
        )
    counted = cast(list[tuple[int, int]], found)  # (pixels, id): one band, whole numbers
    low, high = min(v for _, v in counted), max(v for _, v in counted)
    if low < 0 or high > MAX_ID:
        raise NotAnImageError(
            "not_a_mask", f"values from {low:,} to {high:,}: class ids are 0 to {MAX_ID:,}"
        )
    size = 256 if ids.mode == "L" else MAX_ID + 1
    luts = [[0] * size for _ in range(4)]
    values = []
    for pixels, class_id in sorted(counted, key=lambda c: c[1]):
        alpha, colour = own.get(class_id, (255, colour_of(class_id)))
        clear = class_id == 0 or alpha == 0
        for band, level in enumerate((*colour, 0 if clear else alpha)):
            luts[band][class_id] = level
        values.append(Value(str(class_id), hex_colour(colour), clear, pixels))
    small = _fitted(ids, edge)
    bands = [small.point(lut, "L") for lut in luts]
    contents = Contents(kind, ids.width, ids.height, tuple(values))
    return Image.merge("RGBA", bands), contents


def _draw_rgb(rgba: Image.Image, edge: int) -> tuple[Image.Image, Contents]:
    """An RGB-coded mask as it is, black clear (and what its own alpha clears)."""
    found = rgba.convert("RGB").getcolors(MAX_VALUES)
    values = None
    if found is not None:
        ordered = sorted(cast(list[tuple[int, tuple[int, int, int]]], found), key=lambda c: c[1])
        values = tuple(
            Value(hex_colour(rgb), hex_colour(rgb), rgb == (0, 0, 0), n) for n, rgb in ordered
        )
    small = _fitted(rgba, edge)
    red, green, blue, alpha = small.split()
    lit = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v else 0)
    drawn = Image.merge("RGBA", (red, green, blue, ImageChops.darker(alpha, lit)))
    return drawn, Contents("rgb", rgba.width, rgba.height, values)


def _fitted(im: Image.Image, edge: int) -> Image.Image:
    """`im` at most `edge` pixels a side, each pixel one of its own (never a blend)."""
    if max(im.size) <= edge:
        return im
    scale = edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.NEAREST)


@dataclass
class View:
    """One paired image on the image page: its toggle, its legend, its download."""

    role: str
    paired: Paired
    number: int  # its place on the page: an element's id holds this, never the role
    shown: bool  # drawn when the page opens (the `mask`, else the first role)
    kind: str | None = None  # palette | ids | rgb; None: not drawn
    entries: list[Entry] = field(default_factory=list)
    more: int = 0  # values beyond the legend's entries
    counted: bool = True  # False: more than MAX_VALUES values (an RGB mask still drawn)
    problem: str | None = None  # why it is not drawn
    size: tuple[int, int] | None = None  # its pixels, where that is not the image's


def views(overlays: Overlays, store: ImageStore, record: Record) -> list[View]:
    """The paired images of `record`, each with what the page says of it. The legend's
    names come from the record's `mask_classes`, for the roles `mask` (the one ingest
    names) and `coarse_mask` (Cityscapes' coarse labels: the same ids); every other
    value is shown by its id or colour. The first MAX_DRAWN roles are drawn."""
    roles = sorted(record.paired)
    first = "mask" if "mask" in roles else roles[0] if roles else None
    out = []
    for number, role in enumerate(roles):
        view = View(role, record.paired[role], number, role == first)
        if number >= MAX_DRAWN:
            view.problem = f"only the first {MAX_DRAWN} paired images of an image are drawn"
            view.shown = False
            out.append(view)
            continue
        try:
            contents = overlays.contents(store.get_paired(record.key, role))
        except (NotAnImageError, StoreError, KeyError) as exc:
            view.problem = " ".join(str(exc).split())[:300]
            view.shown = False
        else:
            names = record.metadata.get("mask_classes") if role in NAMED_ROLES else None
            view.entries, view.more = legend(contents, names)
            view.kind, view.counted = contents.kind, contents.values is not None
            if (contents.width, contents.height) != (record.info.width, record.info.height):
                view.size = (contents.width, contents.height)  # drawn stretched over it
        out.append(view)
    return out


def changed_roles(old: Record, new: Record) -> list[str]:
    """The roles whose paired image differs between two versions of a record (one
    added or removed included), in role order."""
    roles = set(old.paired) | set(new.paired)
    return sorted(r for r in roles if old.paired.get(r) != new.paired.get(r))


__all__ = [
    "OPACITY",
    "Contents",
    "Entry",
    "Overlays",
    "View",
    "changed_roles",
    "colour_of",
    "draw",
    "legend",
    "views",
]
