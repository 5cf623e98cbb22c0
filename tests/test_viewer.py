"""`imageshelf view`, tested as a user sees it: in a real browser (Debian's Chromium,
driven by Playwright), over real stores and a real git + DVC repository."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from imageshelf.demo.samples import write_samples
from imageshelf.store import ImageInfo, ImageStore, Record
from imageshelf.store.writer import Item, rebuild, write_sharded
from imageshelf.viewer import gallery
from imageshelf.viewer.serve import start

from conftest import build_store, command_line, commit, items_for, make_image, sh

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOSTILE = "</script><script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's (`apt-get install -y chromium`, "
            "which `make test` runs as root), or set CHROMIUM to one"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    alerts: list[str] = []
    opened.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    opened.alerts = alerts
    yield opened
    context.close()


@contextmanager
def serving(store: Path, thumbs: Path, rev=None, diff=None) -> Iterator[str]:
    """The viewer, in this process, on a free loopback port: its address."""
    server, versions, address = start(store, rev, diff, "127.0.0.1", 0, thumbs, lambda _: None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address.removesuffix("diff")
    finally:
        server.shutdown()
        server.server_close()
        versions.close()


def png(size: tuple[int, int], colour=(255, 255, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def pets(tmp_path) -> Path:
    """70 images: 40 cats, 29 dogs, and one whose label is markup."""
    images = {f"pets/{i:03d}.png": make_image("PNG", (40, 30), seed=i) for i in range(70)}
    metadata = {key: {"label": "cat" if i < 40 else "dog"} for i, key in enumerate(images)}
    metadata["pets/069.png"] = {"label": HOSTILE, "text": "<b>bold?</b>"}
    return build_store(tmp_path / "pets.lmdb", images, metadata)


def captions(page) -> list[str]:
    return page.locator("#grid .caption .label").all_inner_texts()


def test_gallery_pages_filters_counts_and_opens_an_image(page, pets, tmp_path):
    with serving(pets, tmp_path / "thumbs") as url:
        page.goto(url)
        assert page.locator("#grid .tile").count() == gallery.PAGE
        counts = page.locator("#counts").inner_text()
        assert re.search(r"cat\s+40", counts) and re.search(r"dog\s+29", counts)
        # every thumbnail arrives as a picture (loaded as it scrolls into view), and is
        # cached by the hash of its bytes
        for tile in page.locator("#grid img").all():
            tile.scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle")
        widths = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths)
        assert len(list((tmp_path / "thumbs").rglob("*.webp"))) == gallery.PAGE

        page.click("#next-page")
        assert page.locator("#grid .tile").count() == 10  # 70 = 60 + 10, none repeated

        page.fill("#where", "label=dog")
        with page.expect_navigation():  # the first filter also starts DuckDB: not instant
            page.click("button:text('Show')")
        assert set(captions(page)) == {"dog"} and len(captions(page)) == 29

        page.fill("#where", "nosuch=1")  # a mistake is said beside the box, to fix there
        with page.expect_navigation():
            page.click("button:text('Show')")
        assert "no image has a field 'nosuch'" in page.inner_text("#error")
        assert page.input_value("#where") == "nosuch=1"

        page.click("#counts a:text('cat')")  # a count is a filter
        assert set(captions(page)) == {"cat"} and len(captions(page)) == 40

        page.locator("#grid .tile a").nth(2).click()
        assert page.inner_text("#key") == "pets/002.png"
        page.click("#following")  # next within the filter
        assert page.inner_text("#key") == "pets/003.png"
        page.click("#previous")
        assert page.inner_text("#key") == "pets/002.png"


def test_a_box_is_drawn_where_its_bbox_says(page, tmp_path):
    objects = [
        {"bbox": [50, 20, 80, 40], "category": "thing"},
        {"segmentation": [[150, 10, 190, 10, 170, 50]], "category": "zone"},  # COCO polygon
        {"keypoints": [160, 80, 2, 170, 85, 1, 180, 90, 0], "category": "pose"},  # v=0: hidden
        {"segmentation": {"size": [100, 200], "counts": "abc"}, "category": "mask"},  # RLE
    ]
    store = build_store(
        tmp_path / "box.lmdb", {"white.png": png((200, 100))}, {"white.png": {"objects": objects}}
    )
    with serving(store, tmp_path / "thumbs") as url:
        page.goto(url + "image/white.png")
        assert page.locator("#legend li").all_inner_texts() == ["thing", "zone", "pose"]
        assert page.get_attribute("svg.figure polygon", "points") == "150,10 190,10 170,50"
        assert page.locator("svg.figure circle").count() == 2
        assert "1 annotation(s) not drawn" in page.inner_text(".picture")
        stroke = page.get_attribute("svg.figure rect", "stroke")
        figure = page.locator("svg.figure")
        shot = Image.open(io.BytesIO(figure.screenshot())).convert("RGB")
    scale = shot.width / 200
    want = tuple(int(stroke[i : i + 2], 16) for i in (1, 3, 5))

    def near(x: float, y: float) -> bool:  # the stroke's colour within 2 pixels
        return any(
            max(abs(a - b) for a, b in zip(shot.getpixel((px, py)), want, strict=True)) < 40
            for px in range(round(x * scale) - 2, round(x * scale) + 3)
            for py in range(round(y * scale) - 2, round(y * scale) + 3)
        )

    assert near(50, 40) and near(130, 40)  # left and right edges, halfway down
    assert near(90, 20) and near(90, 60)  # top and bottom edges
    assert not near(90, 40) and not near(20, 80)  # inside the box, and outside it: white
    assert shot.getpixel((round(90 * scale), round(40 * scale))) == (255, 255, 255)


def test_a_label_that_is_markup_stays_text(page, pets, tmp_path):
    with serving(pets, tmp_path / "thumbs") as url:
        page.goto(url + "?where=label!=cat&where=label!=dog")
        assert captions(page) == [HOSTILE]
        page.locator("#grid .tile a").first.click()
        assert HOSTILE in page.inner_text("#metadata")
        assert "<b>bold?</b>" in page.inner_text("#metadata")
        assert page.locator("#metadata b").count() == 0  # shown, not made bold
        page.goto(url)
        assert HOSTILE in page.inner_text("#counts")
    assert page.alerts == []  # no script from the store ran


def test_a_diff_of_two_commits_shows_the_relabeled_image_with_both_labels(page, repo, monkeypatch):
    write_samples(repo / "data" / "incoming" / "samples")
    sh(repo, "dvc", "repro")
    commit(repo, "the samples")
    fixed = "samples/shapes/circle/circle_00.png"
    (repo / "data" / "annotations" / "fixes.csv").write_text(f"path,label\n{fixed},square\n")
    sh(repo, "dvc", "repro")
    commit(repo, "a label fixed")
    monkeypatch.chdir(repo)
    shots = Path(os.environ.get("IMAGESHELF_SCREENSHOTS") or repo.parent / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with serving(Path("data/images.lmdb"), repo.parent / "thumbs", diff=("HEAD~1", "HEAD")) as url:
        page.goto(url + "diff")
        assert page.inner_text("#summary") == "1 relabeled, 0 changed, 0 added, 0 removed"
        pair = page.locator(f".pair[data-key='{fixed}']")
        assert pair.locator(".old .label").inner_text() == "circle"
        assert pair.locator(".new .label").inner_text() == "square"
        assert pair.locator(".old rect").count() == 1 and pair.locator(".new rect").count() == 1
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "diff.png")
        page.goto(url + "?v=HEAD")
        assert page.locator("#grid .tile").count() == 32
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots / "gallery.png")
        page.goto(url + "diff?a=HEAD~1&b=no-such-rev")  # from the page's Compare form
        assert "no-such-rev" in page.inner_text("#error")
    assert Image.open(shots / "gallery.png").size == (1200, 800)

    # A revision whose store is in no cache here is fetched from the remote.
    sh(repo, "dvc", "push")
    shutil.rmtree(repo / ".dvc" / "cache")
    with serving(Path("data/images.lmdb"), repo.parent / "thumbs", rev="HEAD") as url:
        page.goto(url + "image/" + fixed)
        assert "square" in page.inner_text("#metadata")

    # What was fetched is deleted when the viewer stops, by Ctrl+C or by `kill` (SIGTERM).
    scratch = repo.parent / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "XDG_CACHE_HOME": str(repo.parent / "cache")}
    args = command_line("view", "--store", "data/images.lmdb", "--rev", "HEAD")
    with _viewer(args, env) as proc:
        assert "serving at" in proc.stdout.readline()
        assert [p.name[:16] for p in scratch.iterdir()] == ["imageshelf-view-"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert list(scratch.iterdir()) == []


def get(url: str, method: str = "GET", host: str | None = None):
    request = urllib.request.Request(url, method=method)
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_keys_are_never_paths_and_nothing_can_be_changed(tmp_path):
    tiff = make_image("TIFF", (30, 20), seed=1)
    bomb = b"\xff\xd8\xff\xe0" + b"\xff\xda\x00\x02" * 200 + b"\xff\xd9"  # 200 scans
    store = build_store(tmp_path / "s.lmdb", {"a.tif": tiff, "b.png": png((8, 8))})
    info = ImageInfo(hashlib.sha256(bomb).hexdigest(), len(bomb), "jpeg", 10, 10)
    rebuild(store, [Item(Record("bomb.jpg", info), lambda: bomb)])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with serving(store, tmp_path / "thumbs") as url:
        assert get(url + "image/nope.png")[0] == 404
        assert get(url + "original/..%2F..%2Fetc%2Fpasswd")[0] == 404
        assert get(url + "original/" + str(tmp_path / "s.lmdb"))[0] == 404
        assert get(url + "image/b.png", method="POST")[0] == 405
        assert get(url, host="attacker.example:80")[0] == 400  # DNS rebinding
        status, headers, body = get(url + "original/b.png")
        assert status == 200 and headers["Content-Type"] == "image/png" and body == png((8, 8))
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        status, headers, body = get(url + "original/a.tif")  # the stored bytes, to save
        assert body == tiff and "attachment" in headers["Content-Disposition"]
        status, headers, body = get(url + "rendering/a.tif")
        assert headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(body)).size == (
            30,
            20,
        )
        status, headers, body = get(url + "thumb/bomb.jpg")  # a "?" tile, at once
        assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
        assert "200 scans" in headers["X-Imageshelf-Problem"]
        assert get(url + "?sort=size&after=not-json")[0] == 400
        assert b"no image has a field" in get(url + "?where=nosuch=1")[2]
        get(url + "thumb/b.png")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert [p.suffix for p in (tmp_path / "thumbs").rglob("*.*")] == [".webp"]  # only there


def interleaved_shards(folder: Path, images, metadata) -> Path:
    """A sharded store written in three batches whose key ranges overlap."""
    keys = sorted(images)
    for batch in range(3):
        chosen = {k: images[k] for k in keys[batch::3]}
        write_sharded(folder, items_for(chosen, metadata), shard_bytes=3_000)
    return folder


@pytest.mark.parametrize("layout", ["single", "sharded"])
@pytest.mark.parametrize("sort", gallery.SORTS)
def test_pages_in_every_order_cover_the_filter_once(tmp_path, sort, layout):
    images = {f"k{i:03d}.png": make_image("PNG", (8 + i % 7, 8), seed=i) for i in range(130)}
    metadata = {k: {"label": ["b", "a", "c"][i % 3]} for i, k in enumerate(images)}
    metadata["k007.png"] = {}  # no label: last in label order
    if layout == "single":
        path = build_store(tmp_path / "s.lmdb", images, metadata)
    else:
        path = interleaved_shards(tmp_path / "shards", images, metadata)
    with ImageStore(path) as store:
        assert layout == "single" or len(store.parts) > 3
        assert store.value_counts("label") == {"a": 42, "b": 44, "c": 43}  # k007: none
        every = [r for r in store.records() if r.metadata.get("label") != "c"]
        expected = [r.key for r in sorted(every, key=lambda r: gallery.sort_value(r, sort))]
        seen, cursor = [], None
        while True:
            found = gallery.page(store, ["label!=c"], sort, cursor, size=25)
            seen += [r.key for r in found.records]
            if found.next is None:
                break
            cursor = found.next
        assert seen == expected
        labelled = [k for k in expected if k != "k007.png"]
        for where, order in ((["label!=c"], expected), (["label=a,b"], labelled)):
            # a scan, and the field index: the image's neighbours in the filter and order
            middle, first, last = (store.record(order[at]) for at in (40, 0, -1))
            assert gallery.neighbours(store, where, sort, middle) == (order[39], order[41])
            assert gallery.neighbours(store, where, sort, first) == (None, order[1])
            assert gallery.neighbours(store, where, sort, last) == (order[-2], None)


def _viewer(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`imageshelf view` started with pipes for its output, and Ctrl+C's signal delivered
    as in a terminal, even where this suite runs in a background job (whose shell starts
    it with SIGINT ignored, which children inherit)."""
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_the_command_serves_on_loopback_and_says_where(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": png((8, 8))})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [*command_line("view", "--store", str(store))]
    with _viewer(args, env) as proc:
        line = proc.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert address, line
        assert get(address.group(0) + "image/a.png")[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stderr.read()

    (tmp_path / "garbage.lmdb").write_bytes(b"not a store" * 1000)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    in_use = str(taken.getsockname()[1])
    for wrong in (
        ["--rev", "no-such-rev"],
        ["--store", "garbage.lmdb"],
        ["--port", "99999"],
        ["--port", in_use],
    ):
        bad = subprocess.run(
            [*command_line("view", "--store", str(store), *wrong)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert bad.returncode in (1, 2), wrong
        assert bad.stderr.strip().splitlines()[-1].startswith("Error: "), bad.stderr
        assert "Traceback" not in bad.stderr
    taken.close()
    assert f"cannot listen on 127.0.0.1:{in_use}" in bad.stderr


def test_listening_beyond_loopback_warns(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": png((8, 8))})
    args = [*command_line("view", "--store", str(store), "--host", "0.0.0.0")]
    with _viewer(args) as proc:
        warning = proc.stderr.readline()
        proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert warning.startswith("warning: listening on 0.0.0.0") and "no login" in warning


def test_any_key_reaches_its_page_and_thumbnail(tmp_path):
    keys = ["odd/a b#1?%.png", "odd/é ✓.png", "odd/<x>.png", "odd/..x/y.png"]
    images = {key: make_image("PNG", (8, 8), seed=i) for i, key in enumerate(keys)}
    with serving(build_store(tmp_path / "s.lmdb", images), tmp_path / "thumbs") as url:
        body = get(url)[2].decode()
        pages = re.findall(r'href="/(image/[^"]+)"', body)
        assert len(pages) == len(keys)
        for link in pages:
            status, _, page = get(url + link.replace("&amp;", "&"))
            assert status == 200
            status, headers, _ = get(url + link.replace("image/", "thumb/", 1))
            assert status == 200 and headers["Content-Type"] == "image/webp"
        assert sorted(
            re.search(r'<h1 id="key">([^<]*)<', get(url + p)[2].decode())[1] for p in pages
        ) == sorted(k.replace("<", "&lt;").replace(">", "&gt;") for k in keys)


def test_a_store_replaced_while_viewing_shows_on_the_next_page(tmp_path):
    store = build_store(tmp_path / "s.lmdb", {"a.png": png((8, 8))})
    with serving(store, tmp_path / "thumbs") as url:
        assert get(url)[2].count(b'class="tile"') == 1
        build_store(store, {"b.png": png((9, 9))})  # as pack does: a new file renamed over it
        body = get(url)[2]
        assert body.count(b'class="tile"') == 2 and b"b.png" in body


def test_shapes_are_read_from_every_layout_and_bad_values_are_counted_not_drawn():
    from imageshelf.viewer.shapes import categories, drawing

    hf = drawing({"objects": {"bbox": [[1, 2, 3, 4], [5, 6, 7, 8]], "category": ["a", "b"]}})
    assert [(s.kind, s.category, s.box) for s in hf.shapes] == [
        ("box", "a", (1, 2, 3, 4)),
        ("box", "b", (5, 6, 7, 8)),
    ]
    cvat = drawing({"objects": [{"type": "points", "points": [[1, 2], [3, 4]], "category": "c"}]})
    assert cvat.shapes[0].points == [(1, 2), (3, 4)]
    bad = drawing(
        {
            "objects": [
                {"bbox": [1, "x", 3, 4]},
                {"bbox": [float("nan"), 0, 1, 1]},
                "no",
                {"bbox": [1, 2]},
            ]
        }
    )
    assert bad.shapes == [] and bad.skipped == 4
    assert drawing({"objects": "not a list", "label": "cat"}).shapes == []
    # a detection dataset's tile is captioned with its objects' categories
    coco = {"objects": [{"category": "dog"}, {"category": "cat"}, {"category": "dog"}]}
    assert categories(coco) == ["dog", "cat"]
    # a polygon and its box (COCO, a turned box): both drawn, the name written once
    both = drawing(
        {"objects": [{"bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4]], "category": "d"}]}
    )
    assert [(s.kind, s.named) for s in both.shapes] == [("box", True), ("polygon", False)]
