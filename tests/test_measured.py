"""What an image's pixels measure (images/properties.py) reaches its record once: ingest
measures each new or changed image as it probes it, pack keeps the values in the record
(`props`), and a store packed before properties gets them on its next run, once, without
a change `diff` would show."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image

from imageshelf.images.properties import PROPS_VERSION
from imageshelf.store.writer import Item, rebuild
from imageshelf.versions.catalog import diff_catalogs

from conftest import ingest_and_pack, make_image, md5, put, report, stage

INCOMING = Path("data/incoming")
STORE = Path("data/images.lmdb")


def scene(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small picture with something in it (a measured image: not a tiny one)."""
    image = make_image("PNG", (size[0] // 8, size[1] // 8), seed=seed)
    big = Image.open(io.BytesIO(image)).resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    big.save(out, "PNG")
    return out.getvalue()


def mask_png() -> bytes:
    out = io.BytesIO()
    Image.new("P", (96, 72), 0).save(out, "PNG")
    return out.getvalue()


def test_every_stored_image_carries_what_its_pixels_measure_and_its_bytes_stay(workspace):
    images = {f"cats/{i}.png": scene(i) for i in range(3)}
    images["VOC/JPEGImages/a.png"] = scene(9)
    put(INCOMING, {**images, "VOC/SegmentationClass/a.png": mask_png()})
    store = ingest_and_pack()
    for key, data in images.items():
        record = store.record(key)
        assert store.get(key) == data  # never re-encoded
        props = record.props
        assert props is not None and props["v"] == PROPS_VERSION, key
        assert len(props["phash"]) == 16 and int(props["phash"], 16) >= 0
        assert 0 <= props["p05"] <= props["mean"] <= props["p99"] <= 1
    # The mask is measured by nobody: it is not an image to train on by itself.
    assert "props" not in store.record("VOC/JPEGImages/a.png").paired["mask"].to_json()


def test_a_store_packed_before_properties_gets_them_once_and_diff_sees_no_change(workspace):
    (workspace / ".dvc").mkdir()  # ingest's cache: what it learned of each file
    images = {f"{i}.png": scene(i) for i in range(5)}
    put(INCOMING, images)
    store = ingest_and_pack()
    # As a version before properties packed it: the same records, no `props`.
    older = [record.replace(props=None) for record in store.records()]
    items = [Item(r, lambda key=r.key: images[key]) for r in older]
    store.close()
    rebuild(STORE.with_suffix(".old"), lambda: iter(items))
    shutil.move(STORE.with_suffix(".old"), STORE)
    shutil.rmtree(workspace / ".dvc" / "tmp")  # nor its cache

    store = ingest_and_pack()
    assert report("pack")["measured"] == 5
    assert report("pack")["relabeled"] == 0 and report("pack")["added"] == 0
    assert all(record.props is not None for record in store.records())
    change = diff_catalogs(older, store.records())
    assert (change.added, change.removed, change.relabeled) == ([], [], [])
    measured = md5(STORE)
    store.close()

    ingest_and_pack().close()  # nothing new: the store stays as it is
    assert md5(STORE) == measured


def test_an_added_image_is_the_only_one_measured(workspace):
    (workspace / ".dvc").mkdir()
    put(INCOMING, {f"{i}.png": scene(i) for i in range(6)})
    first = {r.key: r.props for r in ingest_and_pack().records()}
    put(INCOMING, {"new.png": scene(60)})
    store = ingest_and_pack()
    assert report("ingest")["staged"] == 1
    assert report("pack")["measured"] == 0 and report("pack")["added"] == 1
    assert {r.key: r.props for r in store.records() if r.key != "new.png"} == first
    assert store.record("new.png").props is not None


def test_ls_selects_images_by_what_their_pixels_measure(workspace):
    dark = Image.open(io.BytesIO(scene(1))).point(lambda v: v // 6)
    out = io.BytesIO()
    dark.save(out, "PNG")
    put(INCOMING, {"dark.png": out.getvalue(), "bright.png": scene(2)})
    ingest_and_pack().close()
    result = stage("ls", "--where", "props.p99<0.3")
    assert result.exit_code == 0, result.output
    listed = [line.split("\t")[-1] for line in result.stdout.splitlines()]
    assert listed == ["dark.png"]


def test_a_store_packed_before_properties_whose_files_are_gone_is_measured_by_pack(workspace):
    """The originals left data/incoming/ long ago: pack measures the stored bytes, once;
    its state says so, and the next runs leave the store as it is."""
    (workspace / ".dvc").mkdir()
    images = {f"{i}.png": scene(i) for i in range(5)}
    put(INCOMING, images)
    store = ingest_and_pack()
    measured = {r.key: r.props for r in store.records()}
    older = [record.replace(props=None) for record in store.records()]
    items = [Item(r, lambda key=r.key: images[key]) for r in older]
    store.close()
    rebuild(STORE.with_suffix(".old"), lambda: iter(items))
    shutil.move(STORE.with_suffix(".old"), STORE)
    Path("data/pack-state.json").unlink()  # written by a version before properties
    shutil.rmtree(INCOMING)
    INCOMING.mkdir()

    store = ingest_and_pack()
    assert report("pack")["measured"] == 5 and report("pack")["relabeled"] == 0
    assert {r.key: r.props for r in store.records()} == measured  # as ingest measured them
    assert [store.get(key) for key in images] == list(images.values())
    done = md5(STORE)
    store.close()
    ingest_and_pack().close()
    assert md5(STORE) == done and report("pack")["measured"] == 0


def test_ingest_measure_false_builds_without_measuring_and_true_measures_once(workspace):
    """`ingest.measure: false`: a faster first build, no props (the audit counts the
    images as not measured); set back to true, the next run measures them, once."""
    (workspace / ".dvc").mkdir()
    params = workspace / "params.yaml"
    params.write_text(params.read_text().replace("measure: true", "measure: false"))
    put(INCOMING, {f"{i}.png": scene(i) for i in range(4)})
    store = ingest_and_pack()
    assert all(record.props is None for record in store.records())
    store.close()
    assert stage("stats").exit_code == 0
    assert report("stats")["quality"]["total"]["no_properties"] == 4

    params.write_text(params.read_text().replace("measure: false", "measure: true"))
    store = ingest_and_pack()
    assert all(record.props is not None for record in store.records())
    assert report("pack")["measured"] == 4 and report("pack")["relabeled"] == 0
