"""A Label Studio export: the images under their keys, with `tasks.json` to import into a
Label Studio project and `label_config.xml`, its labeling interface, so that people can
correct the labels there; the project's JSON export, kept in `data/annotations/`, then
brings the corrections back (ingest reads Label Studio's JSON, annotations/labelstudio.py).

Each image is a task: `data.image` the URL Label Studio serves a local file at
(`/data/local-files/?d=KEY`, with the export folder as its document root), `data.key`
its key. Its annotations are the task's `predictions` (pre-annotations: what a person
has not touched stays as the store has it): each object's box a `rectanglelabels`
result (a turned Label Studio rectangle keeps its turn), its polygon a `polygonlabels`
one, in percent of the image; `label` a choice and `text` a text area for the whole
image. Keypoints, RLE masks, ellipses and brush strokes go as their boxes (an object
that has none is left out), and the export says so. Every object's geometry is checked
first (objects.py); a category or label the labeling interface's XML cannot carry (a
control character) leaves its object or choice out, with a note, so that
`label_config.xml` always parses and names exactly the labels the tasks use.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from ..store import Record
from .objects import Shaped, left_out, scale, shaped_objects
from .text import json_bytes, shown, xml_attribute

MODEL_VERSION = "imageshelf"
BOX, POLYGON, LABEL, TEXT = "box", "polygon", "label", "text"  # the interface's names


def label_studio_files(records: Sequence[Record]) -> tuple[dict[str, bytes], list[str]]:
    """The files of a Label Studio export (path -> bytes) and notes on what it could not
    carry."""
    notes: list[str] = []
    names: dict[str, set[str]] = {BOX: set(), POLYGON: set(), LABEL: set()}
    tasks = [_task(number, record, names, notes) for number, record in enumerate(records, 1)]
    has_text = any(isinstance(r.metadata.get(TEXT), str) for r in records)
    files = {
        "tasks.json": json_bytes(tasks, sort_keys=False, indent=1) + b"\n",
        "label_config.xml": _config(names, has_text).encode("utf-8"),
    }
    return files, notes


def _task(number: int, record: Record, names: dict[str, set[str]], notes: list[str]) -> dict:
    key = record.key
    results = _regions(record, names, notes)
    label, text = record.metadata.get(LABEL), record.metadata.get(TEXT)
    if isinstance(label, str | int) and not isinstance(label, bool):
        problem = _xml_problem(str(label))
        if problem is None:
            names[LABEL].add(str(label))
            results.append(_whole(LABEL, "choices", {"choices": [str(label)]}))
        else:
            notes.append(f"{shown(key)}: its label is left out: it {problem}")
    if isinstance(text, str):
        results.append(_whole(TEXT, "textarea", {"text": [text]}))
    for at, result in enumerate(results):
        result["id"] = f"{number}-{at}"
    data = {"image": "/data/local-files/?d=" + urllib.parse.quote(key), "key": key}
    task: dict[str, Any] = {"id": number, "data": data}
    if results:
        task["predictions"] = [{"model_version": MODEL_VERSION, "result": results}]
    return task


def _regions(record: Record, names: dict[str, set[str]], notes: list[str]) -> list[dict]:
    """The task's results for the record's objects whose geometry holds (imageshelf.
    geometry) and whose category the labeling interface (XML) can carry."""
    objects = shaped_objects(record, notes)
    size = scale(record, objects, notes)
    results: list[dict] = []
    if size is None:
        return results
    for shaped in objects:
        result = _region(shaped, size)
        lost = _lost(shaped.fields)
        if result is None:
            what = f" (its {lost})" if lost else ""
            left_out(notes, record, shaped.number, f"it has no box or polygon{what}")
            continue
        category = result["value"][result["type"]][0]
        problem = _xml_problem(category)
        if problem is not None:
            left_out(notes, record, shaped.number, f"its category {problem}")
            continue
        if lost:
            notes.append(f"{shown(record.key)}: an object's {lost} goes as its box")
        names[result["from_name"]].add(category)
        results.append(result)
    return results


def _xml_problem(text: str) -> str | None:
    """Why the labeling interface cannot name `text`, or None."""
    try:
        xml_attribute(text)
    except ValueError as reason:
        return str(reason)
    return None


def _region(shaped: Shaped, size: tuple[int, int]) -> dict[str, Any] | None:
    """A rectangle or polygon result of one object, in percent; None if it has neither.
    Every number it computes with is checked (shaped.geometry)."""
    obj, geometry = shaped.fields, shaped.geometry
    width, height = size
    category = str(obj.get("category", obj.get("category_id", "")))
    region, bbox = geometry.region or {}, geometry.bbox
    if all(k in region for k in ("x", "y", "width", "height")):
        value = obj["value"]  # checked numbers: as Label Studio gave them
        box = {k: value[k] for k in ("x", "y", "width", "height")}
        box["rotation"] = value.get("rotation") or 0
    elif geometry.polygons:
        ring = geometry.polygons[0]
        points = [
            [x * 100 / width, y * 100 / height] for x, y in zip(ring[::2], ring[1::2], strict=True)
        ]
        kept = {"points": points, "closed": True, "polygonlabels": [category]}
        return _result(POLYGON, "polygonlabels", kept, width, height)
    elif bbox is not None:
        x, y, w, h = bbox
        box = {"x": x * 100 / width, "y": y * 100 / height, "rotation": 0}
        box.update(width=w * 100 / width, height=h * 100 / height)
    else:
        return None
    return _result(BOX, "rectanglelabels", {**box, "rectanglelabels": [category]}, width, height)


def _lost(obj: dict[str, Any]) -> str:
    """What of an object a rectangle or polygon cannot carry."""
    if obj.get("keypoints") is not None:
        return "keypoints"
    if isinstance(obj.get("segmentation"), dict):
        return "RLE mask"
    kind = str(obj.get("type", ""))
    return kind.removesuffix("labels") if kind.startswith(("ellipse", "brush")) else ""


def _result(name: str, kind: str, value: dict, width: int, height: int) -> dict[str, Any]:
    return {
        "type": kind,
        "from_name": name,
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": value,
    }


def _whole(name: str, kind: str, value: dict) -> dict[str, Any]:
    return {"type": kind, "from_name": name, "to_name": "image", "value": value}


def _config(names: dict[str, set[str]], has_text: bool) -> str:
    """The labeling interface: a tag for each kind of result the tasks hold, listing
    every label they use."""
    lines = ["<View>", '  <Image name="image" value="$image"/>']
    for name, tag, label in (
        (BOX, "RectangleLabels", "Label"),
        (POLYGON, "PolygonLabels", "Label"),
        (LABEL, "Choices", "Choice"),
    ):
        if names[name]:
            lines.append(f'  <{tag} name="{name}" toName="image">')
            lines += [f'    <{label} value="{xml_attribute(v)}"/>' for v in sorted(names[name])]
            lines.append(f"  </{tag}>")
    if has_text:
        lines.append(f'  <TextArea name="{TEXT}" toName="image"/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"
