"""Metadata over time and between teammates, with real git and DVC: labels fixed in
data/annotations/ after the images left, nothing lost to a re-dropped file, a teammate
who forgot `dvc pull`, two teammates who packed at the same time, the export round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imageshelf.store import ImageStore

from conftest import (
    command_line,
    commit,
    make_image,
    md5,
    packed,
    publish,
    put,
    sh,
    sharded_params,
    up_to_date,
)


def images(first: int, count: int, folder: str = "a") -> dict[str, bytes]:
    return {
        f"{folder}/{i:03d}.png": make_image("PNG", (24, 24), seed=i)
        for i in range(first, first + count)
    }


def labels_csv(labels: dict[str, str]) -> str:
    return "path,label\n" + "".join(f"{key},{label}\n" for key, label in labels.items())


def store_of(root: Path, layout: str = "single") -> ImageStore:
    return ImageStore(root / "data" / ("images.lmdb" if layout == "single" else "images"))


def pack_report(root: Path) -> dict:
    return json.loads((root / "reports" / "pack.json").read_text())


def shards(root: Path) -> dict[str, str]:
    return {p.name: md5(p) for p in (root / "data" / "images").glob("shard-*.lmdb")}


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_a_label_fixed_in_data_annotations_after_the_images_left(repo, layout):
    if layout == "sharded":
        sharded_params(repo, shard_mb=1)
    first, second = images(0, 40, "a"), images(100, 40, "b")
    everything = {**first, **second}
    put(
        repo / "data" / "incoming",
        {**first, "a/labels.csv": labels_csv({k.split("/")[1]: "cat" for k in first})},
    )
    packed(repo, {}, "first batch")
    put(
        repo / "data" / "incoming",
        {**second, "b/labels.csv": labels_csv({k.split("/")[1]: "dog" for k in second})},
    )
    packed(repo, {}, "second batch")
    shutil.rmtree(repo / "data" / "incoming" / "a")
    shutil.rmtree(repo / "data" / "incoming" / "b")
    sh(repo, "dvc", "repro")
    commit(repo, "incoming emptied")
    before = shards(repo) if layout == "sharded" else {}
    bytes_before = {k: store_of(repo, layout).get(k) for k in everything}

    # A mislabeled image, fixed where labels are kept: one row, keyed by the store key.
    fixed = "b/105.png"
    (repo / "data" / "annotations" / "fixes.csv").write_text(
        f"path,label,checked\n{fixed},cat,true\n"
    )
    out = sh(repo, "dvc", "repro").stdout
    assert "1 relabeled" in out
    assert "ingest: 0 images staged" in out  # no image was read again
    with store_of(repo, layout) as store:
        assert store.metadata(fixed) == {"label": "cat", "checked": True}
        assert store.metadata("b/106.png") == {"label": "dog"}
        assert {k: store.get(k) for k in everything} == bytes_before  # no image touched
    assert pack_report(repo)["relabeled"] == 1
    if layout == "sharded":  # only the shard holding the key is new
        after = shards(repo)
        assert len(set(before) - set(after)) == 1 and len(set(after) - set(before)) == 1
    commit(repo, "fix one label")
    diff = json.loads(sh(repo, *command_line("diff", "HEAD~1", "HEAD", "--json")).stdout)
    assert [(e["key"], e["fields"]) for e in diff["relabeled"]] == [
        (fixed, {"checked": [None, True], "label": ["dog", "cat"]})
    ]

    # Deleting the row undoes it: the field it added goes (the report says so), and the
    # label the image arrived with, whose files left long ago, comes back.
    (repo / "data" / "annotations" / "fixes.csv").write_text("path,label,checked\n")
    sh(repo, "dvc", "repro")
    with store_of(repo, layout) as store:
        assert store.metadata(fixed) == {"label": "dog"}
        assert {k: store.get(k) for k in everything} == bytes_before
    assert pack_report(repo)["fields_removed"] == {"checked": 1}
    if layout == "sharded":  # the very shards from before the fix
        assert shards(repo) == before


def test_files_dropped_again_never_take_labels_away(repo):
    first = images(0, 6)
    rows = {k.split("/")[1]: "cat" for k in first}
    publish(
        repo,
        {**first, "a/labels.csv": labels_csv(rows), "a/000.png.json": '{"boxes": [[1, 2, 3, 4]]}'},
        "v1",
    )
    incoming = repo / "data" / "incoming" / "a"
    # Re-saved by Excel (BOM, semicolons, its own header), one row deleted, one label
    # changed, and the sidecar left out: labels may change, never vanish.
    (incoming / "000.png.json").unlink()
    kept = dict(list(rows.items())[1:])
    kept["001.png"] = "kitten"
    (incoming / "labels.csv").write_text(
        "\ufeffPath;Label\r\n" + "".join(f"{k};{v}\r\n" for k, v in kept.items())
    )
    sh(repo, "dvc", "repro")
    with store_of(repo) as store:
        got = {k: store.metadata(k) for k in first}
    assert got["a/000.png"] == {"label": "cat", "boxes": [[1, 2, 3, 4]]}
    assert got["a/001.png"] == {"label": "kitten"}
    assert all(got[k]["label"] == "cat" for k in first if k != "a/001.png")
    assert pack_report(repo)["fields_removed"] == {}

    # The one way to drop a field an image arrived with: a null in a tracked file.
    (repo / "data" / "annotations" / "drop.jsonl").write_text(
        '{"path": "a/000.png", "boxes": null}\n'
    )
    sh(repo, "dvc", "repro")
    with store_of(repo) as store:
        assert store.metadata("a/000.png") == {"label": "cat"}
    assert pack_report(repo)["fields_removed"] == {"boxes": 1}


def test_a_teammate_who_skipped_dvc_pull_is_refused_and_loses_nothing(repo, tmp_path):
    publish(repo, images(0, 5), "v1")
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    sh(teammate, "dvc", "pull")
    # The others add images and push while the teammate adds their own.
    put(repo / "data" / "incoming", images(100, 4, "b"))
    sh(repo, "dvc", "repro")
    commit(repo, "v2")
    sh(repo, "dvc", "push")
    mine = images(200, 3, "c")
    put(teammate / "data" / "incoming", mine)
    sh(teammate, "git", "pull", "-q")  # but not `dvc pull`

    result = sh(teammate, "dvc", "repro", check=False)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "is not the version dvc.lock records" in said and "dvc pull data/images.lmdb" in said
    with store_of(teammate) as store:
        assert len(store) == 5  # untouched, nothing published
    sh(teammate, "dvc", "pull", "data/images.lmdb")
    sh(teammate, "dvc", "repro")
    with store_of(teammate) as store:
        assert set(store.keys()) == {*images(0, 5), *images(100, 4, "b"), *mine}


def test_two_teammates_who_packed_at_once_merge_and_lose_no_image(repo, tmp_path):
    """README "When two teammates pack at the same time", step by step."""
    base = images(0, 4)
    publish(repo, base, "v1")
    bob = tmp_path / "bob"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(bob))
    sh(bob, "dvc", "pull")
    alice_new, bob_new = images(100, 3, "alice"), images(200, 2, "bob")
    publish(repo, alice_new, "alice's batch")
    publish(bob, bob_new, "bob's batch")
    shutil.rmtree(bob / "data" / "incoming" / "bob")  # his images now live only in his store
    (bob / "data" / "remove.txt").write_text("a/000.png\n")
    sh(bob, "dvc", "repro")
    commit(bob, "bob drops one image")

    pulled = sh(bob, "git", "pull", "-q", "--no-rebase", check=False)
    assert pulled.returncode != 0 and "dvc.lock" in pulled.stdout + pulled.stderr
    sh(bob, "git", "checkout", "--theirs", "dvc.lock", "reports")
    sh(bob, "dvc", "pull")
    out = sh(bob, *command_line("merge", "HEAD")).stdout
    assert "2 added from HEAD" in out
    sh(bob, "dvc", "repro")
    commit(bob, "merge alice's batch")
    sh(bob, "dvc", "push")

    expected = {**base, **alice_new, **bob_new}
    del expected["a/000.png"]  # bob's removal, merged by git, applied by pack
    with store_of(bob) as store:
        assert {k: store.get(k) for k in store} == expected
    sh(repo, "git", "pull", "-q", str(bob), "main")
    sh(repo, "dvc", "pull")
    with store_of(repo) as store:
        assert {k: store.get(k) for k in store} == expected
    merged = md5(repo / "data" / "images.lmdb")
    sh(repo, "dvc", "repro")  # alice's own images, still in her incoming: already there
    assert md5(repo / "data" / "images.lmdb") == merged
    assert up_to_date(repo)


def test_an_export_ingested_into_an_empty_project_gives_the_same_content(repo, tmp_path):
    content = images(0, 8)
    rows = {k.split("/")[1]: ("cat" if i % 2 else "dog") for i, k in enumerate(content)}
    publish(
        repo,
        {
            **content,
            "a/labels.csv": labels_csv(rows),
            "a/003.png.json": '{"boxes": [[1.5, 2, 3, 4]], "text": "é ✓"}',
        },
        "v1",
    )
    out = tmp_path / "exported"
    sh(repo, *command_line("export", "--out", str(out)))
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert lines[3] == {
        "file_name": "a/003.png",
        "label": "cat",
        "boxes": [[1.5, 2, 3, 4]],
        "text": "é ✓",
    }

    other = tmp_path / "other"
    shutil.copytree(
        repo, other, ignore=shutil.ignore_patterns(".git", "data", "reports", "dvc.lock", ".dvc")
    )
    (other / "data").mkdir()
    shutil.copytree(out, other / "data" / "incoming")
    for step in ("ingest", "pack"):
        sh(other, *command_line(step))
    theirs = store_of(other).header.content_digest
    assert theirs == store_of(repo).header.content_digest
