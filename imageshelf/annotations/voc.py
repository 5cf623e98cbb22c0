"""Pascal VOC XML, as torchvision's VOCDetection parses it (every tag, as a dict); CVAT's
XML is read by cvat.py (reader.py tells the two apart by their root).

VOC: an `<annotation>` per image (`Annotations/NAME.xml` beside `JPEGImages/`). Each
`<object>` becomes an entry of `objects` with every tag it has: `<name>` as `category`,
`<bndbox>` as `bbox` ([x, y, width, height] in pixels, COCO's shape), each `<part>` in
`parts` (the same shape), and every other tag (`pose`, `truncated`, `difficult`,
`occluded`, `actions`, `point`, ...) under its own name, its text typed as a table cell
is. The annotation's other tags (`folder`, `source`, `size`, `segmented`, `owner`, ...)
are kept in `voc`.
"""

from __future__ import annotations

from typing import Any

from .base import AnnotationError, Annotations, KeyIndex, folder_of, join, name_of, number
from .values import typed


def is_voc(root: Any) -> bool:
    return bool(root.tag == "annotation")


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


def read_voc(rel: str, root: Any, keys: KeyIndex, result: Annotations) -> None:
    """One image's `<annotation>` (its root, parsed: base.parse_xml)."""
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
