"""A seeded fuzz of the files a teammate commits or pushes: catalog lines, index.json,
remove.txt, params.yaml, and each annotation format (CSV, JSON Lines, COCO, YOLO with
data.yaml, VOC). Each mutated file is read by the code that reads it for real; the only
outcomes allowed are success or a one-line ShelfError. Every kind runs in a process of
its own, its memory capped at 1 GiB and its time at a minute: a traceback, a signal, a
hang or an allocation past the cap fails the test."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from conftest import PROJECT, make_image

CASES = 40  # mutations per kind: about 10 s for all kinds on two cores
MEMORY = 1 << 30

VOC = (
    "<annotation><filename>a.jpg</filename><size><width>32</width><height>24</height></size>"
    "<object><name>cat</name><pose>Left</pose><bndbox><xmin>1</xmin><ymin>2</ymin>"
    "<xmax>10</xmax><ymax>12</ymax></bndbox><part><name>head</name><bndbox><xmin>1</xmin>"
    "<ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></part></object></annotation>"
)
COCO = {
    "info": {"year": 2017},
    "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
    "annotations": [
        {
            "id": 7,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 2, 3, 4],
            "area": 12,
            "iscrowd": 0,
            "segmentation": [[1, 2, 3, 4, 5, 6]],
        }
    ],
    "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}],
}
SEEDS = {
    "csv": ("labels.csv", b"file_name,label,score\na.jpg,cat,0.5\nb.jpg,dog,007\n"),
    "jsonl": ("metadata.jsonl", b'{"file_name": "a.jpg", "label": "cat", "boxes": [[1, 2]]}\n'),
    "coco": ("annotations/instances_val.json", json.dumps(COCO).encode()),
    "yolo": ("labels/a.txt", b"0 0.5 0.5 0.25 0.25\n1 0.1 0.1 0.9 0.1 0.5 0.9\n"),
    "data.yaml": (
        "data.yaml",
        b"path: .\ntrain: images\nkpt_shape: [2, 3]\nnames:\n  0: cat\n  1: dog\n",
    ),
    "voc": ("Annotations/a.xml", VOC.encode()),
}
EXTREMES = [
    b"1e400",
    b"-1",
    b"18446744073709551616",
    b'"\\ud800"',
    b"[" * 3000,
    b"null",
    b"{}",
    b"[]",
    b'"' + b"x" * 5000 + b'"',
    b"\xff\xfe",
    b"\x00",
    b"NaN",
    b"*a",  # a YAML alias
    b"&a [x, x] ",  # a YAML anchor
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded change of a kind a damaged or hostile file shows."""
    data = bytearray(data)
    how = rng.randrange(6)
    at = rng.randrange(len(data) + 1)
    if how == 0 and data:
        data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
    elif how == 1:
        del data[at:]
    elif how == 2:
        data[at:at] = rng.choice(EXTREMES)
    elif how == 3 and data:
        end = min(len(data), at + rng.randrange(1, 40))
        data[at:end] = rng.choice(EXTREMES)
    elif how == 4:
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    else:
        piece = bytes(data[at : at + rng.randrange(1, 60)])
        data[at:at] = piece * rng.randrange(2, 50)
    return bytes(data)


def _annotations(kind: str, rel: str, data: bytes, root: Path) -> None:
    from imageshelf.project.params import AnnotationsParams, IngestParams
    from imageshelf.stages.ingest import run

    incoming = root / "data" / "incoming"
    for name in ("a.jpg", "images/a.jpg", "JPEGImages/a.jpg", "val/a.jpg"):
        path = incoming / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(IMAGE)
    if kind == "yolo":
        (incoming / "data.yaml").write_text("names: [cat, dog]\n")
    if kind == "data.yaml":
        (incoming / "labels").mkdir(exist_ok=True)
        (incoming / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2 0.1 0.1 2 0.2 0.2 1\n")
    target = incoming / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    run(incoming, root / "staged.jsonl", root / "ingest.json", IngestParams(), AnnotationsParams())


def _catalog(data: bytes, root: Path) -> None:
    from imageshelf.records.manifest import read_manifest
    from imageshelf.versions.catalog import catalog_file_digest

    path = root / "images.jsonl"
    path.write_bytes(data)
    catalog_file_digest(path)  # what validate reads
    list(read_manifest(path))  # what diff and the viewer read


def _index(data: bytes, root: Path) -> None:
    from imageshelf.store import ImageStore

    folder = root / "images"
    folder.mkdir(exist_ok=True)
    (folder / "index.json").write_bytes(data)
    store = ImageStore(folder)
    for key in list(store):
        store.get(key)


def _removals(data: bytes, root: Path) -> None:
    from imageshelf.stages.pack import read_removals

    path = root / "remove.txt"
    path.write_bytes(data)
    read_removals(path)


def _params(data: bytes, root: Path) -> None:
    from imageshelf.project.params import SECTIONS, load_params

    path = root / "params.yaml"
    path.write_bytes(data)
    for kind in SECTIONS.values():
        load_params(kind, path)


IMAGE = b""


def worker(kind: str, seed_file: str, seed: int) -> None:
    """Run CASES mutations of one kind in this process; print a traceback and exit 3 on
    anything but success or a ShelfError."""
    global IMAGE
    import tempfile

    from imageshelf.errors import ShelfError

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    IMAGE = make_image("JPEG", (32, 24), seed=1)
    original = Path(seed_file).read_bytes()
    rng = random.Random(seed)
    for case in range(CASES):
        data = mutate(original, rng)
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            os.environ["IMAGESHELF_CACHE_DIR"] = str(root / "cache")
            try:
                if kind == "catalog":
                    _catalog(data, root)
                elif kind == "index":
                    _index(data, root)
                elif kind == "remove":
                    _removals(data, root)
                elif kind == "params":
                    _params(data, root)
                else:
                    _annotations(kind, SEEDS[kind][0], data, root)
            except ShelfError as exc:
                assert "\n" not in str(exc).strip(), f"case {case}: a message of many lines"
            except Exception:  # noqa: BLE001 - what the fuzz is here to find
                print(f"case {case} of {kind}: {data[:200]!r}")
                traceback.print_exc()
                sys.exit(3)


def _seed_files(tmp_path: Path) -> dict[str, Path]:
    from conftest import build_store

    files = {}
    for kind, (_rel, data) in SEEDS.items():
        files[kind] = tmp_path / f"seed-{kind.replace('.', '-')}"
        files[kind].write_bytes(data)
    store = build_store(tmp_path / "s.lmdb", {"a.png": make_image(seed=1)})
    from imageshelf.store import ImageStore
    from imageshelf.versions.catalog import write_catalog

    write_catalog(ImageStore(store), tmp_path / "catalog")
    files["catalog"] = next((tmp_path / "catalog").iterdir())
    files["index"] = tmp_path / "index.json"
    files["index"].write_text(
        json.dumps(
            {
                "format": "lmdb-image-store-sharded",
                "version": "1.0",
                "count": 0,
                "total_bytes": 0,
                "content_digest": "e3b0c442",
                "shards": [],
            }
        )
    )
    files["remove"] = tmp_path / "remove.txt"
    files["remove"].write_text('# keys to drop\na.png\n"#b.png"\n')
    files["params"] = PROJECT / "params.yaml"
    return files


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["csv", "jsonl", "coco", "yolo", "data.yaml", "voc", "catalog", "index", "remove", "params"],
)
def test_fuzzed_files_a_teammate_commits_give_one_line_or_nothing(tmp_path, kind):
    seed_file = _seed_files(tmp_path)[kind]
    code = (
        f"import sys; sys.path.insert(0, {str(PROJECT / 'tests')!r})\n"
        "import test_fuzz_files as f\n"
        f"f.worker({kind!r}, {str(seed_file)!r}, {sum(map(ord, kind))})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
