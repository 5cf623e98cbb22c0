"""Paired images: a segmentation mask (or an instance map, a colour rendering) stays tied
to its image: byte-identical, in the store under the image's record, with its split;
never a sample of its own; read with it; proven by validate (FORMAT.md, 3.0)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from imageshelf.store import ImageStore
from imageshelf.store.values import Paired
from imageshelf.store.writer import Item, rebuild, write_sharded

from conftest import items_for, make_image, put, report, stage

INCOMING = Path("data/incoming")


def mask_png(size: tuple[int, int] = (32, 24), seed: int = 0) -> bytes:
    """A palette PNG of class ids, as VOC's SegmentationClass holds (0, 15, 255)."""
    image = Image.new("P", size, 0)
    image.putpalette([0, 0, 0, 128, 0, 0] * 8 + [192, 128, 128] * 120)
    for x in range(seed % 7, size[0] // 2):
        for y in range(size[1] // 3, size[1]):
            image.putpixel((x, y), 15)
    image.putpixel((0, 0), 255)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def voc(root: str = "VOC2012", ids: range = range(4), masked: range = range(3)) -> dict:
    """A Pascal VOC segmentation layout: JPEGImages/, SegmentationClass/,
    SegmentationObject/, ImageSets/Segmentation/{train,val}.txt (torchvision's
    VOCSegmentation reads image i with SegmentationClass/i.png)."""
    files: dict[str, bytes | str] = {}
    for i in ids:
        name = f"2007_{i:06d}"
        files[f"{root}/JPEGImages/{name}.jpg"] = make_image("JPEG", (32, 24), seed=i)
        if i in masked:
            files[f"{root}/SegmentationClass/{name}.png"] = mask_png(seed=i)
            files[f"{root}/SegmentationObject/{name}.png"] = mask_png(seed=i + 3)
    files[f"{root}/ImageSets/Segmentation/train.txt"] = "2007_000000\n2007_000001\n"
    files[f"{root}/ImageSets/Segmentation/val.txt"] = "2007_000002\n2007_000003\n"
    return files


# ------------------------------------------------------------------ the store


def paired_items(images: dict[str, bytes], masks: dict[str, bytes]) -> list[Item]:
    items = []
    for item, key in zip(items_for(images), images, strict=True):
        mask = f"masks/{key}"
        if mask in masks:
            info = items_for({mask: masks[mask]})[0].record.info
            record = item.record.replace(paired={"mask": Paired(mask, info)})
            item = Item(record, item.read, read_paired=lambda _role, m=masks[mask]: m)
        items.append(item)
    return items


def test_a_paired_image_comes_back_byte_identical_with_its_image(tmp_path):
    images = {f"{i}.png": make_image("PNG", seed=i) for i in range(4)}
    masks = {f"masks/{i}.png": mask_png(seed=i % 2) for i in range(3)}  # 0 and 2 the same
    header = rebuild(tmp_path / "s.lmdb", paired_items(images, masks))
    assert header.version == "3.0"
    assert header.total_bytes == sum(map(len, images.values())) + sum(map(len, masks.values()))
    store = ImageStore(tmp_path / "s.lmdb")
    assert store.keys() == sorted(images)  # a mask is no record of its own
    for key, data in images.items():
        assert store.get(key) == data
        roles = store.record(key).paired
        if f"masks/{key}" in masks:
            assert roles["mask"].file == f"masks/{key}"
            assert store.get_paired(key, "mask") == masks[f"masks/{key}"]
        else:
            assert roles == {}
            with pytest.raises(KeyError):
                store.get_paired(key, "mask")


def test_a_store_without_paired_images_stays_format_2(tmp_path):
    images = {f"{i}.png": make_image("PNG", seed=i) for i in range(3)}
    assert rebuild(tmp_path / "s.lmdb", items_for(images)).version == "2.0"


def test_paired_images_give_the_same_file_in_any_order_and_survive_rewrites(tmp_path):
    images = {f"{i}.png": make_image("PNG", seed=i) for i in range(5)}
    masks = {f"masks/{i}.png": mask_png(seed=i) for i in range(5)}
    items = paired_items(images, masks)
    rebuild(tmp_path / "a.lmdb", items)
    rebuild(tmp_path / "b.lmdb", items[3:])
    rebuild(tmp_path / "b.lmdb", items[:3])  # a second batch, merged with the first
    assert (tmp_path / "a.lmdb").read_bytes() == (tmp_path / "b.lmdb").read_bytes()
    # Rewritten from itself (a removal), and converted to shards: the masks stay.
    rebuild(tmp_path / "a.lmdb", [], ["0.png"])
    write_sharded(tmp_path / "shards", base=ImageStore(tmp_path / "a.lmdb"))
    for path in (tmp_path / "a.lmdb", tmp_path / "shards"):
        store = ImageStore(path)
        assert [store.get_paired(k, "mask") for k in store] == [masks[f"masks/{k}"] for k in store]


def test_validate_finds_a_flipped_byte_in_a_mask(tmp_path):
    from imageshelf.stages.validate import validate_store

    images = {f"{i}.png": make_image("PNG", seed=i) for i in range(2)}
    masks = {"masks/1.png": mask_png()}
    rebuild(tmp_path / "s.lmdb", paired_items(images, masks))
    assert validate_store(ImageStore(tmp_path / "s.lmdb"), full=True).failures == []
    data = bytearray((tmp_path / "s.lmdb").read_bytes())
    at = data.find(masks["masks/1.png"][40:80])
    data[at] ^= 0xFF
    (tmp_path / "s.lmdb").write_bytes(bytes(data))
    failures = validate_store(ImageStore(tmp_path / "s.lmdb"), full=True).failures
    assert any("1.png" in f["key"] and "mask" in f["problem"] for f in failures), failures


# ------------------------------------------------------------------ the pipeline


def test_voc_segmentation_masks_are_stored_under_their_images(workspace):
    files = voc()
    put(INCOMING, files)
    for name in ("ingest", "pack", "validate"):
        result = stage(name)
        assert result.exit_code == 0, result.output
    ingest = report("ingest")
    assert ingest["staged"] == 4  # four images: the six masks are not samples
    assert ingest["paired"] == 6
    store = ImageStore("data/images.lmdb")
    assert store.keys() == [f"VOC2012/JPEGImages/2007_{i:06d}.jpg" for i in range(4)]
    for i in range(4):
        key = f"VOC2012/JPEGImages/2007_{i:06d}.jpg"
        record = store.record(key)
        assert record.split == ("train" if i < 2 else "val")  # the mask's split is its image's
        if i < 3:
            assert set(record.paired) == {"mask", "instances"}
            roles = (("mask", "SegmentationClass"), ("instances", "SegmentationObject"))
            for role, folder in roles:
                file = f"VOC2012/{folder}/2007_{i:06d}.png"
                assert record.paired[role].file == file
                assert store.get_paired(key, role) == files[file]
        else:
            assert record.paired == {}


def test_a_mask_without_its_image_is_rejected_with_its_reason(workspace):
    files = voc(ids=range(2), masked=range(2))
    del files["VOC2012/JPEGImages/2007_000001.jpg"]
    put(INCOMING, files)
    assert stage("ingest").exit_code == 0
    rejects = {r["path"]: r for r in report("ingest")["rejects"]}
    for role in ("SegmentationClass", "SegmentationObject"):
        reject = rejects[f"VOC2012/{role}/2007_000001.png"]
        assert reject["code"] == "paired_without_image"
        assert "Pascal VOC" in reject["reason"] and "image is not" in reject["reason"]


def test_a_changed_mask_is_a_relabel_and_a_run_with_nothing_new_rewrites_nothing(workspace):
    files = voc()
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    store_file = Path("data/images.lmdb")
    before = store_file.read_bytes()
    again = stage("ingest")
    assert again.exit_code == 0 and "ingest: 0 images staged" in again.output  # masks as they were
    assert stage("pack").exit_code == 0
    assert store_file.read_bytes() == before
    new_mask = mask_png(seed=5)
    put(INCOMING, {"VOC2012/SegmentationClass/2007_000001.png": new_mask})
    for name in ("ingest", "pack", "validate"):
        result = stage(name)
        assert result.exit_code == 0, result.output
    assert report("ingest")["staged"] == 1
    pack = report("pack")
    assert (pack["relabeled"], pack["conflicts"], pack["added"]) == (1, [], 0)
    store = ImageStore(store_file)
    key = "VOC2012/JPEGImages/2007_000001.jpg"
    assert store.get_paired(key, "mask") == new_mask
    assert store.get_paired(key, "instances") == files["VOC2012/SegmentationObject/2007_000001.png"]


def test_images_dropped_again_without_their_masks_keep_them(workspace):
    files = voc()
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    for rel in list(files):
        if "/Segmentation" in rel and "ImageSets" not in rel:
            (INCOMING / rel).unlink()
    for name in ("ingest", "pack", "validate"):
        assert stage(name).exit_code == 0
    store = ImageStore("data/images.lmdb")
    key = "VOC2012/JPEGImages/2007_000000.jpg"
    assert store.get_paired(key, "mask") == files["VOC2012/SegmentationClass/2007_000000.png"]


def test_a_dataloader_trains_on_image_and_mask_pairs(workspace):
    import torch
    from torch.utils.data import DataLoader

    from imageshelf.read.dataset import ImageDataset, collate

    files = voc()
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0

    def to_tensors(image, mask):  # a joint transform: the same flip on both
        image, mask = image.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        ids = torch.frombuffer(bytearray(mask.tobytes()), dtype=torch.uint8)
        return pixels.view(24, 32, 3), ids.view(24, 32).long()

    train = ImageDataset("data/images.lmdb", paired="mask", decode="RGB", transforms=to_tensors)
    assert len(train) == 3  # the image without a mask is not a segmentation sample
    loader = DataLoader(train, batch_size=3, num_workers=2, collate_fn=collate)
    images, masks, metas = next(iter(loader))
    assert images.shape == (3, 24, 32, 3) and masks.shape == (3, 24, 32)
    for mask, meta in zip(masks, metas, strict=True):
        stem = meta["key"].rsplit("/", 1)[1][: -len(".jpg")]
        expected = Image.open(io.BytesIO(files[f"VOC2012/SegmentationClass/{stem}.png"]))
        flipped = expected.transpose(Image.FLIP_LEFT_RIGHT)  # the palette's class ids
        assert mask.flatten().tolist() == list(flipped.tobytes())
    assert {int(v) for v in masks.unique()} == {0, 15, 255}
    raw = ImageDataset("data/images.lmdb", paired=["mask", "instances"])
    image, mask, instances, meta = raw[0]
    key = meta["key"].replace("JPEGImages", "SegmentationClass").replace(".jpg", ".png")
    assert mask == files[key]  # decode=False: the original bytes of each


def test_the_hugging_face_reader_gives_image_and_mask_columns(workspace):
    from imageshelf.read.hf import iterable_dataset

    files = voc()
    put(INCOMING, files)
    for name in ("ingest", "pack"):
        assert stage(name).exit_code == 0
    columns = ["key", "image", "paired.mask", "split"]
    rows = list(iterable_dataset("data/images.lmdb", where="split=train", columns=columns))
    assert [row["key"] for row in rows] == [
        "VOC2012/JPEGImages/2007_000000.jpg",
        "VOC2012/JPEGImages/2007_000001.jpg",
    ]
    for row in rows:
        mask = row["key"].replace("JPEGImages", "SegmentationClass").replace(".jpg", ".png")
        assert (row["image"], row["paired.mask"]) == (files[row["key"]], files[mask])
    last = list(iterable_dataset("data/images.lmdb", where="split=val", columns=columns))[-1]
    assert last["paired.mask"] is None  # an image without a mask


def test_coco_panoptic_pngs_are_paired_with_their_images(workspace):
    """panopticapi's layout: annotations/panoptic_val2017.json names each image's PNG
    of segment ids, in annotations/panoptic_val2017/ (the folder named as the file)."""
    import json

    segments = {f"annotations/panoptic_val2017/{i:012d}.png": mask_png(seed=i) for i in (1, 2)}
    doc = {
        "images": [
            {"id": i, "file_name": f"{i:012d}.jpg", "width": 32, "height": 24} for i in (1, 2)
        ],
        "annotations": [
            {
                "image_id": i,
                "file_name": f"{i:012d}.png",
                "segments_info": [{"id": 7, "category_id": 1}],
            }
            for i in (1, 2)
        ],
        "categories": [{"id": 1, "name": "person", "isthing": 1}],
    }
    files = {f"images/val2017/{i:012d}.jpg": make_image("JPEG", seed=i) for i in (1, 2)}
    put(
        INCOMING / "coco",
        {**files, **segments, "annotations/panoptic_val2017.json": json.dumps(doc)},
    )
    for name in ("ingest", "pack", "validate"):
        assert stage(name).exit_code == 0
    assert (report("ingest")["staged"], report("ingest")["paired"]) == (2, 2)
    store = ImageStore("data/images.lmdb")
    for i in (1, 2):
        key = f"coco/images/val2017/{i:012d}.jpg"
        png = f"annotations/panoptic_val2017/{i:012d}.png"
        assert store.get_paired(key, "panoptic") == segments[png]
        assert store.metadata(key)["panoptic"]["segments_info"][0]["category"] == "person"


def test_a_segmentation_dataset_through_dvc_repro_a_changed_mask_and_diff(repo):
    """As a user would: VOC in, `dvc repro`, commit; one mask redrawn, `dvc repro`,
    commit; `imageshelf diff` shows that image relabeled by its mask, nothing else."""
    import json

    from conftest import command_line, commit, sh

    files = voc()
    put(repo / INCOMING, files)
    sh(repo, "dvc", "repro")
    commit(repo, "VOC segmentation")
    assert json.loads((repo / "reports/validate.json").read_text())["ok"] is True
    changed = "VOC2012/SegmentationClass/2007_000002.png"
    put(repo / INCOMING, {changed: mask_png(seed=6)})
    sh(repo, "dvc", "repro")
    commit(repo, "one mask redrawn")
    diff = json.loads(sh(repo, *command_line("diff", "HEAD~1", "HEAD", "--json")).stdout)
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 0, "relabeled": 1}
    (entry,) = diff["relabeled"]
    assert entry["key"] == "VOC2012/JPEGImages/2007_000002.jpg"
    old, new = entry["fields"]["paired.mask"]
    assert old != new and list(entry["fields"]) == ["paired.mask"]
    with ImageStore(repo / "data/images.lmdb") as store:
        assert new == store.record(entry["key"]).paired["mask"].info.sha256
        assert store.get_paired(entry["key"], "mask") == (repo / INCOMING / changed).read_bytes()


def test_cityscapes_masks_and_polygons_arrive_with_their_image(workspace):
    """torchvision's Cityscapes layout: leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png with
    gtFine/SPLIT/CITY/NAME_gtFine_{labelIds,instanceIds,color}.png and
    NAME_gtFine_polygons.json (torchvision gives the JSON as is for "polygon")."""
    import json

    name = "aachen_000000_000019"
    polygons = {
        "imgHeight": 24,
        "imgWidth": 32,
        "objects": [
            {"label": "road", "polygon": [[0, 12], [31, 12], [31, 23], [0, 23]]},
            {"label": "car", "polygon": [[4, 5], [10, 5], [10, 9]], "id": 3},
        ],
    }
    files = {
        f"leftImg8bit/train/aachen/{name}_leftImg8bit.png": make_image("PNG", seed=1),
        f"gtFine/train/aachen/{name}_gtFine_labelIds.png": mask_png(seed=1),
        f"gtFine/train/aachen/{name}_gtFine_instanceIds.png": mask_png(seed=2),
        f"gtFine/train/aachen/{name}_gtFine_color.png": make_image("PNG", seed=3),
        f"gtFine/train/aachen/{name}_gtFine_polygons.json": json.dumps(polygons),
    }
    put(INCOMING / "cityscapes", files)
    for stage_name in ("ingest", "pack", "validate"):
        assert stage(stage_name).exit_code == 0
    ingest = report("ingest")
    assert (ingest["staged"], ingest["paired"], ingest["unused_metadata"]) == (1, 3, [])
    store = ImageStore("data/images.lmdb")
    key = f"cityscapes/leftImg8bit/train/aachen/{name}_leftImg8bit.png"
    for role, what in (("mask", "labelIds"), ("instances", "instanceIds"), ("color", "color")):
        assert store.get_paired(key, role) == files[f"gtFine/train/aachen/{name}_gtFine_{what}.png"]
    meta = store.metadata(key)
    assert meta["cityscapes"] == {"imgHeight": 24, "imgWidth": 32}
    road, car = meta["objects"]
    assert road == {
        "category": "road",
        "segmentation": [[0, 12, 31, 12, 31, 23, 0, 23]],
        "bbox": [0, 12, 31, 11],
    }
    assert car["category"] == "car" and car["id"] == 3 and car["bbox"] == [4, 5, 6, 4]
