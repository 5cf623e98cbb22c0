"""The user's day with real git and real DVC: repro, push, a teammate's pull."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from test_mask_classes import camvid, noise

from imageshelf.store import ImageStore

from conftest import (
    UP_TO_DATE,
    batch,
    command_line,
    commit,
    lock_entry,
    make_image,
    md5,
    packed,
    publish,
    put,
    sh,
    sharded_params,
    stored,
    up_to_date,
)


def test_repro_push_and_a_teammates_pull_bring_the_same_bytes(repo, tmp_path):
    images = batch(0, 12)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    assert stored(repo) == images
    assert up_to_date(repo)

    before = md5(repo / "data" / "images.lmdb")
    commit(repo, "first batch")
    sh(repo, "dvc", "repro")  # nothing new: nothing to commit
    assert md5(repo / "data" / "images.lmdb") == before
    assert sh(repo, "git", "status", "--porcelain").stdout == ""

    # the store, and the catalog folder: its JSON Lines, its Parquet and its listing
    assert "4 files pushed" in sh(repo, "dvc", "push").stdout
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    pulled = sh(teammate, "dvc", "pull")
    assert "staged.jsonl" not in pulled.stdout + pulled.stderr  # an intermediate: never pulled
    assert md5(teammate / "data" / "images.lmdb") == before
    assert stored(teammate) == images


def test_a_teammate_pulls_a_commit_whose_intermediates_were_never_pushed(repo, tmp_path):
    publish(repo, batch(0, 3), "first batch")
    put(repo / "data" / "incoming", batch(100, 2))
    sh(repo, "dvc", "repro")
    commit(repo, "second batch")
    sh(repo, "dvc", "push", "data/images.lmdb", "data/catalog")  # only what is tracked
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    sh(teammate, "dvc", "pull")
    assert stored(teammate) == stored(repo)


def test_a_second_batch_is_appended_and_metrics_diff_shows_it(repo):
    first = batch(0, 6)
    packed(repo, first, "first batch")
    shutil.rmtree(repo / "data" / "incoming" / "set0")  # packed images stay in the store
    second = batch(100, 4)
    put(repo / "data" / "incoming", second)
    sh(repo, "dvc", "repro")
    assert stored(repo) == {**first, **second}

    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    count = diff["reports/stats.json"]["count"]
    assert (count["old"], count["new"], count["diff"]) == (6, 10, 4)


def test_a_conflict_fails_the_repro_and_changes_nothing(repo):
    images = batch(0, 4)
    packed(repo, images, "first batch")
    before = (md5(repo / "data" / "images.lmdb"), lock_entry(repo, "pack"))
    key = sorted(images)[0]
    put(repo / "data" / "incoming", {key: make_image("PNG", seed=999)})

    result = sh(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    assert f"different bytes: {key}" in result.stdout + result.stderr
    assert (md5(repo / "data" / "images.lmdb"), lock_entry(repo, "pack")) == before
    assert stored(repo) == images


def test_a_removal_through_remove_txt(repo):
    images = batch(0, 5)
    packed(repo, images, "first batch")
    gone = sorted(images)[2]
    shutil.rmtree(repo / "data" / "incoming" / "set0")
    with open(repo / "data" / "remove.txt", "a") as removals:
        removals.write(gone + "\n")
    sh(repo, "dvc", "repro")
    assert stored(repo) == {k: v for k, v in images.items() if k != gone}
    assert up_to_date(repo)


def test_packing_without_pulling_the_store_first_is_refused(repo, tmp_path):
    images = batch(0, 3)
    publish(repo, images, "first batch")
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    new = batch(100, 2)
    put(teammate / "data" / "incoming", new)

    result = sh(teammate, "dvc", "repro", check=False)  # forgot `dvc pull`
    assert result.returncode != 0
    assert "Run `dvc pull data/images.lmdb` (or `dvc checkout" in result.stdout + result.stderr
    assert not (teammate / "data" / "images.lmdb").exists()

    sh(teammate, "dvc", "pull", "data/images.lmdb")
    sh(teammate, "dvc", "repro")
    assert stored(teammate) == {**images, **new}


def test_diff_between_revisions_reads_catalogs_not_images(repo, tmp_path):
    images = batch(0, 6)
    keys = sorted(images)
    labels = "file,label\n" + "".join(f"{k},old\n" for k in keys)
    put(repo / "data" / "incoming", {**images, "labels.csv": labels})
    sh(repo, "dvc", "repro")
    commit(repo, "v1")
    sh(repo, "dvc", "push")

    shutil.rmtree(repo / "data" / "incoming" / "set0")
    (repo / "data" / "incoming" / "labels.csv").unlink()
    added = batch(100, 2)
    changed = {keys[1]: make_image("PNG", seed=4242)}
    relabeled = {keys[2]: images[keys[2]]}
    put(
        repo / "data" / "incoming",
        {
            **added,
            **changed,
            **relabeled,
            "labels.csv": f"file,label\n{keys[1]},old\n{keys[2]},new\n",
        },
    )
    (repo / "data" / "remove.txt").write_text(keys[0] + "\n")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("on_conflict: error", "on_conflict: replace"))
    sh(repo, "dvc", "repro")
    commit(repo, "v2")
    sh(repo, "dvc", "push")

    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))
    out = sh(teammate, *command_line("diff", "HEAD~1", "HEAD", "--json"))
    diff = json.loads(out.stdout)
    assert [e["key"] for e in diff["added"]] == sorted(added)
    assert [e["key"] for e in diff["removed"]] == [keys[0]]
    assert [e["key"] for e in diff["changed"]] == [keys[1]]
    assert [(e["key"], e["fields"]) for e in diff["relabeled"]] == [
        (keys[2], {"label": ["old", "new"]})
    ]
    # Only the two small catalogs came over: the store was never downloaded.
    assert not (teammate / "data" / "images.lmdb").exists()
    cached = sum(p.stat().st_size for p in (teammate / ".dvc" / "cache").rglob("*") if p.is_file())
    assert cached < (repo / "data" / "images.lmdb").stat().st_size / 4

    text = sh(teammate, *command_line("diff", "HEAD~1", "HEAD"))
    assert f'relabeled\t{keys[2]}\tlabel: "old" -> "new"' in text.stdout
    assert "2 added, 1 removed, 1 changed, 1 relabeled" in text.stderr
    first = sh(teammate, *command_line("diff", "HEAD~2", "HEAD~1"))
    assert "6 added, 0 removed" in first.stderr and "empty store" in first.stderr
    bad = sh(teammate, *command_line("diff", "nosuchrev"), check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "nosuchrev" in bad.stderr


def test_metrics_diff_after_an_experiment_on_split_ratios_shows_what_moved(repo):
    images = batch(0, 60)
    labels = "file,label\n" + "".join(
        f"{k},{'cat' if i % 2 else 'dog'}\n" for i, k in enumerate(sorted(images))
    )
    packed(repo, {**images, "labels.csv": labels}, "v1")
    before = json.loads((repo / "reports" / "stats.json").read_text())["by_split"]
    assert sum(split["count"] for split in before.values()) == 60
    assert set(before["train"]["by_label"]) == {"cat", "dog"}

    sh(repo, "dvc", "exp", "run", "-S", "pack.split.train=0.5", "-S", "pack.split.val=0.4")
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)["reports/stats.json"]
    moved = diff["by_split.val.count"]
    assert moved["old"] == before["val"]["count"] and moved["new"] > moved["old"]
    counts = [v for k, v in diff.items() if k.startswith("by_split.") and k.endswith(".count")]
    assert sum(v["diff"] for v in counts) == 0 and "count" not in diff  # moved, not lost


def test_dvc_repro_with_a_python_outside_the_project_uses_the_projects_environment(repo):
    """DVC installed with pipx or the system's package manager runs `python` from PATH:
    one without the project's packages. The stage re-runs itself with the project's
    .venv; without one, it says in one line what to do."""
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import imageshelf"], capture_output=True)
    assert probe.returncode != 0  # the premise: that python lacks the project
    bin_dir = repo.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(system_python)
    dvc = str(Path(sys.executable).parent / "dvc")  # DVC itself from elsewhere, as pipx
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env.pop("VIRTUAL_ENV", None)
    put(repo / "data" / "incoming", {"a.png": make_image()})

    result = subprocess.run([dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "lacks the project's packages (no module 'imageshelf'); run `make setup`" in (
        result.stdout + result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr

    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)  # as `make setup` made
    result = subprocess.run([dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pack: 1 added" in result.stdout


def _decoder_warns(seed: int) -> bytes:
    """A PNG that decodes, and about which Pillow warns (an APNG header of 0 frames)."""
    png = make_image("PNG", seed=seed)
    chunk = (
        struct.pack(">I", 8)
        + b"acTL"
        + bytes(8)
        + struct.pack(">I", zlib.crc32(b"acTL" + bytes(8)))
    )
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _spoken_of(root: str, seed: int) -> dict[str, bytes | str]:
    """Images the report has something to say about: a decoder's message, and a mask
    whose classes cannot be named (noise: over 1,024 colours)."""
    files: dict[str, bytes | str] = {f"{root}/odd.png": _decoder_warns(seed), **camvid(root)}
    files[f"{root}/train_labels/0001TP_006690_L.png"] = noise()
    return files


def test_a_no_op_repro_after_an_add_leaves_git_clean(repo):
    """The first `dvc repro` with nothing new after an add leaves dvc.lock and every
    report as the add's commit has them, and so do the ones after it; also when the
    decoders spoke of some images and a mask's classes have no names (the report says
    what the run that looked at them found; a run with nothing new looks at none)."""
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("verify: header", "verify: decode"))
    packed(repo, {**batch(0, 32), **_spoken_of("first", 1)}, "first batch")
    assert sh(repo, "dvc", "repro").returncode == 0
    assert sh(repo, "git", "status", "--porcelain").stdout == ""

    put(repo / "data" / "incoming", {**batch(100, 20), "added/odd.png": _decoder_warns(2)})
    sh(repo, "dvc", "repro")
    commit(repo, "an add")
    added = json.loads((repo / "reports" / "ingest.json").read_text())
    assert (added["staged"], added["looked_up"]) == (21, 21)  # the earlier ones: known
    assert [m["path"] for m in added["decoder_messages"]] == ["added/odd.png"]
    lock = (repo / "dvc.lock").read_text()
    for _ in range(2):
        assert "nothing new since the last run" in sh(repo, "dvc", "repro").stderr
        assert sh(repo, "git", "status", "--porcelain").stdout == ""
        assert (repo / "dvc.lock").read_text() == lock


def test_diff_of_a_revision_whose_catalog_was_never_pushed_is_one_line(repo, tmp_path):
    """A version committed but never pushed: a teammate's `diff` (and `ls --rev`) of it
    says in one line what is missing, at which revision, and what to do; doing it works."""
    packed(repo, batch(0, 3), "v1")  # committed, not pushed
    publish(repo, batch(100, 2), "v2")
    teammate = tmp_path / "teammate"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(teammate))

    for args in (("diff", "HEAD~1", "HEAD"), ("ls", "--repo", ".", "--rev", "HEAD~1")):
        result = sh(teammate, *command_line(*args), check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "at HEAD~1 is in neither DVC's cache here nor the remote" in result.stderr
        assert "push it from the clone that made it (`dvc push --all-commits`)" in result.stderr
    said = sh(teammate, *command_line("diff", "HEAD~1", "HEAD"), check=False).stderr
    assert said.startswith("Error: data/catalog")

    sh(repo, "dvc", "push", "--all-commits")
    done = sh(teammate, *command_line("diff", "HEAD~1", "HEAD"))
    assert "2 added, 0 removed" in done.stderr


def test_the_default_remote_is_this_clones_own(tmp_path):
    """Two projects on one machine, each with the committed default remote, both push;
    one collects its remote's garbage (`dvc gc -w -c`). The other still pulls all of its
    own versions: the default remote is inside each clone, git-ignored."""
    from conftest import PROJECT, env, make_repo

    home = tmp_path / "home"  # where `~` is, for this test's DVC: never the real one
    home.mkdir()

    def run(root: Path, *args: str) -> str:
        if args[0] == "dvc":
            args = (sys.executable, "-m", "dvc", *args[1:])
        done = subprocess.run(
            args, cwd=root, env={**env(), "HOME": str(home)}, text=True, capture_output=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    projects = {}
    for name, images in (("a", batch(0, 3)), ("b", batch(100, 2))):
        root = make_repo(tmp_path / name)
        shutil.copy2(PROJECT / ".dvc" / "config", root / ".dvc" / "config")  # the default
        put(root / "data" / "incoming", images)
        run(root, "dvc", "repro")
        run(root, "git", "add", "-A")
        run(root, "git", "commit", "-qm", f"project {name}")
        run(root, "dvc", "push")
        projects[name] = root
    run(projects["b"], "dvc", "gc", "-w", "-c", "-f")

    a = projects["a"]
    shutil.rmtree(a / ".dvc" / "cache")
    (a / "data" / "images.lmdb").unlink()
    run(a, "dvc", "pull")
    assert stored(a) == batch(0, 3)
    assert any((a / ".dvc" / "remote").rglob("*")) and not any(home.rglob("md5"))
    assert run(a, "git", "status", "--porcelain") == ""


def test_a_new_pack_output_is_never_taken_for_the_store(repo):
    """Which of pack's outputs was the store, dvc.lock says itself (the pack.store pack
    ran with): a new output, listed first in dvc.lock, is not converted as the store
    when the layout switches (any output but the catalog and reports was taken for it)."""
    pipeline = repo / "dvc.yaml"
    text = pipeline.read_text()
    text = text.replace(
        "cmd: python pipeline/pack.py", "cmd: python pipeline/pack.py && echo noted > data/a.txt"
    )
    new = "      - data/a.txt:\n          persist: true\n"  # there while pack runs, like state
    pipeline.write_text(text.replace("      - ${pack.store}:", new + "      - ${pack.store}:"))
    images = batch(0, 6)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    assert [out["path"] for out in lock_entry(repo, "pack")["outs"]][0] == "data/a.txt"
    commit(repo, "single, with a new output")

    sharded_params(repo)
    out = sh(repo, "dvc", "repro").stdout
    assert "converted from data/images.lmdb" in out
    with ImageStore(repo / "data" / "images") as store:
        assert {key: store.get(key) for key in store} == images
    assert up_to_date(repo)


def test_a_change_to_the_viewers_css_stales_no_stage(repo):
    """Each stage depends on the code it runs, not on the whole library: a comment in
    the viewer's CSS leaves every stage up to date, one in stats' module only stats."""
    put(repo / "data" / "incoming", batch(0, 3))
    sh(repo, "dvc", "repro")
    assert up_to_date(repo)
    css = repo / "imageshelf" / "viewer" / "static" / "view.css"
    css.write_text(css.read_text() + "\n/* a comment */\n")
    assert sh(repo, "dvc", "status").stdout.strip() == UP_TO_DATE
    stats = repo / "imageshelf" / "stages" / "stats.py"
    stats.write_text(stats.read_text() + "\n# a comment\n")
    status = sh(repo, "dvc", "status").stdout
    stale = [line.rstrip(":") for line in status.splitlines() if not line.startswith("\t")]
    assert stale == ["ingest", "stats"], status


def test_a_revision_from_before_outputs_were_typed_is_read_where_it_kept_them(repo, tmp_path):
    """History made before dvc.yaml typed its outputs: another revision's store is where
    its dvc.lock records pack wrote it, its catalog where the template always had it."""
    from imageshelf.read.remote import open_store

    pipeline = repo / "dvc.yaml"
    pipeline.write_text(re.sub(r"\n +type: \w+", "", pipeline.read_text()))
    sharded_params(repo)  # the store in data/images, not the default file
    images = batch(0, 4)
    put(repo / "data" / "incoming", images)
    sh(repo, "dvc", "repro")
    commit(repo, "untyped")
    with open_store(repo, rev="HEAD", cache=tmp_path / "cache") as store:
        assert {key: store.get(key) for key in store} == images
    diff = sh(repo, *command_line("diff", "HEAD~1", "HEAD"))
    assert f"HEAD~1 -> HEAD: {len(images)} added" in diff.stderr  # HEAD's catalog read
