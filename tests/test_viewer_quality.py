"""`imageshelf view`'s quality pages, as a user sees them in a real browser (Debian's
Chromium through Playwright): a store with planted problems, built by ingest and pack
as `dvc repro` builds it (each image measured once), then the counts, the leaked pairs
with both splits, the worst images of an issue type first with their measure, near
duplicates side by side, pages that follow a cursor, and a key that is markup shown as
text."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_audit import encoded, planted, scene, split_of
from test_viewer import browser, page, serving  # noqa: F401  (fixtures)

from imageshelf.viewer import quality

from conftest import PROJECT, ingest_and_pack, make_image, put

HOSTILE = "odd/<img src=x onerror=alert(1)>.png"
TINY = 64  # odd-size images: more than a page of them


@pytest.fixture(scope="module")
def planted_project(tmp_path_factory) -> Iterator[Path]:
    """test_audit's planted problems, plus a second dark image (less dark), a near copy
    in val whose key is markup, and 64 tiny images, ingested and packed; params.yaml
    with a dark threshold of its own."""
    root = tmp_path_factory.mktemp("planted")
    (root / ".dvc").mkdir()  # where a run keeps what it found (the viewer must not write)
    files = planted()
    files["issues/dim.jpg"] = encoded(scene(26).point(lambda v: v // 4), quality=90)
    files.update(split_of("issues/dim.jpg", "train"))
    files[HOSTILE] = encoded(scene(3).resize((120, 90)), "PNG")
    files.update(split_of(HOSTILE, "val"))
    for i in range(TINY):
        side = 4 + i % 24
        files[f"tiny/{i:02d}.png"] = make_image("PNG", (side, side), seed=100 + i)
    params = (PROJECT / "params.yaml").read_text()
    (root / "params.yaml").write_text(re.sub(r"(?m)^  dark: .*$", "  dark: 0.25", params))
    here = Path.cwd()
    os.chdir(root)  # ingest and pack read the folder they run in, as `dvc repro` runs them
    try:
        put(Path("data/incoming"), files)
        ingest_and_pack().close()
    finally:
        os.chdir(here)
    yield root


@pytest.fixture
def viewer(planted_project, monkeypatch, tmp_path) -> Iterator[str]:
    monkeypatch.chdir(planted_project)  # params.yaml: the thresholds
    with serving(Path("data/images.lmdb"), tmp_path / "thumbs") as url:
        yield url


def screenshots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("IMAGESHELF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def cells(tab, kind: str) -> dict[str, str]:
    """A row of the quality table: its count in all, and in each split."""
    row = tab.locator(f"#quality tr[data-kind='{kind}']")
    splits = row.locator("td[data-split]")
    counts = {cell.get_attribute("data-split"): cell.inner_text() for cell in splits.all()}
    return {"all": row.locator("td.total").inner_text(), **counts}


def test_quality_counts_each_kind_and_leaks_name_both_splits(page, viewer, tmp_path):  # noqa: F811
    shots = screenshots(tmp_path)
    page.goto(viewer)
    page.click("#quality-link")  # from the gallery's header
    assert cells(page, "leaks") == {"all": "6", "test": "2", "train": "3", "val": "1"}
    assert cells(page, "exact_duplicates")["all"] == "2 in 1 group"
    assert cells(page, "near_duplicates")["all"] == "6 in 3 groups"
    assert cells(page, "dark")["all"] == "2" and cells(page, "odd_size")["all"] == str(TINY + 1)
    assert cells(page, "unreadable")["all"] == "0"
    dark = page.locator("#quality tr[data-kind='dark'] td.rule").inner_text()
    assert dark == "p99 < 0.25"  # params.yaml's threshold, not the default
    assert re.search(r"test-train\s+2", page.inner_text("#leak-pairs"))
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / "quality.png")

    page.click("#quality tr[data-kind='leaks'] th a")
    leaks = page.locator(".leak")
    assert leaks.count() == 3
    first = leaks.nth(0)  # test-train, the exact copy first
    assert first.locator(".split-badge").all_inner_texts() == ["test", "train"]
    assert first.locator(".key").all_inner_texts() == ["exact/test.jpg", "clean/0.jpg"]
    assert first.locator(".leak-kind").inner_text().lower() == "exact"
    second = leaks.nth(1)
    assert second.locator(".key").all_inner_texts() == ["near/test.png", "clean/1.jpg"]
    assert second.locator(".distance").inner_text() == "2 bits apart"
    for image in page.locator(".leak img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    widths = page.eval_on_selector_all(".leak img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 6 and all(w > 0 for w in widths)  # every thumbnail arrived
    page.evaluate("window.scrollTo(0, 0)")  # the header where it belongs
    page.screenshot(path=shots / "leaks.png", full_page=True)
    page.click("#leak-pairs a:text('train-val')")  # one pair of splits
    assert page.locator(".leak").count() == 1
    page.locator(".leak a").nth(1).click()  # a thumbnail opens its image's page
    assert page.inner_text("#key") == HOSTILE
    assert page.alerts == []
    assert not Path(".dvc/tmp/imageshelf/quality").exists()  # the audit wrote nothing


def test_worst_first_groups_side_by_side_and_what_names_an_image(page, viewer):  # noqa: F811
    page.goto(viewer + "quality/dark")
    tiles = page.locator("#grid .tile")
    assert tiles.count() == 2
    assert tiles.nth(0).get_attribute("data-key") == "issues/dark.jpg"  # the darker first
    assert tiles.nth(0).locator(".measure").inner_text() == "p99 0.1569 < 0.25"
    assert tiles.nth(1).get_attribute("data-key") == "issues/dim.jpg"
    assert "p99 < 0.25" in page.inner_text("#threshold")

    page.goto(viewer + "quality/near_duplicates")
    groups = page.locator(".group")
    assert groups.count() == 3
    pair = page.locator(".group[data-first='clean/1.jpg']")
    assert pair.locator(".tile .key").all_inner_texts() == ["clean/1.jpg", "near/test.png"]
    assert pair.locator(".split-badge").all_inner_texts() == ["train", "test"]
    assert "2 bits" in pair.locator(".pairs").inner_text()
    boxes = [tile.bounding_box() for tile in pair.locator(".tile").all()]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]  # side by side

    pair.locator(".tile a").nth(1).click()  # the image's page: its measures and findings
    assert page.inner_text("#key") == "near/test.png"
    assert re.search(r"p99\s+0\.\d+", page.inner_text("#props"))
    findings = page.inner_text("#findings")
    assert "near duplicate of clean/1.jpg (2 bits)" in findings
    assert "clean/1.jpg in train" in findings

    # The gallery's filter takes the findings, as --where does.
    page.goto(viewer)
    page.fill("#where", "leaks=true; split=test")
    with page.expect_navigation():  # the first filter also starts DuckDB: not instant
        page.click("button:text('Show')")
    keys = page.eval_on_selector_all("#grid .tile a", "as => as.map(a => a.title)")
    assert keys == ["exact/test.jpg", "near/test.png"]
    page.fill("#where", "dark=true")
    with page.expect_navigation():
        page.click("button:text('Show')")
    assert page.locator("#grid .tile").count() == 2
    page.locator("#grid .tile a").nth(0).click()
    page.click("#following")  # next within the filter
    assert page.inner_text("#key") == "issues/dim.jpg"
    page.goto(viewer + "?where=leaks%3Dmaybe")
    assert "leaks=true or leaks=false" in page.inner_text("#error")


def test_pages_follow_a_cursor_and_a_markup_key_stays_text(page, viewer):  # noqa: F811
    page.goto(viewer + "quality/odd_size")
    first = page.locator("#grid .tile").evaluate_all("ts => ts.map(t => t.dataset.key)")
    assert len(first) == quality.PAGE_IMAGES
    assert first[0] == "tiny/00.png"  # 4 x 4: the smallest first
    assert page.locator("#grid .measure").first.inner_text() == "sqrt(w x h) 4 < 32 px"
    assert page.locator("#grid .detail").first.inner_text() == "4 x 4 px"
    page.click("#next-page")
    rest = page.locator("#grid .tile").evaluate_all("ts => ts.map(t => t.dataset.key)")
    assert len(rest) == TINY + 1 - quality.PAGE_IMAGES and not set(first) & set(rest)
    assert page.locator("#next-page").count() == 0
    page.goto(viewer + "quality/odd_size?after=not-a-cursor")
    assert "not a page cursor" in page.inner_text("#error")

    for kind in ("near_duplicates", "leaks"):
        page.goto(viewer + f"quality/{kind}")
        assert HOSTILE in page.inner_text("main")  # shown as the text it is
        assert page.locator("img[src='x']").count() == 0  # never made an element
    page.locator(f".leak[data-b='{HOSTILE}'] a").nth(1).click()
    assert page.inner_text("#key") == HOSTILE
    assert page.alerts == []
