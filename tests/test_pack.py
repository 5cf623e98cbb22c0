"""Pack: merging what arrived into the store, by the policies in params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imageshelf.store import ImageStore, StoreFile

from conftest import make_image, md5, put, report, stage

INCOMING = Path("data/incoming")
STORE = Path("data/images.lmdb")


def set_param(line: str, value: str) -> None:
    params = Path("params.yaml")
    key = line.split(":")[0]
    lines = [
        f"  {key}: {value}" if row.strip().startswith(f"{key}:") else row
        for row in params.read_text().splitlines()
    ]
    params.write_text("\n".join(lines) + "\n")


def repro() -> None:
    for name in ("ingest", "pack", "validate"):
        result = stage(name)
        assert result.exit_code == 0, result.output


def clear_incoming() -> None:
    shutil.rmtree(INCOMING)
    INCOMING.mkdir()


def test_packed_images_stay_after_their_files_leave_incoming(workspace):
    first = {"a/1.png": make_image(seed=1), "a/2.jpg": make_image("JPEG", seed=2)}
    put(INCOMING, first)
    repro()
    clear_incoming()
    second = {"b/3.gif": make_image("GIF", seed=3)}
    put(INCOMING, second)
    repro()
    store = ImageStore(STORE)
    assert {k: store.get(k) for k in store} == {**first, **second}
    assert report("pack")["added"] == 1


def test_nothing_new_leaves_the_store_file_untouched(workspace):
    put(INCOMING, {"a.png": make_image(seed=1)})
    repro()
    before = (md5(STORE), STORE.stat().st_ino, STORE.stat().st_mtime_ns)
    result = stage("pack")
    assert "1 already there" in result.stdout and "unchanged, not rewritten" in result.stdout
    assert (md5(STORE), STORE.stat().st_ino, STORE.stat().st_mtime_ns) == before


def test_a_conflict_fails_by_default_lists_the_keys_and_changes_nothing(workspace):
    put(INCOMING, {"a.png": make_image(seed=1), "b.png": make_image(seed=2)})
    repro()
    before = md5(STORE)
    put(INCOMING, {"a.png": make_image(seed=9)})
    stage("ingest")
    result = stage("pack")
    assert result.exit_code == 1
    assert (
        "1 staged image(s) have the key of a stored image but different bytes: a.png"
        in result.stderr
    )
    assert md5(STORE) == before


@pytest.mark.parametrize("policy, expected_seed", [("replace", 9), ("skip", 1)])
def test_a_conflict_can_replace_or_skip(workspace, policy, expected_seed):
    put(INCOMING, {"a.png": make_image(seed=1)})
    repro()
    set_param("on_conflict", policy)
    put(INCOMING, {"a.png": make_image(seed=9)})
    repro()  # validate passes either way
    assert ImageStore(STORE).get("a.png") == make_image(seed=expected_seed)
    assert report("pack")["conflicts"] == ["a.png"]


def test_the_same_bytes_under_a_new_key_are_kept_and_listed_by_default(workspace):
    put(INCOMING, {"a.png": make_image(seed=1)})
    repro()
    put(
        INCOMING,
        {
            "copy_of_a.png": make_image(seed=1),
            "c.png": make_image(seed=3),
            "copy_of_c.png": make_image(seed=3),
        },
    )
    repro()
    store = ImageStore(STORE)
    assert store.keys() == ["a.png", "c.png", "copy_of_a.png", "copy_of_c.png"]
    assert store.get("copy_of_c.png") == make_image(seed=3)
    assert report("pack")["duplicates"] == [
        {"key": "copy_of_a.png", "same_as": "a.png"},
        {"key": "copy_of_c.png", "same_as": "c.png"},
    ]
    # each content is stored once: four keys, two images' bytes
    sizes = sum(size for _chunk, size in StoreFile(STORE).chunk_sizes())
    assert sizes == len(make_image(seed=1)) + len(make_image(seed=3))


def test_duplicates_can_be_skipped(workspace):
    set_param("on_duplicate", "skip")
    put(INCOMING, {"a.png": make_image(seed=1), "b.png": make_image(seed=1)})
    repro()
    assert ImageStore(STORE).keys() == ["a.png"]
    assert report("pack")["duplicates"] == [{"key": "b.png", "same_as": "a.png"}]


def test_a_metadata_change_with_the_same_bytes_relabels(workspace):
    put(INCOMING, {"a.png": make_image(seed=1), "a.png.json": '{"label": "cat"}'})
    repro()
    put(INCOMING, {"a.png.json": '{"label": "dog"}'})
    repro()
    assert ImageStore(STORE).metadata("a.png") == {"label": "dog"}
    assert report("pack")["relabeled"] == 1


def test_fields_that_only_move_into_data_annotations_are_not_counted_as_relabeled(workspace):
    table = "file_name,label\na.png,cat\nb.png,{}\n"
    put(INCOMING, {"a.png": make_image(seed=1), "b.png": make_image(seed=2)})
    put(INCOMING, {"labels.csv": table.format("dog")})
    repro()
    put(Path("data/annotations"), {"labels.csv": table.format("wolf")})  # kept in git now
    repro()
    pack = report("pack")
    assert (pack["relabeled"], pack["retracked"]) == (1, 1)  # as `imageshelf diff` counts
    assert ImageStore(STORE).metadata("b.png") == {"label": "wolf"}


def test_keys_in_remove_txt_are_dropped(workspace):
    put(INCOMING, {"a.png": make_image(seed=1), "b.png": make_image(seed=2)})
    repro()
    clear_incoming()
    Path("data/remove.txt").write_text("# gone\na.png\nnever-there.png\n")
    repro()
    assert ImageStore(STORE).keys() == ["b.png"]
    assert report("pack")["removed"] == 1
    assert report("pack")["removal_not_found"] == ["never-there.png"]


def test_pack_without_ingest_says_what_to_do(workspace):
    result = stage("pack")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: data/staged.jsonl: no staged manifest; run ingest first"


def test_a_key_in_remove_txt_warns_once_not_on_every_later_run(workspace):
    from conftest import make_image, put, stage

    put(workspace / "data" / "incoming", {f"{i}.png": make_image(seed=i) for i in range(3)})
    assert stage("ingest").exit_code == 0 and stage("pack").exit_code == 0
    (workspace / "data" / "remove.txt").write_text("1.png\nnever-there.png\n")
    (workspace / "data" / "incoming" / "1.png").unlink()
    assert stage("ingest").exit_code == 0
    first = stage("pack")
    assert "1 key(s) in data/remove.txt are not in the store" in first.output
    again = stage("pack")  # the list is as it was: 1.png is gone, as asked
    assert again.exit_code == 0 and "not in the store" not in again.output
    (workspace / "data" / "remove.txt").write_text("1.png\nnever-there.png\nother.png\n")
    assert "3 key(s) in data/remove.txt are not in the store" in stage("pack").output
