"""Pack: merging what arrived into the store, by the policies in params.yaml."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from imageshelf.project.paths import Project
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


# ------------------------------------------- plan, then publish (stages/pack*.py)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`: its bytes and mtime."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ratios(train: float, val: float) -> None:
    params = Path("params.yaml")
    text = params.read_text()
    for name, value in (("train", train), ("val", val)):
        text = "\n".join(
            f"    {name}: {value}" if row.startswith(f"    {name}: ") else row
            for row in text.splitlines()
        )
    params.write_text(text + "\n")


def _plan():
    from imageshelf.project.params import AnnotationsParams, PackParams, load_params
    from imageshelf.stages.pack import PackPaths, plan_pack
    from imageshelf.stages.pack.inputs import gather

    paths = PackPaths.of(Project.load())
    params, rules = load_params(PackParams), load_params(AnnotationsParams)
    with gather(paths, params, rules, previous=None) as inputs:
        return plan_pack(inputs)


def test_the_plan_is_a_value_made_without_writing_a_byte(workspace):
    (workspace / ".dvc").mkdir()  # a DVC project: pack's cache in .dvc/tmp/ is in play
    images = {f"a/{i}.png": make_image(seed=i) for i in range(6)}
    put(INCOMING, {**images, "labels.csv": "file_name,label\na/0.png,cat\n"})
    repro()
    clear_incoming()
    put(INCOMING, {"b/new.png": make_image(seed=50), "b/again.png": make_image(seed=3)})
    put(Path("data/annotations"), {"labels.csv": "file_name,label\na/1.png,dog\n"})
    Path("data/remove.txt").write_text("a/2.png\nnever-there.png\n")
    _ratios(0.5, 0.4)
    assert stage("ingest").exit_code == 0
    for hashes in Path(".dvc/tmp/imageshelf/parts").glob("*.sha256"):
        hashes.unlink()  # validate's lists of the store's image hashes: planning needs one
    before = _snapshot(workspace)

    plan = _plan()

    assert _snapshot(workspace) == before  # not a byte, not an mtime, cache included
    changes = plan.changes
    assert sorted(changes.added) == ["b/again.png", "b/new.png"]
    assert changes.duplicates == {"b/again.png": "a/3.png"}  # found in the store's hashes
    assert changes.relabeled == ["a/1.png"] and changes.removed == ["a/2.png"]
    assert changes.removal_not_found == ["never-there.png"] and plan.removals_changed
    assert changes.resplit and set(changes.resplit) <= set(images) - {"a/2.png"}
    assert plan.writes_store and not plan.converting and plan.upgrade is None
    assert plan.source == STORE and list(plan.memos) == [  # learned, saved only by publish
        f"parts/{ImageStore(STORE).header.content_digest}.sha256"
    ]
    assert _plan() == plan  # the same inputs, the same plan

    result = stage("pack")
    assert "2 added, 1 relabeled, 1 removed" in result.stdout
    assert f"{len(changes.resplit)} moved to another split" in result.stdout
    assert _plan().writes_store is False  # published: nothing left to do


def test_pack_never_reads_its_report(workspace):
    """reports/pack.json is for people: edited by hand (claiming the ratios params.yaml
    now names, or emptied), it changes nothing pack decides."""
    put(INCOMING, {f"{i}.png": make_image(seed=i) for i in range(12)})
    Path("data/remove.txt").write_text("never-there.png\n")
    repro()
    _ratios(0.5, 0.4)
    claimed = {**report("pack"), "split": {"train": 0.5, "val": 0.4, "test": 0.1}}
    Path("reports/pack.json").write_text(json.dumps(claimed))
    result = stage("pack")
    assert "moved to another split" in result.stdout, result.stdout
    moved = report("pack")["resplit"]
    assert moved > 0
    packed_here = md5(STORE)

    Path("reports/pack.json").write_text("{}")
    again = stage("pack")  # nothing left to move, and the removal list is as it was
    assert "unchanged, not rewritten" in again.stdout and "not in the store" not in again.output
    assert md5(STORE) == packed_here

    fresh = Path("fresh")  # the same images packed once with the new ratios
    fresh.mkdir()
    shutil.copytree(INCOMING, fresh / INCOMING)
    shutil.copy("params.yaml", fresh / "params.yaml")
    (fresh / "data" / "remove.txt").write_text("never-there.png\n")
    os.chdir(fresh)
    repro()
    assert md5(STORE) == packed_here


@pytest.mark.parametrize("step", ["store", "state", "catalog", "report", "ingest"])
def test_pack_stopped_at_each_publish_step_finishes_on_the_next_run(workspace, monkeypatch, step):
    """A failure (or a kill) at any step of publish leaves the steps before it done and
    the rest undone; the next pack ends where an uninterrupted one does."""
    from imageshelf.stages.pack.publish import STEPS, _Publish
    from imageshelf.state.pack import read_state

    assert step in STEPS
    first = {f"a/{i}.png": make_image(seed=i) for i in range(4)}
    later = {f"b/{i}.png": make_image(seed=10 + i) for i in range(3)}
    done = {}
    for name, stop in (("whole", None), ("stopped", step)):
        root = workspace / name
        shutil.copytree(workspace, root, ignore=shutil.ignore_patterns("whole", "stopped"))
        os.chdir(root)
        put(INCOMING, first)
        repro()
        put(INCOMING, later)
        Path("data/remove.txt").write_text("a/1.png\n")
        assert stage("ingest").exit_code == 0
        if stop is not None:
            with monkeypatch.context() as patched:

                def stopped(self):
                    raise OSError("stopped")

                patched.setattr(_Publish, f"_{stop}", stopped)
                with pytest.raises(OSError, match="stopped"):
                    stage("pack")
            # The steps before it are done, the rest not begun: the state names the
            # store published, but when stopped between the two.
            published = ImageStore(STORE).header
            assert (published.count == 6) == (step != "store")
            named = read_state()
            assert named is not None
            assert (named.content_digest == published.content_digest) == (step != "state")
        repro()
        state = read_state()
        assert state is not None
        done[name] = (
            md5(STORE),
            {p.name: p.read_bytes() for p in sorted(Path("data/catalog").iterdir())},
            (state.content_digest, state.split, state.removal_list),
            report("pack")["content_digest"],
            sorted(str(p) for p in Path(".").rglob("*.tmp-*")),
        )
    assert done["stopped"] == done["whole"]
    assert done["whole"][4] == []  # no temporary file left


def test_dvc_lock_names_the_store_through_pack_state_not_the_report(workspace):
    """check_recorded's fast path: the state names this store, and dvc.lock records
    the report written with it. The report's content plays no part."""
    from imageshelf.stages.pack import PackPaths, recorded_digest

    put(INCOMING, {"a.png": make_image(seed=1)})
    repro()
    paths = PackPaths.of(Project.load())
    digest = ImageStore(STORE).header.content_digest

    def lock(report_md5: str) -> None:
        outs = [{"path": "data/images.lmdb", "md5": md5(STORE), "size": 1}]
        outs.append({"path": "reports/pack.json", "md5": report_md5, "size": 1})
        Path("dvc.lock").write_text(
            json.dumps({"schema": "2.0", "stages": {"pack": {"outs": outs}}})
        )

    lock(md5(Path("reports/pack.json")))  # as `dvc repro` records the run
    assert recorded_digest(paths) == digest
    Path("reports/pack.json").write_text("{}")  # edited since: dvc.lock still names the run
    assert recorded_digest(paths) == digest
    lock("0" * 32)  # dvc.lock records another run
    assert recorded_digest(paths) is None
    lock(md5(Path("reports/pack.json")))  # the edited report, committed: not pack's
    assert recorded_digest(paths) is None
