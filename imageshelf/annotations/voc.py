"""Pascal VOC XML, as torchvision's VOCDetection parses it (every tag, as a dict), and
CVAT's "CVAT for images" XML.

VOC: an `<annotation>` per image (`Annotations/NAME.xml` beside `JPEGImages/`). Each
`<object>` becomes an entry of `objects` with every tag it has: `<name>` as `category`,
`<bndbox>` as `bbox` ([x, y, width, height] in pixels, COCO's shape), each `<part>` in
`parts` (the same shape), and every other tag (`pose`, `truncated`, `difficult`,
`occluded`, `actions`, `point`, ...) under its own name, its text typed as a table cell
is. The annotation's other tags (`folder`, `source`, `size`, `segmented`, `owner`, ...)
are kept in `voc`.

CVAT for images 1.1: `<annotations>` with an `<image name=... width=... height=...>` per
image, holding `<box>`, `<polygon>`, `<polyline>`, `<points>`, `<mask>` and `<tag>`
elements: each becomes an entry of `objects` (`category` from `label`, `bbox`, and for
polygons `segmentation`), its `<attribute>`s in `attributes`.
"""

from __future__ import annotations

from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, name_of, number
from .values import typed


def parse_xml(rel: str, data: bytes) -> Any:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise AnnotationError(f"{rel}: not valid XML: {exc}") from None


def read_xml(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    root = parse_xml(rel, data)
    if root.tag == "annotation":
        _read_voc(rel, root, keys, result)
    elif root.tag == "annotations" and root.find("image") is not None:
        _read_cvat(rel, root, keys, result)
    else:
        result.unused.append(
            f"{rel}: XML, but neither Pascal VOC (<annotation>) nor CVAT (<annotations>)"
        )


# ------------------------------------------------------------------ Pascal VOC


def _voc_image(rel: str, root: Any, keys: KeyIndex) -> tuple[str | None, str]:
    file_name = (root.findtext("filename") or "").strip()
    folder = folder_of(rel)
    parent, here = folder_of(folder), name_of(folder)
    candidates = []
    if file_name:
        if here == "Annotations":
            candidates.append(join(parent, f"JPEGImages/{file_name}"))
        candidates.append(join(folder, file_name))
    key = next((c for c in candidates if c in keys.keys), None)
    if key is None:
        stem = file_name.rsplit(".", 1)[0] if file_name else name_of(rel)[: -len(".xml")]
        key = keys.one_by_stem(
            join(parent, "JPEGImages") if here == "Annotations" else folder, stem
        )
    return key, file_name or name_of(rel)


def _read_voc(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    key, named = _voc_image(rel, root, keys)
    if key is None:
        result.unused.append(f"{rel}: {named} (no such image)")
        return
    objects = [_voc_object(rel, item) for item in root.findall("object")]
    rest = {child.tag: _element(child) for child in root if child.tag not in ("object", "filename")}
    values: dict[str, Any] = {"objects": objects}
    if rest:
        values["voc"] = rest
    result.set(key, values)


def _voc_object(rel: str, item: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    parts = []
    for child in item:
        if child.tag == "name":
            entry["category"] = (child.text or "").strip()
        elif child.tag == "bndbox":
            entry["bbox"] = _bbox(rel, child)
        elif child.tag == "part":
            parts.append(_voc_object(rel, child))
        else:
            entry[child.tag] = _element(child)
    if parts:
        entry["parts"] = parts
    return entry


def _bbox(rel: str, box: Any) -> list[int | float]:
    try:
        xmin, ymin, xmax, ymax = (
            float(box.findtext(t) or "") for t in ("xmin", "ymin", "xmax", "ymax")
        )
    except ValueError:
        raise AnnotationError(f"{rel}: an <object> without a numeric <bndbox>") from None
    return [number(xmin), number(ymin), number(xmax - xmin), number(ymax - ymin)]


def _element(element: Any) -> Any:
    """An element as torchvision's parse_voc_xml gives it, its text typed: children as a
    mapping (a tag repeated, a list), a leaf as its text."""
    children = list(element)
    if not children:
        return typed(element.text or "")
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        value = _element(child)
        if child.tag in repeated:
            out[child.tag].append(value)
        elif child.tag in out:
            out[child.tag] = [out[child.tag], value]
            repeated.add(child.tag)
        else:
            out[child.tag] = value
    return out


# ------------------------------------------------------------------ CVAT for images

_SHAPES = ("box", "polygon", "polyline", "points", "mask", "tag", "ellipse", "skeleton")


def _read_cvat(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    folder = folder_of(rel)
    for image in root.iter("image"):
        name = (image.get("name") or "").strip()
        key = join(folder, name)
        if key not in keys.keys:
            found = keys.by_tail(folder, name)
            key = found[0] if len(found) == 1 else ""
        if not key:
            result.unused.append(f"{rel}: {name or '(no name)'} (no such image)")
            continue
        objects = [_cvat_shape(rel, shape) for shape in image if shape.tag in _SHAPES]
        values: dict[str, Any] = {"objects": objects}
        extra = {
            k: typed(v) for k, v in image.attrib.items() if k not in ("name", "width", "height")
        }
        if extra:
            values["cvat"] = extra
        result.set(key, values)
    if root.find("meta") is not None:
        result.note(f"{rel}: <meta> describes the task, not an image: not stored")


def _cvat_shape(rel: str, shape: Any) -> dict[str, Any]:
    attrib = dict(shape.attrib)
    out: dict[str, Any] = {"category": attrib.pop("label", ""), "type": shape.tag}
    try:
        if shape.tag == "box":
            x1, y1, x2, y2 = (float(attrib.pop(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            out["bbox"] = [number(x1), number(y1), number(x2 - x1), number(y2 - y1)]
        elif "points" in attrib:
            flat = [float(c) for pair in attrib.pop("points").split(";") for c in pair.split(",")]
            xs, ys = flat[0::2], flat[1::2]
            out["bbox"] = [
                number(min(xs)),
                number(min(ys)),
                number(max(xs) - min(xs)),
                number(max(ys) - min(ys)),
            ]
            out["segmentation" if shape.tag == "polygon" else "points"] = [
                [number(c) for c in flat]
            ]
    except (KeyError, ValueError):
        raise AnnotationError(f"{rel}: a <{shape.tag}> without numeric coordinates") from None
    out.update((k, typed(v)) for k, v in attrib.items())
    attributes = {a.get("name", ""): typed(a.text or "") for a in shape.findall("attribute")}
    if attributes:
        out["attributes"] = attributes
    return out
