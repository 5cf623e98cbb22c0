"""Hostile input, round three, for the exports and for what the viewer draws: a store
from elsewhere holds keys and labels with any character and geometry of any JSON value.
Every export writes files its peers' loaders read back as the store has them, or leaves
out what it cannot carry and says which key and why (never a traceback, never a silent
drop, never a file that does not parse); the viewer draws what holds and lists the rest."""

from __future__ import annotations

import hashlib
import json
import random
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pycocotools.coco import COCO
from test_untrusted import _craft
from test_viewer import get, serving

from imageshelf.cli.main import cli
from imageshelf.export import export_files
from imageshelf.store import ImageInfo, ImageStore, Record
from imageshelf.store.writer import Item, rebuild
from imageshelf.viewer.shapes import drawing

from conftest import build_store, make_image

W, H = 40, 30
GOOD = {"bbox": [4, 6, 10, 8], "category": "cat"}


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def export(store: Path, out: Path, layout: str):
    return run("export", "--store", str(store), "--out", str(out), "--as", layout)


def one_line_error(result, *words: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def ultralytics_list(path: Path) -> list[str]:
    """The images a YOLO list names, read as ultralytics reads it (data/base.py,
    get_img_files: the whole file stripped, split into lines, "./" made the folder)."""
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    return [line.replace("./", "", 1) if line.startswith("./") else line for line in lines]


# ------------------------------------------------------------------ output paths


def test_yolo_refuses_two_images_whose_labels_would_share_one_file(tmp_path):
    """ultralytics pairs images/cat.png and images/cat.jpg with one labels/cat.txt: one
    image's boxes would be lost and both read with the other's. Refused, naming both."""
    images = {
        "images/cat.png": make_image("PNG", (W, H), 1),
        "images/cat.jpg": make_image("JPEG", (W, H), 2),
    }
    boxes = {
        "images/cat.png": {"objects": [GOOD]},
        "images/cat.jpg": {"objects": [{"bbox": [1, 1, 5, 5], "category": "dog"}]},
    }
    store = build_store(tmp_path / "s.lmdb", images, boxes)
    out = tmp_path / "out"
    one_line_error(export(store, out, "yolo"), "images/cat.jpg", "images/cat.png", "labels/cat.txt")
    assert list(out.rglob("*")) == []
    # an image without objects would be read with its namesake's boxes just the same
    store = build_store(tmp_path / "t.lmdb", images, {"images/cat.png": {"objects": [GOOD]}})
    one_line_error(export(store, tmp_path / "out2", "yolo"), "images/cat.jpg", "images/cat.png")
    # nor may an image's label file be the export's own list of train images
    images = {"train.png": make_image("PNG", (W, H), 1), "a.png": make_image("PNG", (W, H), 2)}
    store = build_store(tmp_path / "u.lmdb", images, {"train.png": {"objects": [GOOD]}})
    one_line_error(export(store, tmp_path / "out3", "yolo"), "'train.png'", "train.txt")


def test_a_key_yolo_lists_cannot_hold_is_left_out_of_them_and_said(tmp_path):
    """train.txt is one image a line: a key with a line break wrote a line of its own."""
    keys = ["a.png", "two\nlines.png", "tab\there.png", "ends in a space.png ", "x./y.png"]
    images = {key: make_image("PNG", (W, H), i) for i, key in enumerate(keys)}
    store = build_store(tmp_path / "s.lmdb", images, {k: {"objects": [GOOD]} for k in keys})
    out = tmp_path / "out"
    result = export(store, out, "yolo")
    assert result.exit_code == 0, result.output
    assert ultralytics_list(out / "train.txt") == ["a.png"]
    for key in keys[1:]:
        said = key if key.isprintable() else repr(key)  # a line break is never printed raw
        assert f"{said}: in no YOLO split list" in result.stderr
        assert (out / key).read_bytes() == images[key]  # written all the same
    assert len(result.stderr.strip().splitlines()) == len(keys) - 1  # a note a line


def test_a_yolo_export_inside_an_images_folder_says_where_ultralytics_would_look(tmp_path):
    """ultralytics makes the last images/ folder of an image's absolute path labels/:
    for a.png in DIR/images/out, it reads DIR/labels/out/a.txt, which nobody wrote."""
    meta = {"a.png": {"objects": [GOOD]}, "sub/images/b.png": {"objects": [GOOD]}}
    images = {key: make_image("PNG", (W, H), i) for i, key in enumerate(meta)}
    store = build_store(tmp_path / "s.lmdb", images, meta)
    result = export(store, tmp_path / "images" / "out", "yolo")
    assert result.exit_code == 0, result.output
    assert "1 image(s) (a.png, ...) lie under no images/ folder" in result.stderr
    assert "would look for their labels outside the export" in result.stderr
    assert "images/ folder" not in export(store, tmp_path / "elsewhere", "yolo").stderr


def test_yolo_data_yaml_reads_back_every_category_name(tmp_path):
    names = ["cat", "猫🐱", 'quote " and \\', "a\x01b", "line\nbreak", "#not a comment: x"]
    objects = [{"bbox": [1, 1, 2, 2], "category": name} for name in names]
    store = build_store(
        tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {"objects": objects}}
    )
    out = tmp_path / "out"
    assert export(store, out, "yolo").exit_code == 0
    read = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))["names"]
    classes = [int(line.split()[0]) for line in (out / "a.txt").read_text().splitlines()]
    assert [read[number] for number in classes] == names


def test_yolo_class_numbers_far_apart_do_not_make_data_yaml_list_millions(tmp_path):
    objects = [{"bbox": [1, 1, 2, 2], "category": "far", "category_id": 5_000_000}]
    store = build_store(
        tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {"objects": objects}}
    )
    out = tmp_path / "out"
    result = export(store, out, "yolo")
    assert result.exit_code == 0 and "numbered from 0 again" in result.stderr
    assert (out / "data.yaml").stat().st_size < 1000
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "far"}
    assert (out / "a.txt").read_text().startswith("0 ")


# ------------------------------------------------------------------ XML and JSON stay well-formed


def test_label_studio_config_stays_well_formed_whatever_the_categories(tmp_path):
    names = ["plain", "a\x01b", "line\nbreak", "tab\there", '<&"quote">', "猫🐱"]
    objects = [{"bbox": [1, 1, 2, 2], "category": name} for name in names]
    meta = {"a.png": {"objects": objects}, "b.png": {"label": "x\x02y"}, "c.png": {"label": "dog"}}
    images = {key: make_image("PNG", (W, H), i) for i, key in enumerate(meta)}
    out = tmp_path / "out"
    result = export(build_store(tmp_path / "s.lmdb", images, meta), out, "label-studio")
    assert result.exit_code == 0, result.output
    config = ElementTree.fromstring((out / "label_config.xml").read_bytes())  # parses
    tasks = json.loads((out / "tasks.json").read_bytes())
    results = [r for t in tasks for r in t.get("predictions", [{}])[0].get("result", [])]
    boxes = [r["value"]["rectanglelabels"][0] for r in results if r["type"] == "rectanglelabels"]
    # every label a task uses is one the interface offers, character for character
    assert {e.get("value") for e in config.iter("Label")} == set(boxes) == set(names) - {"a\x01b"}
    assert [e.get("value") for e in config.iter("Choice")] == ["dog"]
    assert (
        "'a.png': object 2 is left out: its category holds the character U+0001"
        not in result.stderr
    )
    assert "a.png: object 2 is left out: its category holds the character U+0001" in result.stderr
    assert "b.png: its label is left out: it holds the character U+0002" in result.stderr


def _surrogate_record(label: str) -> bytes:
    """A record whose metadata holds a lone surrogate: Python's JSON reader, which the
    store falls back on, takes `\\ud800` as one; UTF-8 cannot encode it."""
    data = make_image("PNG", (W, H))
    meta = {"label": label, "text": label, "objects": [{**GOOD, "category": label}]}
    body = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "format": "png"}
    return json.dumps({**body, "width": W, "height": H, "meta": meta}).encode("ascii")


@pytest.mark.parametrize("layout", ["imagefolder", "coco", "yolo", "label-studio", "webdataset"])
def test_json_outputs_carry_text_utf8_cannot_encode_and_read_back_the_same(tmp_path, layout):
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {}})
    _craft(store, records={"a.png": _surrogate_record("odd\ud800")})
    out = tmp_path / "out"
    result = export(store, out, layout)
    assert result.exit_code == 0, result.output
    found = []
    for path in sorted(out.rglob("*")):
        if path.suffix in (".json", ".jsonl"):
            lines = (
                [path.read_bytes()] if path.suffix == ".json" else path.read_bytes().splitlines()
            )
            found += [json.loads(line.decode("utf-8")) for line in lines]  # UTF-8, and JSON
    if layout == "webdataset":
        import tarfile

        with tarfile.open(next(out.glob("*.tar"))) as tar:
            found.append(json.loads(tar.extractfile("a.json").read().decode("utf-8")))  # type: ignore[union-attr]
    if layout == "yolo":
        assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "odd\ud800"}
    assert "odd\ud800" in json.dumps(found, ensure_ascii=False)


# ------------------------------------------------------------------ geometry


BIG = 10**400  # Python's JSON reader takes it; float() of it is an OverflowError
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("400-digit box", {"bbox": [0, 0, BIG, 1]}, "a number in its bbox is not finite, or beyond"),
    ("400-digit keypoint", {"bbox": [0, 0, 4, 4], "keypoints": [BIG, 1, 2]}, "its keypoints"),
    ("box of strings", {"bbox": ["0", "0", "4", "4"]}, "text '0' in its bbox"),
    ("text times 1e9", {"bbox": [0, 0, "AAAA", 1e9]}, "text 'AAAA' in its bbox"),
    ("text times a million", {"bbox": [0, 0, "AAAA", 10**6]}, "text 'AAAA' in its bbox"),
    ("a boolean", {"bbox": [True, 0, 4, 4]}, "a boolean in its bbox"),
    ("three values", {"bbox": [0, 0, 4]}, "3 values in its bbox, not 4"),
    ("negative width", {"bbox": [0, 0, -4, 4]}, "negative width"),
    ("polygon of text", {"segmentation": [["1", 2, 3, 4, 5, 6]]}, "text '1' in its segmentation"),
    ("two-point polygon", {"segmentation": [[1, 2, 3, 4]]}, "4 values in its segmentation"),
    (
        "OBB corner past 2^31",
        {"bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 2**40, 0, 4, 4]]},
        "beyond",
    ),
    ("keypoints not triples", {"bbox": [0, 0, 4, 4], "keypoints": [1, 2]}, "not (x, y, v) triples"),
    ("CVAT points of three", {"bbox": [0, 0, 4, 4], "points": [[1, 2, 3]]}, "is not [x, y]"),
    ("mask of text", {"bbox": [0, 0, 4, 4], "segmentation": {"size": "x", "counts": "y"}}, "mask"),
    ("Label Studio percent", {"bbox": [0, 0, 4, 4], "value": {"x": BIG, "y": 0}}, "value's x"),
    ("objects' object a list", [0, 0, 4, 4], "it is not an object"),  # type: ignore[list-item]
]


def read_back(out: Path, layout: str) -> list[list[float]]:
    """The boxes each layout's reader gets back, in pixels."""
    if layout == "coco":
        coco = COCO(str(out / "annotations" / "instances.json"))
        return [ann["bbox"] for ann in coco.anns.values()]
    if layout == "yolo":
        rows = [
            list(map(float, ln.split()[1:5])) for ln in (out / "a.txt").read_text().splitlines()
        ]
        return [[(x - w / 2) * W, (y - h / 2) * H, w * W, h * H] for x, y, w, h in rows]
    tasks = json.loads((out / "tasks.json").read_bytes())
    values = [r["value"] for r in tasks[0]["predictions"][0]["result"]]
    return [
        [v["x"] * W / 100, v["y"] * H / 100, v["width"] * W / 100, v["height"] * H / 100]
        for v in values
    ]


@pytest.mark.parametrize("layout", ["coco", "yolo", "label-studio"])
@pytest.mark.parametrize("name, hostile, reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_geometry_that_is_not_numbers_leaves_its_object_out_with_the_reason(
    tmp_path, layout, name, hostile, reason
):
    objects = [GOOD, {**hostile, "category": "bad"} if isinstance(hostile, dict) else hostile]
    store = build_store(
        tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {"objects": objects}}
    )
    out = tmp_path / "out"
    result = export(store, out, layout)
    assert result.exit_code == 0, result.output
    assert "a.png: object 2 is left out: " in result.stderr and reason in result.stderr, (
        result.stderr
    )
    assert [[round(v, 6) for v in box] for box in read_back(out, layout)] == [GOOD["bbox"]]


def _zero_width_store(path: Path) -> Path:
    data = make_image("PNG", (W, H))
    info = ImageInfo(hashlib.sha256(data).hexdigest(), len(data), "png", 0, H)  # a crafted record
    rebuild(path, [Item(Record("a.png", info, {"objects": [GOOD]}), lambda: data)])
    return path


@pytest.mark.parametrize("layout", ["yolo", "label-studio"])  # COCO does not divide by it
def test_an_image_the_store_says_is_zero_pixels_wide_loses_its_objects_with_a_note(
    tmp_path, layout
):
    out = tmp_path / "out"
    result = export(_zero_width_store(tmp_path / "s.lmdb"), out, layout)
    assert result.exit_code == 0, result.output
    assert (
        "a.png: its 1 object(s) are left out: the store gives its image 0x30 pixels"
        in result.stderr
    )


def test_the_viewer_draws_what_holds_and_says_why_the_rest_is_not_drawn(tmp_path):
    objects = [GOOD, {"bbox": [0, 0, BIG, 1], "category": "big"}, {"bbox": ["0", 0, 1, 1]}]
    store = build_store(
        tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {"objects": objects}}
    )
    with serving(store, tmp_path / "thumbs") as url:
        status, _, body = get(url + "image/a.png")
    page = body.decode()
    assert status == 200
    assert page.count("<rect ") == 1 and 'width="10.0" height="8.0"' in page
    assert "object 2: a number in its bbox is not finite, or beyond 2^31" in page
    assert "object 3: text &#39;0&#39; in its bbox, where a number goes" in page


# ------------------------------------------------------------------ seeded fuzz


def _count_written(out: Path, layout: str) -> int:
    if layout == "coco":
        return len(json.loads((out / "annotations" / "instances.json").read_bytes())["annotations"])
    if layout == "yolo":
        return len((out / "a.txt").read_text().splitlines())
    tasks = json.loads((out / "tasks.json").read_bytes())
    return len(tasks[0]["predictions"][0]["result"])


def _fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "big", "float", "text", "bool", "null", "list", "dict"]
    kind = rng.choice(kinds if depth < 2 else kinds[:6])
    if kind == "list":
        return [_fuzz_value(rng, depth + 1) for _ in range(rng.choice([0, 2, 3, 4, 6, 8]))]
    if kind == "dict":
        return {rng.choice(["size", "counts", "x", "y", "width"]): _fuzz_value(rng, depth + 1)}
    return {
        "int": rng.randint(-50, 50),
        "big": rng.choice([1, -1]) * 10 ** rng.randint(10, 400),
        "float": rng.choice([0.5, 1e300, -2.5, 3.0]),
        "text": "AAAA",
        "bool": True,
        "null": None,
    }[kind]


def test_fuzzed_geometry_is_exported_or_reported_never_a_traceback(tmp_path):
    """300 objects of seeded random JSON in the geometry fields, through each export and
    the viewer: every object is written, or left out with a note; nothing raises."""
    rng = random.Random(37)
    fields = ["bbox", "segmentation", "keypoints", "points", "area", "value"]
    objects = [
        {name: _fuzz_value(rng) for name in rng.sample(fields, rng.randint(1, 3))}
        for _ in range(300)
    ]
    for at, obj in enumerate(objects):
        if at % 10 == 0:  # some that hold
            obj.clear()
            obj["bbox"] = [1, 2, 3, 4]
        obj["category"] = f"c{at % 3}"
    store = build_store(
        tmp_path / "s.lmdb", {"a.png": make_image("PNG", (W, H))}, {"a.png": {"objects": objects}}
    )
    drawn = drawing({"objects": objects})
    assert drawn.shapes and drawn.skipped and len(drawn.problems) <= 20
    with ImageStore(store) as opened:
        records = list(opened.records())
        for layout in ("coco", "yolo", "label-studio"):
            out = tmp_path / layout
            notes = export_files(opened, records, out, layout=layout).notes
            left = {int(n.split("object ")[1].split()[0]) for n in notes if "is left out" in n}
            assert len(left) == len([n for n in notes if "is left out" in n])  # one note each
            written = _count_written(out, layout)
            assert written + len(left) == len(objects), (layout, written, len(left))
            assert written >= len(objects) // 10  # those given a box that holds
