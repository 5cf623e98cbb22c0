"""Ingest: what arrived in data/incoming/, checked, hashed and described."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imageshelf.records.manifest import read_manifest

from conftest import make_image, put, report, stage

INCOMING = Path("data/incoming")


def staged() -> dict[str, dict]:
    return {r.key: r.metadata for r in read_manifest(Path("data/staged.jsonl"))}


def test_metadata_comes_from_csv_jsonl_and_sidecars_with_sidecars_winning(workspace):
    put(
        INCOMING,
        {
            "cats/a.jpg": make_image("JPEG", seed=1),
            "cats/b.png": make_image("PNG", seed=2),
            "cats/c.webp": make_image("WEBP", seed=3),
            "labels.csv": "path,label,source\ncats/a.jpg,cat,web\ncats/b.png,cat,\n",
            "cats/metadata.jsonl": '{"path": "b.png", "text": "hello"}\n'
            '{"file": "c.webp", "label": "kitten", "boxes": [[1,2,3,4]]}\n',
            "cats/a.json": '{"label": "generic", "split": "val"}',
            "cats/a.jpg.json": '{"label": "tabby"}',
        },
    )
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    assert staged() == {
        "cats/a.jpg": {"label": "tabby", "source": "web", "split": "val"},
        "cats/b.png": {"label": "cat", "text": "hello"},
        "cats/c.webp": {"label": "kitten", "boxes": [[1, 2, 3, 4]]},
    }
    assert "3 images staged" in result.stdout and "0 rejected" in result.stdout


def test_image_or_not_is_decided_by_content_not_the_name(workspace):
    put(INCOMING, {"really_a_png.txt": make_image("PNG"), "fake.jpg": "just text"})
    stage("ingest")
    assert list(staged()) == ["really_a_png.txt"]
    assert report("ingest")["rejects"] == [
        {
            "path": "fake.jpg",
            "code": "not_image",
            "reason": "not an image: no image format Pillow reads recognises its content",
        }
    ]


def test_every_unusable_file_gets_one_line_and_a_reason(workspace, tmp_path):
    good = make_image("PNG", seed=5)
    outside = tmp_path / "outside.png"
    outside.write_bytes(good)
    put(
        INCOMING,
        {
            "good.png": good,
            "empty.jpg": b"",
            "half.png": good[: len(good) // 2],
            "bad_json.png": make_image("PNG", seed=6),
            "bad_json.png.json": "{not json",
            "list_json.png": make_image("PNG", seed=7),
            "list_json.png.json": "[1, 2]",
            "nan_json.png": make_image("PNG", seed=8),
            "nan_json.png.json": '{"score": NaN}',
            "deep/" + "x" * 200 + "/" + "y" * 200 + "/" + "z" * 120 + ".png": good,
        },
    )
    os.symlink(outside, INCOMING / "escape.png")
    os.symlink("loop_b", INCOMING / "loop_a")
    os.symlink("loop_a", INCOMING / "loop_b")
    os.symlink("good.png", INCOMING / "alias.png")  # inside the folder: fine

    result = stage("ingest")
    assert result.exit_code == 0, result.output
    assert sorted(staged()) == ["alias.png", "good.png"]
    rejects = {
        r["path"].split("/")[0]: (r["code"], r["reason"]) for r in report("ingest")["rejects"]
    }
    assert rejects["empty.jpg"] == ("empty", "empty file")
    assert rejects["half.png"][0] == "truncated"
    assert rejects["bad_json.png"][0] == "bad_metadata"
    assert "invalid metadata JSON in bad_json.png.json" in rejects["bad_json.png"][1]
    assert "is a JSON list, not an object" in rejects["list_json.png"][1]
    assert "NaN is not valid JSON" in rejects["nan_json.png"][1]
    assert rejects["escape.png"] == (
        "symlink",
        f"symlink leads outside the incoming folder (to {outside})",
    )
    assert rejects["loop_a"] == ("symlink", "symlink loop")
    assert rejects["deep"][0] == "key_too_long"
    assert "Traceback" not in result.output
    assert all("\n" not in reason for _, reason in rejects.values())


def test_strict_makes_any_reject_fail_the_stage_after_writing_the_report(workspace):
    put(INCOMING, {"good.png": make_image(), "empty.jpg": b""})
    params = Path("params.yaml")
    params.write_text(params.read_text().replace("strict: false", "strict: true"))
    result = stage("ingest")
    assert result.exit_code == 1
    assert "1 file(s) rejected and ingest.strict is true" in result.stderr
    assert report("ingest")["rejected"] == 1


def test_metadata_that_matches_no_image_is_reported(workspace):
    put(
        INCOMING,
        {
            "a.png": make_image(),
            "orphan.json": "{}",
            "labels.csv": "path,label\na.png,x\nmissing.png,y\n",
        },
    )
    stage("ingest")
    assert report("ingest")["unused_metadata"] == [
        "labels.csv:3: missing.png (no such image)",
        "orphan.json: not COCO (images and annotations), a Label Studio export (tasks with "
        "data and annotations), FiftyOne's labels.json (labels by image), LabelMe (shapes "
        "and imagePath) or Cityscapes polygons (NAME_gtFine_polygons.json), and no image of "
        "that name",
    ]


def test_the_manifest_is_sorted_and_the_same_for_the_same_files(workspace):
    put(INCOMING, {f"{name}.png": make_image(seed=i) for i, name in enumerate("dbca")})
    stage("ingest")
    first = Path("data/staged.jsonl").read_bytes()
    stage("ingest")
    assert Path("data/staged.jsonl").read_bytes() == first
    assert [json.loads(line)["key"] for line in first.splitlines()[1:]] == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
    ]


def test_a_mistake_in_params_is_one_clear_line(workspace):
    Path("params.yaml").write_text("ingest:\n  strict: maybe\n")
    result = stage("ingest")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: params.yaml: ingest.strict must be true or false"
    Path("params.yaml").write_text("ingest:\n  strikt: true\n")
    assert "unknown setting ingest.strikt" in stage("ingest").stderr


def test_a_file_over_max_file_bytes_is_rejected_with_its_size_and_the_rest_staged(workspace):
    big, small = make_image(size=(64, 64), seed=1), make_image(seed=2)
    put(INCOMING, {"big.png": big, "small.png": small})
    params = Path("params.yaml")
    params.write_text(
        params.read_text().replace("max_file_bytes: 268435456", f"max_file_bytes: {len(small)}")
    )
    stage("ingest")
    assert list(staged()) == ["small.png"]
    assert [(r["path"], r["code"], r["reason"]) for r in report("ingest")["rejects"]] == [
        ("big.png", "too_large", f"file is {len(big):,} bytes, over ingest.max_file_bytes")
    ]


def test_a_damaged_entry_of_ingests_cache_means_that_file_is_probed_again(workspace):
    """The cache is ours, but a disk can damage it: an entry that no longer parses is
    no knowledge, not a traceback."""
    import hashlib

    import lmdb

    (workspace / ".dvc").mkdir()  # where ingest keeps what it learned (state/cache.py)
    put(Path("data/incoming"), {"a.png": make_image(seed=1), "b.png": make_image(seed=2)})
    assert stage("ingest").exit_code == 0
    env = lmdb.open(".dvc/tmp/imageshelf/incoming.lmdb", subdir=False, lock=False)
    with env.begin(write=True) as txn:
        raw = txn.get(b"a.png")
        txn.put(b"a.png", raw[:96] + b'["image", "not a hash"')  # fingerprint still right
        raw = txn.get(b"b.png")
        txn.put(b"b.png", raw[:96] + b'["image", "not a hash", 1, "png", 1, 1]')  # parses
    env.close()
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    staged = {r.key: r.info.sha256 for r in read_manifest("data/staged.jsonl")}
    assert staged == {
        key: hashlib.sha256((Path("data/incoming") / key).read_bytes()).hexdigest()
        for key in ("a.png", "b.png")
    }


# ------------------------------------------------------- what a change makes ingest look at


def mixed() -> dict[str, bytes | str]:
    """A place with one dataset of each kind of annotation file: sidecars, a label table,
    a YOLO export, Pascal VOC (XML, a split list and masks), COCO, ADE20K (masks, class
    names and scenes), and an image alone: 13 images."""
    files: dict[str, bytes | str] = {"loose.png": make_image(seed=90)}
    for i in range(2):
        files[f"side/{i}.png"] = make_image(seed=i)
        files[f"side/{i}.json"] = json.dumps({"label": f"side{i}"})
    for i in range(3):
        files[f"table/{i}.png"] = make_image(seed=10 + i)
    files["table/labels.csv"] = "path,label\n0.png,cat\n1.png,dog\n2.png,cat\n"
    files["table/metadata.jsonl"] = '{"file_name": "0.png", "label": "emu"}\n'  # it wins
    files["yolo/data.yaml"] = "train: images/train\nnames: [cat, dog]\n"
    for i in range(2):
        files[f"yolo/images/train/{i}.png"] = make_image(seed=20 + i)
        files[f"yolo/labels/train/{i}.txt"] = f"{i} 0.5 0.5 0.5 0.5\n"
    for i, name in enumerate("ab"):
        files[f"VOC/JPEGImages/{name}.jpg"] = make_image("JPEG", seed=30 + i)
        files[f"VOC/Annotations/{name}.xml"] = voc_xml(name, "cat")
    files["VOC/SegmentationClass/a.png"] = mask_png(seed=1)
    files["VOC/ImageSets/Segmentation/train.txt"] = "a\nb\n"
    for i in range(2):
        files[f"coco/{i}.png"] = make_image(seed=40 + i)
    files["coco/instances.json"] = coco_json(["cat", "dog"])
    files["ade/images/training/0.jpg"] = make_image("JPEG", seed=60)
    files["ade/annotations/training/0.png"] = mask_png(seed=2)
    files["ade/objectInfo150.csv"] = object_info("person")
    files["ade/sceneCategories.txt"] = "0 street\n"
    return files


def object_info(name: str) -> str:
    """ADE20K's class names: Idx, Ratio, Train, Val, Name (15 is in mask_png's)."""
    return f"Idx,Ratio,Train,Val,Name\n1,0.1,1,1,wall\n15,0.1,1,1,{name}\n"


def voc_xml(name: str, category: str) -> str:
    return (
        f"<annotation><filename>{name}.jpg</filename><object><name>{category}</name>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>8</ymax></bndbox>"
        "</object></annotation>"
    )


def coco_json(categories: list[str], box: int = 4) -> str:
    return json.dumps(
        {
            "images": [
                {"id": i, "file_name": f"{i}.png", "width": 32, "height": 24} for i in (0, 1)
            ],
            "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, box, box]}],
            "categories": [{"id": n + 1, "name": name} for n, name in enumerate(categories)],
        }
    )


def mask_png(seed: int) -> bytes:
    """A palette PNG of VOC class ids (0 and 15: person)."""
    import io

    from PIL import Image

    image = Image.new("P", (32, 24), 0)
    image.putpalette([0, 0, 0] + [128, 0, 0] * 255)
    for x in range(seed % 7, 16):
        image.putpixel((x, 12), 15)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def change(files: dict[str, bytes | str], rel: str, data: bytes | str | None) -> None:
    """Write (or, with None, remove) a file of data/incoming/ and keep `files` as the
    folder is. Its mtime moves a second on: a fingerprint is what tells a change, and two
    writes within a clock tick can leave it as it was."""
    path = INCOMING / rel
    if data is None:
        path.unlink()
        del files[rel]
        return
    before = path.stat().st_mtime_ns if path.exists() else None
    put(INCOMING, {rel: data})
    if before is not None:
        os.utime(path, ns=(before + 10**9, before + 10**9))
    files[rel] = data


CHANGES = {
    # name: (the change, how many images ingest then looks up in the store)
    "an image's sidecar": (lambda f: change(f, "side/0.json", '{"label": "new"}'), 1),
    "a sidecar removed": (lambda f: change(f, "side/1.json", None), 1),
    "a YOLO label file": (lambda f: change(f, "yolo/labels/train/0.txt", "1 0.5 0.5 0.2 0.2\n"), 1),
    "a row of a table": (
        lambda f: change(f, "table/labels.csv", "path,label\n0.png,cat\n1.png,emu\n2.png,cat\n"),
        3,  # the images its rows name, then and now
    ),
    "a VOC XML file": (lambda f: change(f, "VOC/Annotations/b.xml", voc_xml("b", "dog")), 1),
    "a mask": (lambda f: change(f, "VOC/SegmentationClass/a.png", mask_png(seed=3)), 1),
    "an image": (lambda f: change(f, "loose.png", make_image(seed=91)), 1),
    "a new YOLO export": (
        lambda f: (
            change(f, "yolo2/data.yaml", "train: images/train\nnames: [emu]\n"),
            change(f, "yolo2/images/train/0.png", make_image(seed=50)),
            change(f, "yolo2/labels/train/0.txt", "0 0.5 0.5 0.5 0.5\n"),
        ),
        1,  # the images below it
    ),
    # Files that give meaning to others: the images below them, then and now.
    "a class renamed in data.yaml": (
        lambda f: change(f, "yolo/data.yaml", "train: images/train\nnames: [cat, emu]\n"),
        2,
    ),
    "a dataset's class names": (
        lambda f: change(f, "ade/objectInfo150.csv", object_info("man")),
        1,
    ),
    "a dataset's scenes": (lambda f: change(f, "ade/sceneCategories.txt", "0 road\n"), 1),
    # Files that combine with others, or name images anywhere: every image.
    "a COCO file": (lambda f: change(f, "coco/instances.json", coco_json(["cat", "emu"])), 13),
    "a split list": (lambda f: change(f, "VOC/ImageSets/Segmentation/train.txt", "a\n"), 13),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_changed_annotation_file_looks_up_only_the_images_it_reaches(workspace, what):
    """The images a changed, new or removed file reaches (annotations/reach.py) are looked
    up in the store again; every other image, unchanged and stored as it is, is not."""
    (workspace / ".dvc").mkdir()  # where ingest keeps what it learned (state/cache.py)
    files = mixed()
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    apply, reached = CHANGES[what]
    apply(files)
    # A run that stages nothing new (a COCO category no box uses) keeps the last run's
    # report, dvc.lock unchanged: without one, this run's is written.
    Path("reports/ingest.json").unlink()
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    assert report("ingest")["looked_up"] == reached


Edit = Callable[[random.Random, int, dict[str, Any]], tuple[str, Any]]
EDITS: dict[str, Edit] = {  # each gives the path to change and its new content (None: removed)
    "sidecar edited": lambda rng, seed, _files: (
        f"side/{rng.randrange(3)}.json",
        json.dumps({"label": f"l{seed % 3}", "n": seed % 2}),
    ),
    "table row changed": lambda rng, _seed, _files: ("table/labels.csv", table_csv(rng)),
    "JSON Lines rows changed": lambda rng, _seed, _files: ("table/metadata.jsonl", jsonl(rng)),
    "data.yaml class renamed": lambda rng, _seed, _files: (
        "yolo/data.yaml",
        f"train: images/train\nnames: [cat, {rng.choice(['dog', 'emu'])}]\n",
    ),
    "YOLO label edited": lambda rng, _seed, _files: (
        f"yolo/labels/train/{rng.randrange(3)}.txt",
        f"{rng.randrange(2)} 0.5 0.5 0.{rng.randrange(1, 9)} 0.5\n",
    ),
    "VOC XML edited": lambda rng, _seed, _files: (
        f"VOC/Annotations/{rng.choice('ab')}.xml",
        voc_xml(rng.choice("ab"), rng.choice(["cat", "dog"])),
    ),
    "mask changed": lambda rng, seed, _files: (
        f"VOC/SegmentationClass/{rng.choice('ab')}.png",
        mask_png(seed),
    ),
    "COCO file edited": lambda rng, _seed, _files: (
        "coco/instances.json",
        coco_json(["cat", rng.choice(["dog", "emu"])], box=rng.randrange(2, 6)),
    ),
    "class names edited": lambda rng, _seed, _files: (
        "ade/objectInfo150.csv",
        object_info(rng.choice(["person", "man"])),
    ),
    "scenes edited": lambda rng, _seed, _files: (
        "ade/sceneCategories.txt",
        f"0 {rng.choice(['street', 'road'])}\n",
    ),
    "data.yaml moved": lambda rng, _seed, _files: (
        rng.choice(["yolo/data.yaml", "yolo/images/data.yaml", "data.yaml"]),
        "train: images/train\nnames: [cat, dog]\n",
    ),
    "split list edited": lambda rng, _seed, _files: (
        "VOC/ImageSets/Segmentation/train.txt",
        rng.choice(["a\n", "a\nb\n"]),
    ),
    "image added or changed": lambda rng, seed, _files: (
        f"{rng.choice(['side', 'table', 'yolo/images/train', 'coco', 'new'])}/{seed % 3}.png",
        make_image(seed=seed),
    ),
    "file removed": lambda rng, _seed, files: (rng.choice(sorted(files)), None),
    "annotation file removed": lambda rng, _seed, files: (
        rng.choice(sorted(r for r in files if not r.endswith((".png", ".jpg")))),
        None,
    ),
    "image touched": lambda rng, _seed, files: (
        rel := rng.choice(sorted(r for r in files if r.endswith((".png", ".jpg")))),
        files[rel],
    ),
}


def edits(rng: random.Random, files: dict[str, Any], step: int) -> list[str]:
    """One to three random changes of every kind (EDITS) to the place; what they were."""
    made = []
    for n in range(rng.randint(1, 3)):
        kind = rng.choice(sorted(EDITS))
        rel, data = EDITS[kind](rng, 1000 + step * 10 + n, files)
        if data is not None or rel in files:
            change(files, rel, data)
            made.append(f"{kind}: {rel}")
    return made


def jsonl(rng: random.Random) -> str:
    rows = [(i, rng.choice(["emu", "owl"])) for i in range(4) if rng.random() < 0.5]
    return "".join(
        json.dumps({"file_name": f"{i}.png", "label": label}) + "\n" for i, label in rows
    )


def table_csv(rng: random.Random) -> str:
    rows = [f"{i}.png,{rng.choice(['cat', 'dog'])}" for i in range(4) if rng.random() < 0.8]
    return "path,label\n" + "".join(f"{row}\n" for row in rows)


def ingest_once(warm: bool) -> tuple[list[bytes], dict[str, Any]]:
    """What an ingest of data/incoming/ stages (the manifest's lines) and reports, but for
    how many images it looked up in the store: what the cache saves. Warm, it is the
    stage (its manifest is written for pack); cold, nothing is written."""
    from imageshelf.project.params import AnnotationsParams, IngestParams, load_params
    from imageshelf.records.manifest import encode_line
    from imageshelf.stages.ingest import ingest, run
    from imageshelf.store import ImageStore

    settings, rules = load_params(IngestParams), load_params(AnnotationsParams)
    store = Path("data/images.lmdb")
    if warm:
        result = run(
            INCOMING,
            Path("data/staged.jsonl"),
            Path("reports/ingest.json"),
            settings,
            rules,
            store=store,
        )
    else:
        with ImageStore(store) as stored:
            result = ingest(INCOMING, settings, rules, store=stored)
    report_ = result.report()
    del report_["looked_up"]
    return [encode_line(record) for record in result.staged], report_


@pytest.mark.parametrize("seed", range(6))
def test_a_warm_ingest_stages_what_a_cold_one_stages(workspace, seed):
    """The cache only saves work: after any change to a place of every kind of annotation
    file, an ingest that uses what the earlier runs learned stages and reports exactly
    what one without the cache (.dvc/tmp/imageshelf deleted) does."""
    (workspace / ".dvc").mkdir()  # where ingest keeps what it learned (state/cache.py)
    params = workspace / "params.yaml"  # an image changed in place replaces the stored one
    params.write_text(params.read_text().replace("on_conflict: error", "on_conflict: replace"))
    cache, aside = Path(".dvc/tmp/imageshelf"), Path(".dvc/tmp/aside")
    rng = random.Random(seed)
    files = mixed()
    put(INCOMING, files)
    ingest_once(warm=True)
    for step in range(10):
        packed = stage("pack")
        assert packed.exit_code == 0, packed.output
        made = edits(rng, files, step)
        warm = ingest_once(warm=True)
        cache.rename(aside)
        cold = ingest_once(warm=False)
        shutil.rmtree(cache)
        aside.rename(cache)
        assert warm == cold, f"step {step}: {made}"


def test_a_mask_no_longer_paired_is_staged_as_an_image_of_its_own(workspace):
    """Found by the test above: an ADE20K mask whose image goes (and with it the
    images/ folder that makes the layout) is an image of its own. The cache knew it as
    stored, but in its image's record, not under its own key: it is staged now."""
    (workspace / ".dvc").mkdir()  # where ingest keeps what it learned (state/cache.py)
    files = {
        "ade/images/training/0.jpg": make_image("JPEG", seed=60),
        "ade/annotations/training/0.png": mask_png(seed=2),
    }
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    assert report("ingest")["paired"] == 1
    (INCOMING / "ade/images/training/0.jpg").unlink()
    result = stage("ingest")
    assert result.exit_code == 0, result.output
    assert list(staged()) == ["ade/annotations/training/0.png"]
    assert "1 images staged" in result.output and "already in the store" not in result.output
