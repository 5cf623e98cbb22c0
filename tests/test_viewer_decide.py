"""Deciding on the viewer's pages, as a user does in a real browser (Debian's Chromium):
relabel an image, delete one of its boxes, move a leaked image into its twin's split,
keep one of two duplicates; each decision is a change to a file the pipeline reads, the
page shows its `git diff`, and `dvc repro` puts exactly those decisions in the store. A
POST that is not the page's own (no token, another Origin, another Host, a read-only
viewer) changes nothing."""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_audit import encoded, planted, scene
from test_viewer import browser, page  # noqa: F401  (fixtures)

from imageshelf.store import ImageStore
from imageshelf.viewer.serve import Desk, start

from conftest import commit, data_of, make_repo, put, sh

pytestmark = [pytest.mark.dvc, pytest.mark.browser]

STREET = "boxes/street.jpg"
BOXES = [
    {"bbox": [10, 10, 40, 30], "category": "car"},
    {"bbox": [60, 20, 30, 50], "category": "person"},
]
FILES = ("data/annotations/viewer.jsonl", "data/remove.txt", "data/reviewed.jsonl")


@pytest.fixture
def project(tmp_path) -> Path:
    """test_audit's planted problems (an exact copy and a near copy leaked into test)
    and an image with a label and two boxes, built by `dvc repro` and committed."""
    root = make_repo(tmp_path)
    files = planted()
    files[STREET] = encoded(scene(30), quality=90)
    files["boxes/street.json"] = json.dumps({"label": "street", "split": "train", "objects": BOXES})
    put(root / "data" / "incoming", files)
    sh(root, "dvc", "repro")
    commit(root, "planted")
    return root


@contextmanager
def viewer(root: Path, tmp_path: Path, read_only: bool = False) -> Iterator[str]:
    """`imageshelf view` in `root`, in this process, on a free loopback port."""
    here = Path.cwd()
    os.chdir(root)  # params.yaml and the decisions' files, as the command finds them
    desk = None if read_only else Desk(*(Path(f) for f in FILES), Path("."))
    server, versions, address = start(
        Path("data/images.lmdb"), None, None, "127.0.0.1", 0, tmp_path / "thumbs",
        lambda _: None, desk=desk,
    )  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        server.shutdown()
        server.server_close()
        versions.close()
        os.chdir(here)


def test_decisions_on_the_pages_are_file_changes_that_dvc_repro_applies(page, project, tmp_path):  # noqa: F811
    shots = Path(os.environ.get("IMAGESHELF_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with ImageStore(project / "data" / "images.lmdb") as store:
        before = data_of(store)
    with viewer(project, tmp_path) as url:
        page.goto(url + "image/" + STREET)
        assert page.locator(".picture svg.figure rect").count() == 2  # both boxes
        page.fill("#label-value", "road")
        page.click("#label-form button")
        assert "label = road" in page.inner_text("#said")
        assert "label" in page.inner_text("#pending")
        page.locator("#objects li[data-index='1'] button.delete").click()
        assert "object 2 deleted" in page.inner_text("#said")
        assert page.locator("#objects li").count() == 1  # the pending list, not the store's
        assert page.locator(".picture svg.figure rect").count() == 1  # and drawn so
        page.screenshot(path=shots / "decide-image.png", full_page=True)

        page.goto(url + "quality/leaks")
        leak = page.locator(".leak[data-a='near/test.png']")
        leak.locator("form.move button").first.click()  # into its twin's split, train
        assert "near/test.png: moved to train" in page.inner_text("#said")
        page.screenshot(path=shots / "decide-leaks.png", full_page=True)

        page.goto(url + "quality/exact_duplicates")
        page.locator(".tile[data-key='clean/0.jpg'] form.keep button").click()
        assert "kept clean/0.jpg; dropped 1" in page.inner_text("#said")

        page.goto(url + "?where=" + urllib.parse.quote("split=train"))  # a selection
        for key in ("clean/3.jpg", "clean/4.jpg"):
            page.locator(f".tile[data-key='{key}'] input.pick").check()
        page.fill("#selection-value", "checked")
        page.click("#selection-label")
        assert "2 image(s): label = checked" in page.inner_text("#said")
        assert page.input_value("#where") == "split=train"  # the filter kept
        page.screenshot(path=shots / "decide-gallery.png")

        page.goto(url + "image/issues/dark.jpg")
        page.locator("#findings li[data-kind='dark'] form.review button").click()
        assert "dark reviewed, not a problem" in page.inner_text("#said")
        page.goto(url + "quality/dark")
        assert page.locator("#grid .tile").count() == 0  # the pages follow at once

        page.click("#decisions-link")
        table = page.locator(".pending[data-file='data/annotations/viewer.jsonl']").inner_text()
        assert '"file_name": "boxes/street.jpg"' in table and '"label": "road"' in table
        assert '"file_name": "near/test.png", "split": "train"' in table
        removal = page.locator(".pending[data-file='data/remove.txt'] .add").all_inner_texts()
        assert removal == ["+exact/test.jpg"]  # git diff's added line
        page.screenshot(path=shots / "decide-pending.png", full_page=True)
        assert page.alerts == []

    changed = sh(project, "git", "status", "--porcelain").stdout.splitlines()
    expected = ["?? data/annotations/viewer.jsonl", " M data/remove.txt", " M data/reviewed.jsonl"]
    assert sorted(changed) == sorted(expected)
    repro = sh(project, "dvc", "repro").stdout
    assert "3 relabeled, 1 moved to another split by data/annotations/" in repro
    assert "1 removed" in repro
    with ImageStore(project / "data" / "images.lmdb") as store:
        street = store.record(STREET)
        assert street.metadata["label"] == "road" and street.metadata["objects"] == BOXES[:1]
        assert store.record("near/test.png").effective_split == "train"
        assert "exact/test.jpg" not in store and "clean/0.jpg" in store
        assert store.metadata("clean/3.jpg")["label"] == "checked"
    quality = json.loads((project / "reports" / "quality.json").read_text())
    assert quality["issues"]["dark"] == [] and len(quality["reviewed"]["applied"]) == 1
    pack = json.loads((project / "reports" / "pack.json").read_text())
    assert pack["removed"] == 1 and pack["relabeled"] == 4 and pack["moved"] == 1
    diff = json.loads(sh(project, "imageshelf", "diff", "--json").stdout)
    relabeled = ["boxes/street.jpg", "clean/3.jpg", "clean/4.jpg", "near/test.png"]
    assert [r["key"] for r in diff["relabeled"]] == relabeled
    assert [r["key"] for r in diff["removed"]] == ["exact/test.jpg"]

    # Undone as a git change is: the files back as they were, and the store with them.
    sh(project, "git", "checkout", "--", "data/remove.txt", "data/reviewed.jsonl")
    (project / "data" / "annotations" / "viewer.jsonl").unlink()  # new: never committed
    sh(project, "dvc", "repro")
    with ImageStore(project / "data" / "images.lmdb") as store:
        assert data_of(store) == before
    quality = json.loads((project / "reports" / "quality.json").read_text())
    assert quality["issues"]["dark"] == ["issues/dark.jpg"]


def post(url: str, fields: dict[str, str], **headers: str) -> int:
    """A POST to /decide as another page or program would send it: its status."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    body = urllib.parse.urlencode(fields)
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    connection.request("POST", "/decide", body, sent)
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_forged_post_changes_nothing(page, project, tmp_path):  # noqa: F811
    before = {f: (project / f).read_bytes() if (project / f).exists() else None for f in FILES}
    with viewer(project, tmp_path) as url:
        page.goto(url + "image/" + STREET)
        token = page.locator("#label-form input[name='_token']").get_attribute("value")
        origin = url.rstrip("/")
        own = {"_token": token, "key": STREET, "action": "field", "name": "label", "value": "x"}
        assert post(url, {**own, "_token": "guessed"}, Origin=origin) == 403
        assert post(url, {k: v for k, v in own.items() if k != "_token"}, Origin=origin) == 403
        assert post(url, own, Origin="http://evil.example") == 403
        assert post(url, own) == 403  # no Origin at all
        assert post(url, own, Origin="http://evil.example", Host="evil.example") == 400
        assert post(url, {**own, "action": "drop", "key": "no/such.png"}, Origin=origin) == 400
        assert post(url, {**own, "value": "two\nlines"}, Origin=origin) == 400
        assert post(url, {**own, "name": "sha256"}, Origin=origin) == 400
        assert post(url, {**own, "name": "objects"}, Origin=origin) == 400  # a list
        review = {**own, "action": "review", "kind": "no_such_finding"}
        assert post(url, review, Origin=origin) == 400  # the audit could not read it
        assert post(url, {**own, "back": "//evil.example/"}, Origin=origin) == 303  # sent home
    after = {f: (project / f).read_bytes() if (project / f).exists() else None for f in FILES}
    assert json.loads(after[FILES[0]]) == {"file_name": STREET, "label": "x"}  # the one honest
    assert after[FILES[1]] == before[FILES[1]] and after[FILES[2]] == before[FILES[2]]

    with viewer(project, tmp_path, read_only=True) as url:
        page.goto(url + "image/" + STREET)
        assert page.locator("form.decision").count() == 0 and page.locator("#decide").count() == 0
        own = {"_token": "", "key": STREET, "action": "drop"}
        assert post(url, own, Origin=url.rstrip("/")) == 403
    assert (project / FILES[1]).read_bytes() == before[FILES[1]]
