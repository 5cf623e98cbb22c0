"""Paired images in `imageshelf view`, as a user sees them in a real Chromium: a mask
drawn over its image in its class colours (a palette mask in its palette's, class ids
through the colour map, an RGB mask as it is), a legend of the classes by name, the mask
downloadable byte for byte, a marker in the gallery, and a changed mask on the diff page,
old and new over the image."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw
from test_viewer import HOSTILE, browser, get, page, serving  # noqa: F401 (fixtures)

from imageshelf.images.recognise import NotAnImageError, describe
from imageshelf.store import ImageInfo
from imageshelf.store.values import Paired
from imageshelf.store.writer import Item, rebuild
from imageshelf.viewer.masks import colour_of

from conftest import commit, put, sh

# VOC's palette for the classes these tests draw: 0 background, 15 person, 255 void.
VOC_PALETTE = {0: (0, 0, 0), 15: (192, 128, 128), 255: (224, 224, 192)}
SKY, GRASS = (150, 200, 240), (90, 170, 80)


def picture(size: tuple[int, int] = (200, 100), fmt: str = "PNG") -> bytes:
    """A plain scene: sky over grass (known colours, to check what shows through)."""
    image = Image.new("RGB", size, SKY)
    ImageDraw.Draw(image).rectangle((0, size[1] * 3 // 5, size[0], size[1]), fill=GRASS)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def voc_mask(size=(200, 100), person=(60, 20, 110, 90)) -> bytes:
    """A palette PNG as VOC's SegmentationClass: a person (15) with a void (255) edge."""
    mask = Image.new("P", size, 0)
    palette = [0] * 768
    for index, rgb in VOC_PALETTE.items():
        palette[3 * index : 3 * index + 3] = rgb
    mask.putpalette(palette)
    draw = ImageDraw.Draw(mask)
    draw.rectangle(person, fill=255)
    x0, y0, x1, y1 = person
    draw.rectangle((x0 + 3, y0 + 3, x1 - 3, y1 - 3), fill=15)
    return encoded(mask)


def encoded(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def paired_store(path: Path, entries: dict[str, tuple[bytes, dict, dict[str, tuple[str, bytes]]]]):
    """A store of images each with its metadata and {role: (file, bytes)} paired."""
    items = []
    for key, (data, metadata, roles) in sorted(entries.items()):
        record = describe(key, data, metadata)
        paired = {role: Paired(file, info_of(blob)) for role, (file, blob) in roles.items()}
        blobs = {role: blob for role, (_, blob) in roles.items()}
        items.append(
            Item(record.replace(paired=paired), lambda d=data: d, read_paired=blobs.__getitem__)
        )
    rebuild(path, items)
    return path


def info_of(blob: bytes) -> ImageInfo:
    """What ingest would record of a paired image; for one it would refuse (a store
    from elsewhere can hold anything), its hash and size."""
    try:
        return describe("x", blob, {}).info
    except NotAnImageError:
        return ImageInfo(hashlib.sha256(blob).hexdigest(), len(blob), "png", 1, 1)


def declared(width: int, height: int) -> bytes:
    """A small PNG whose header declares `width` x `height` pixels."""
    data = bytearray(encoded(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def shot(locator) -> Image.Image:
    return Image.open(io.BytesIO(locator.screenshot())).convert("RGB")


def at(image: Image.Image, x: float, y: float, width: int = 200) -> tuple[int, int, int]:
    """The screenshot's pixel at the image's own coordinates (x, y)."""
    scale = image.width / width
    return image.getpixel((round(x * scale), round(y * scale)))


def close(found, want, within: int = 6) -> bool:
    return max(abs(a - b) for a, b in zip(found, want, strict=True)) <= within


def blend(top, under, opacity: float) -> tuple[int, ...]:
    return tuple(round(opacity * a + (1 - opacity) * b) for a, b in zip(top, under, strict=True))


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("IMAGESHELF_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_palette_mask_is_drawn_over_its_image_in_its_own_colours(page, tmp_path):  # noqa: F811
    names = {"0": "background", "15": "person", "255": "void"}
    store = paired_store(
        tmp_path / "s.lmdb",
        {
            "street/a.png": (
                picture(),
                {"mask_classes": names},
                {"mask": ("masks/a.png", voc_mask())},
            ),
            "street/b.png": (picture(), {}, {}),
        },
    )
    shots = shots_folder(tmp_path)
    with serving(store, tmp_path / "thumbs") as url:
        page.goto(url)
        marks = page.locator("#grid .tile .paired-mark")  # the gallery says which has a mask
        assert marks.count() == 1 and marks.inner_text() == "mask"
        assert page.locator("#grid .tile").nth(0).locator(".paired-mark").count() == 1
        page.locator("#grid .tile a").nth(0).click()
        assert page.inner_text("#key") == "street/a.png"
        overlay = page.locator("svg.figure image.overlay")
        assert overlay.count() == 1 and overlay.get_attribute("visibility") is None
        legend = page.locator("#masks .mask[data-role='mask'] .classes li")
        assert legend.locator(".name").all_inner_texts() == ["background", "person", "void"]
        assert legend.locator(".value").all_inner_texts() == ["0", "15", "255"]
        swatches = legend.locator("rect").evaluate_all("rs => rs.map(r => r.getAttribute('fill'))")
        assert swatches == ["#000000", "#c08080", "#e0e0c0"]  # the palette's own colours
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "mask.png", full_page=True)
        figure = page.locator("svg.figure")
        default = shot(figure)  # drawn at 0.6: the image shows through
        assert close(at(default, 85, 50), blend(VOC_PALETTE[15], SKY, 0.6))
        assert close(at(default, 85, 80), blend(VOC_PALETTE[15], GRASS, 0.6))
        assert close(at(default, 30, 30), SKY) and close(at(default, 150, 80), GRASS)  # 0: clear

        page.locator(".overlay-opacity").press("End")  # the slider to 1: the mask's colours
        assert overlay.get_attribute("opacity") == "1"
        solid = shot(figure)
        assert close(at(solid, 85, 50), VOC_PALETTE[15]) and close(
            at(solid, 85, 85), VOC_PALETTE[15]
        )
        assert close(at(solid, 61, 50), VOC_PALETTE[255])  # the void edge
        assert close(at(solid, 30, 30), SKY) and close(at(solid, 57, 50), SKY)  # outside it

        page.uncheck(".overlay-toggle")  # hidden: the image alone
        assert close(at(shot(figure), 85, 50), SKY)
        page.check(".overlay-toggle")
        assert close(at(shot(figure), 85, 50), VOC_PALETTE[15])


def test_class_ids_through_the_colour_map_and_rgb_masks_as_they_are(page, tmp_path):  # noqa: F811
    ids = Image.new("L", (200, 100), 0)  # ADE20K-style: 3 floor, 12 person
    ImageDraw.Draw(ids).rectangle((0, 70, 199, 99), fill=3)
    ImageDraw.Draw(ids).rectangle((100, 10, 140, 69), fill=12)
    instances = Image.new("I", (100, 50), 0)  # Cityscapes' instance ids, half the size
    instances.paste(26001, (10, 5, 40, 45))
    instances.paste(26002, (50, 5, 90, 45))
    instances = instances.convert("I;16")  # a 16-bit PNG, as Cityscapes ships them
    camvid = Image.new("RGB", (200, 100), (0, 0, 0))  # CamVid: Void black, Sky, Road
    ImageDraw.Draw(camvid).rectangle((0, 0, 199, 30), fill=(128, 128, 128))
    ImageDraw.Draw(camvid).rectangle((0, 80, 199, 99), fill=(128, 64, 128))
    roles = {
        "mask": ("ann/a.png", encoded(ids)),
        "instances": ("ann/a_instanceIds.png", encoded(instances)),
        "color": ("ann/a_color.png", encoded(camvid)),
    }
    named = {"mask_classes": {"3": "floor", "99": "not in this mask"}}  # 12: no name
    store = paired_store(tmp_path / "s.lmdb", {"a.png": (picture(), named, roles)})
    with serving(store, tmp_path / "thumbs") as url:
        page.goto(url + "image/a.png")
        masks = page.locator("#masks .mask")
        assert masks.evaluate_all("ms => ms.map(m => m.dataset.role)") == [
            "color",
            "instances",
            "mask",
        ]
        mask = page.locator("#masks .mask[data-role='mask']")
        lines = [" ".join(t.split()) for t in mask.locator(".classes li").all_text_contents()]
        assert lines == ["0 (clear)", "floor 3", "12"]
        assert mask.locator(".classes .name").all_inner_texts() == ["floor"]
        instances_legend = page.locator("#masks .mask[data-role='instances'] .classes .value")
        assert instances_legend.all_inner_texts() == ["0", "26001", "26002"]
        assert "stretched" in page.inner_text("#masks .mask[data-role='instances']")
        color = page.locator("#masks .mask[data-role='color'] .classes .value")
        assert color.all_inner_texts() == ["#000000", "#804080", "#808080"]
        # Only the mask is drawn when the page opens; each other role has its toggle.
        hidden = page.locator("svg.figure image.overlay").evaluate_all(
            "os => os.map(o => [o.dataset.role, o.getAttribute('visibility')])"
        )
        assert hidden == [["color", "hidden"], ["instances", "hidden"], ["mask", None]]
        figure = page.locator("svg.figure")
        page.locator("#masks .mask[data-role='mask'] .overlay-opacity").press("End")
        page.wait_for_load_state("networkidle")
        solid = shot(figure)
        assert close(at(solid, 50, 85), colour_of(3)) and close(at(solid, 120, 40), colour_of(12))
        assert close(at(solid, 50, 30), SKY)  # id 0: clear
        for role in ("mask", "instances", "color"):
            toggle = page.locator(f"#masks .mask[data-role='{role}'] .overlay-toggle")
            toggle.set_checked(role != "mask")
            page.locator(f"#masks .mask[data-role='{role}'] .overlay-opacity").press("End")
        page.wait_for_load_state("networkidle")
        both = shot(figure)  # instances over color, in role order: as they are listed
        assert close(at(both, 50, 40), colour_of(26001)) and close(
            at(both, 150, 40), colour_of(26002)
        )
        assert close(at(both, 95, 10), (128, 128, 128))  # CamVid's Sky, as it is
        assert close(at(both, 95, 95), (128, 64, 128))  # and its Road
        assert close(at(both, 95, 50), SKY)  # black (Void) and id 0: clear
        status, headers, body = get(url + "overlay/a.png?role=instances")
        drawn = Image.open(io.BytesIO(body))
        assert drawn.size == (100, 50)  # at its own size, stretched by the page
        assert drawn.getpixel((20, 20)) == (*colour_of(26001), 255)  # 16-bit ids kept
        assert drawn.getpixel((5, 5))[3] == 0


def test_the_paired_image_downloads_as_it_is_and_a_bad_one_is_said(tmp_path):
    mask = voc_mask()
    bomb = b"\xff\xd8\xff\xe0" + b"\xff\xda\x00\x02" * 200 + b"\xff\xd9"  # 200 scans
    store = paired_store(
        tmp_path / "s.lmdb",
        {
            "a.png": (picture(), {}, {"mask": ("VOC/SegmentationClass/猫 a.png", mask)}),
            "b.png": (
                picture(),
                {},
                {"mask": ("m/b.jpg", bomb), "big": ("m/big.png", declared(12_000, 8_000))},
            ),
        },
    )
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with serving(store, tmp_path / "thumbs") as url:
        status, headers, body = get(url + "paired/a.png?role=mask")
        assert (status, headers["Content-Type"], body) == (200, "image/png", mask)
        assert "attachment" in headers["Content-Disposition"]
        assert "filename*=UTF-8''%E7%8C%AB%20a.png" in headers["Content-Disposition"]
        page_html = get(url + "image/a.png")[2].decode()
        assert 'href="/paired/a.png?role=mask"' in page_html
        assert get(url + "paired/a.png?role=instances")[0] == 404
        assert get(url + "paired/a.png")[0] == 400
        assert get(url + "overlay/a.png?role=nope")[0] == 404
        assert get(url + "paired/b.png?role=mask")[2] == bomb  # stored bytes, whatever they are
        page_html = get(url + "image/b.png")[2].decode()
        assert "Not drawn: JPEG with 200 scans" in page_html
        assert "Not drawn: 12000x8000 pixels, over 89478485" in page_html
        assert 'class="overlay"' not in page_html  # nothing laid over the image
        status, headers, _ = get(url + "overlay/b.png?role=mask")
        assert headers["Content-Type"].startswith("image/svg+xml")  # the "?" tile
        assert "200 scans" in headers["X-Imageshelf-Problem"]
        assert get(url + "overlay/a.png?role=mask")[1]["Content-Type"] == "image/png"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    cached = sorted(p.parent.parent.name for p in (tmp_path / "thumbs").rglob("*.png"))
    assert cached == ["overlay1-4096"]  # one overlay, in the cache, by its hash


def test_an_image_with_many_paired_images_has_the_first_sixteen_drawn(tmp_path):
    roles = {f"view{i:02d}": (f"m/{i}.png", voc_mask(person=(i, 20, 110, 90))) for i in range(40)}
    store = paired_store(tmp_path / "s.lmdb", {"a.png": (picture(), {}, roles)})
    with serving(store, tmp_path / "thumbs") as url:
        body = get(url + "image/a.png")[2].decode()
        assert body.count('class="overlay"') == 16
        assert body.count("only the first 16 paired images of an image are drawn") == 24
        assert body.count('href="/paired/a.png?role=view') == 40  # each downloads
    assert len(list((tmp_path / "thumbs").rglob("*.png"))) == 16


def test_a_cache_entry_that_is_not_an_overlay_is_made_again_never_followed(tmp_path):
    store = paired_store(
        tmp_path / "s.lmdb", {"a.png": (picture(), {}, {"mask": ("m/a.png", voc_mask())})}
    )
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\nnot ours")
    with serving(store, tmp_path / "thumbs") as url:
        good = get(url + "overlay/a.png?role=mask")[2]
        (entry,) = (tmp_path / "thumbs").rglob("*.png")
        entry.unlink()
        entry.symlink_to(outside)  # a link: never followed, renamed over
        assert get(url + "overlay/a.png?role=mask")[2] == good
        assert not entry.is_symlink() and outside.read_bytes() == b"\x89PNG\r\n\x1a\nnot ours"
        entry.write_bytes(good[: len(good) // 2])  # cut short: made again
        assert get(url + "overlay/a.png?role=mask")[2] == good
        entry.unlink()
        os.mkfifo(entry)  # a FIFO: not waited on
        assert get(url + "overlay/a.png?role=mask")[2] == good


def test_class_names_and_roles_that_are_markup_stay_text(page, tmp_path):  # noqa: F811
    role = '"><img src=x onerror=alert(1)>'  # a role holds no "/"
    names = {"15": HOSTILE, "255": "<b>void</b>"}
    store = paired_store(
        tmp_path / "s.lmdb",
        {
            "a.png": (
                picture(),
                {"mask_classes": names},
                {"mask": ("m/a.png", voc_mask()), role: ("m/x.png", voc_mask())},
            )
        },
    )
    with serving(store, tmp_path / "thumbs") as url:
        page.goto(url + "image/a.png")
        legend = page.locator("#masks .mask[data-role='mask'] .classes .name")
        assert legend.all_inner_texts() == [HOSTILE, "<b>void</b>"]
        assert page.locator("#masks b, #masks img, .facts img").count() == 0
        assert role in page.inner_text("#masks")
        page.locator("#masks .mask").nth(0).locator(".overlay-toggle").check()
        hrefs = page.locator("svg.figure image.overlay").evaluate_all(
            "os => os.map(o => o.getAttribute('href'))"
        )
        assert any("role=%22%3E%3Cimg" in h for h in hrefs)
        page.wait_for_load_state("networkidle")
        status, _, body = get(
            url + "paired/a.png?role=" + "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
        )
        assert status == 200 and body == voc_mask()
    assert page.alerts == []


def test_the_diff_shows_a_changed_mask_old_and_new_over_the_image(page, repo, monkeypatch):  # noqa: F811
    """Pascal VOC through `dvc repro`, committed; one mask redrawn (the person moved),
    committed again: the diff page shows that image relabeled, its old and new masks
    each over the image, side by side."""
    incoming = repo / "data" / "incoming" / "VOC2012"
    files = {"ImageSets/Segmentation/train.txt": "2007_000000\n2007_000001\n"}
    for i in range(2):
        files[f"JPEGImages/2007_00000{i}.jpg"] = picture((160, 80), "JPEG")
        files[f"SegmentationClass/2007_00000{i}.png"] = voc_mask(
            (160, 80), (20 + 40 * i, 10, 60 + 40 * i, 75)
        )
    put(incoming, files)
    sh(repo, "dvc", "repro")
    commit(repo, "VOC")
    put(incoming, {"SegmentationClass/2007_000001.png": voc_mask((160, 80), (100, 10, 140, 75))})
    sh(repo, "dvc", "repro")
    commit(repo, "the person in 2007_000001 moved")
    monkeypatch.chdir(repo)
    key = "VOC2012/JPEGImages/2007_000001.jpg"
    shots = shots_folder(repo.parent)
    with serving(Path("data/images.lmdb"), repo.parent / "thumbs", diff=("HEAD~1", "HEAD")) as url:
        page.goto(url + "diff")
        assert page.inner_text("#summary") == "1 relabeled, 0 changed, 0 added, 0 removed"
        pair = page.locator(f".pair[data-key='{key}']")
        fields = pair.locator(".fields th").all_inner_texts()
        assert "paired.mask" in fields
        old, new = pair.locator(".old image.overlay"), pair.locator(".new image.overlay")
        assert "v=HEAD~1" in old.get_attribute("href") and "v=HEAD" in new.get_attribute("href")
        assert pair.locator(".old .paired-role").inner_text() == "mask"
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "diff-mask.png", full_page=True)
        before, after = shot(pair.locator(".old svg.figure")), shot(pair.locator(".new svg.figure"))
    person, sky = blend(VOC_PALETTE[15], SKY, 0.6), SKY
    # The person stood at x 60..100 before, at 100..140 now (the image is 160 wide).
    assert close(at(before, 80, 30, 160), person, 12) and close(at(after, 80, 30, 160), sky, 12)
    assert close(at(before, 120, 30, 160), sky, 12) and close(at(after, 120, 30, 160), person, 12)
