"""The viewer's Numbers page (imageshelf/viewer/numbers.py), in Chromium: each table what
reading every record gives, and its question shown to be asked again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from test_sql import dataset
from test_viewer import browser, page, serving  # noqa: F401  (fixtures)

from conftest import ingest_and_pack, put


def test_numbers_are_what_the_records_give(page, workspace, tmp_path):  # noqa: F811
    put(Path("data/incoming"), dataset())
    store = ingest_and_pack()
    records = list(store.records())
    with serving(Path("data/images.lmdb").resolve(), tmp_path / "thumbs") as address:
        page.goto(address)
        page.click("#numbers-link")
        page.wait_for_selector("#objects")
        page.screenshot(path=str(tmp_path / "numbers.png"), full_page=True)
        splits = page.eval_on_selector_all(
            "#splits tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
        )
        by_split = Counter(r.effective_split for r in records)
        assert {row[0]: int(row[1].replace(",", "")) for row in splits} == by_split
        grid = page.eval_on_selector_all(
            "#objects tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
        )
        heads = page.eval_on_selector_all(
            "#objects thead th[data-split]", "hs => hs.map(h => h.dataset.split)"
        )
        shown = {
            (split, row[0]): int(n)
            for row in grid
            for split, n in zip(heads, row[1:-1], strict=True)
            if n != "0"
        }
        boxes = Counter(
            (r.effective_split, box["category"]) for r in records for box in r.metadata["objects"]
        )
        assert shown == boxes
        per_image = page.eval_on_selector_all(
            "#per_image tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
        )
        assert {int(a): int(b) for a, b in per_image} == Counter(
            len(r.metadata["objects"]) for r in records
        )
        page.click("#objects + details summary")  # the question, to be asked again
        assert "UNNEST(objects)" in page.inner_text("#objects + details pre")
    store.close()


def test_a_filter_counts_its_matches_and_pages_through_them(page, workspace, tmp_path):  # noqa: F811
    """A broad filter in the gallery's box: its matches counted from the columnar
    catalog, and its pages exactly the matching images, in key order."""
    put(Path("data/incoming"), dataset())
    store = ingest_and_pack()
    wanted = sorted(r.key for r in store.records() if r.metadata["score"] > 0.5)
    with serving(Path("data/images.lmdb").resolve(), tmp_path / "thumbs") as address:
        page.goto(address)
        page.fill("input[name=where]", "score>0.5")
        page.press("input[name=where]", "Enter")
        page.wait_for_selector("#matched")
        assert page.inner_text("#matched").startswith(f"{len(wanted)} matches")
        shown = page.eval_on_selector_all("#grid li", "tiles => tiles.map(t => t.dataset.key)")
        assert shown == wanted
    store.close()
